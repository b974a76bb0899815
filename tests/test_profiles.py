"""Profiles: a site file, a user file and a spec laid over each other, each value with
the file and line that set it; every bad key located in its own file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

SITE = """# maintained by the site
[profiles.cpu.provider]
type = "local"

[profiles.cpu.resources]
cores = 2
walltime = "1h"

[profiles.cpu.pilot]
workdir_root = "{root}"
grace = "5s"

[profiles.cpu.env]
FROM_SITE = "site"
BOTH = "site"

[profiles.batch.provider]
type = "slurm"
callback_host = "login1"
"""

USER = """[profiles.cpu.resources]
walltime = "2h"

[profiles.cpu.env]
BOTH = "user"
"""

SPEC = """name = "prof"
profile = "cpu"
[resources]
walltime = "30m"
[[app.groups]]
name = "g"
shell = true
command = "echo $FROM_SITE $BOTH"
"""


@pytest.fixture
def files(tmp_path: Path, cli_env: dict[str, str]) -> dict[str, Path]:
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(root=tmp_path / "runs"))
    (tmp_path / "config" / "pilotkit").mkdir(parents=True)
    user = tmp_path / "config" / "pilotkit" / "config.toml"
    user.write_text(USER)
    spec = tmp_path / "prof.toml"
    spec.write_text(SPEC)
    cli_env["PILOTKIT_SITE_CONFIG"] = str(site)
    cli_env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    cli_env.pop("PILOTKIT_PROFILE", None)
    return {"site": site, "user": user, "spec": spec}


def pk(cmd: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120)


def test_config_show_names_the_origin_of_every_value(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    site, user, spec = files["site"], files["user"], files["spec"]
    out = pk(pilotkit_cmd, cli_env, "config", "show", str(spec))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f'provider.type = "local"  # {site}:3',
        f"resources.cores = 2  # {site}:6",
        f'resources.walltime = "30m"  # {spec}:4',
        f'pilot.workdir_root = "{tmp_path / "runs"}"  # {site}:10',
        f'pilot.grace = "5s"  # {site}:11',
        f'env.FROM_SITE = "site"  # {site}:14',
        f'env.BOTH = "user"  # {user}:5',
        f'name = "prof"  # {spec}:1',
        f'profile = "cpu"  # {spec}:2',
        f'app.groups[0].name = "g"  # {spec}:6',
        f"app.groups[0].shell = true  # {spec}:7",
        f'app.groups[0].command = "echo $FROM_SITE $BOTH"  # {spec}:8',
    ]
    profile = pk(pilotkit_cmd, cli_env, "config", "show", "--profile", "cpu", "--json")
    assert profile.returncode == 0, profile.stderr
    walltime = next(s for s in json.loads(profile.stdout) if s["key"] == "resources.walltime")
    assert walltime == {"key": "resources.walltime", "value": "2h", "file": str(user), "line": 2}
    listing = pk(pilotkit_cmd, cli_env, "config", "show")
    assert listing.stdout.splitlines() == [
        f"site file {site}: profiles: batch, cpu",
        f"user file {user}: profiles: cpu",
    ]


def test_run_starts_from_the_profile(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = pk(pilotkit_cmd, cli_env, "run", "-q", str(files["spec"]))
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("prof-")
    (result,) = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert Path(result["stdout"]).read_text() == "site user\n"


def test_profile_chosen_on_the_command_line_and_in_the_environment(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = files["spec"]
    spec.write_text(SPEC.replace('profile = "cpu"\n', ""))
    # A profile of another provider: its options are left out, the spec's provider stays.
    assert pk(pilotkit_cmd, cli_env, "validate", "--profile", "batch", str(spec)).returncode == 0
    shown = pk(pilotkit_cmd, cli_env, "config", "show", "--profile", "cpu", str(spec))
    assert 'env.BOTH = "user"' in shown.stdout and "profile = " not in shown.stdout
    env = {**cli_env, "PILOTKIT_PROFILE": "cpu"}
    shown = pk(pilotkit_cmd, env, "config", "show", str(spec))
    assert f"resources.cores = 2  # {files['site']}:6" in shown.stdout.splitlines()
    missing = pk(pilotkit_cmd, cli_env, "validate", "--profile", "nope", str(spec))
    assert missing.returncode == 2
    assert missing.stderr == (
        f"error: --profile: no profile 'nope' in {files['site']} or {files['user']} (profiles: batch, cpu)\n"
    )
    # Chosen by the environment, the error names the variable, as every command does.
    for args in (["validate", str(spec)], ["doctor"], ["config", "show"], ["run", str(spec)]):
        missing = pk(pilotkit_cmd, {**cli_env, "PILOTKIT_PROFILE": "nope"}, *args)
        assert missing.returncode == 2, args
        assert missing.stderr == (
            f"error: $PILOTKIT_PROFILE: no profile 'nope' in {files['site']} or {files['user']} "
            "(profiles: batch, cpu)\n"
        ), args


def test_unknown_profile_in_spec_is_located(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = files["spec"]
    spec.write_text(SPEC.replace('profile = "cpu"', 'profile = "cpuu"'))
    out = pk(pilotkit_cmd, cli_env, "validate", str(spec))
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: {spec}:2: profile: no profile 'cpuu' in ")


def test_bad_keys_in_configuration_files_are_located(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    site, user, spec = files["site"], files["user"], files["spec"]
    user.write_text(USER + "\n[profiles.cpu.resource]\ncores = 1\n\n[profile.cpu]\nx = 1\n")
    out = pk(pilotkit_cmd, cli_env, "validate", str(spec))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [
        f"error: {user}:10: profile: unknown key (did you mean 'profiles'?)",
        f"error: {user}:7: profiles.cpu.resource: unknown key (did you mean 'resources'?)",
    ]
    # A bad value inside a profile's table is named in the file that set it.
    user.write_text(USER.replace('walltime = "2h"', 'walltime = "2h"\npartiton = "gpu"\ngrace = "90"'))
    site.write_text(site.read_text().replace('grace = "5s"', "grace = 5"))
    for args in (["validate", str(spec)], ["config", "show", "--profile", "cpu"]):
        out = pk(pilotkit_cmd, cli_env, *args)
        assert out.returncode == 2, out.stdout
        assert sorted(out.stderr.splitlines()) == [
            f"error: {user}:3: profiles.cpu.resources.partiton: unknown key (did you mean 'partition'?)",
            f"error: {user}:4: profiles.cpu.resources.grace: unknown key",
            f"error: {site}:11: profiles.cpu.pilot.grace: 5 has no unit: write '5s' or '5m' "
            "(a bare number is seconds to some tools and minutes to sbatch)",
        ], args


def test_every_setting_from_the_environment(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    """``PILOTKIT__SECTION__KEY`` over the profile's files, under the spec's own values;
    its origin is the variable; a bad one is located at the variable, exit 2."""
    env = {
        **cli_env,
        "PILOTKIT__ENV__BOTH": "environment",  # over the user file's "user"
        "PILOTKIT__RESOURCES__WALLTIME": "3h",  # under the spec's own "30m"
        "PILOTKIT__RESOURCES__CORES": "1",  # over the site's 2: a TOML integer
        "PILOTKIT__PILOT__HEARTBEAT": '"5s"',  # a TOML string
    }
    shown = pk(pilotkit_cmd, env, "config", "show", str(files["spec"]))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert 'env.BOTH = "environment"  # $PILOTKIT__ENV__BOTH' in lines
    assert any(line.startswith(f'env.FROM_SITE = "site"  # {files["site"]}:') for line in lines)
    assert "resources.cores = 1  # $PILOTKIT__RESOURCES__CORES" in lines
    assert 'pilot.heartbeat = "5s"  # $PILOTKIT__PILOT__HEARTBEAT' in lines
    assert f'resources.walltime = "30m"  # {files["spec"]}:4' in lines
    out = pk(pilotkit_cmd, env, "run", "-q", str(files["spec"]))
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "runs").iterdir()
    (result,) = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert Path(result["stdout"]).read_text() == "site environment\n"

    for name, value, said in (
        ("PILOTKIT__RESOURCES__CORSE", "1", "error: $PILOTKIT__RESOURCES__CORSE: resources.corse: unknown key "
         "(did you mean 'cores'?)"),
        ("PILOTKIT__RESOURCES__CORES", "many", "error: $PILOTKIT__RESOURCES__CORES: resources.cores: expected an "
         "integer, got a string"),
        ("PILOTKIT__RESOURCE__CORES", "1", "error: $PILOTKIT__RESOURCE__CORES: not a setting: "
         "PILOTKIT__SECTION__KEY with SECTION one of PROVIDER, RESOURCES, IMAGE, CONTAINER, PILOT, ENV"),
    ):  # fmt: skip
        bad = pk(pilotkit_cmd, {**cli_env, name: value}, "validate", str(files["spec"]))
        assert bad.returncode == 2 and bad.stderr == said + "\n", bad.stderr


def test_config_files_that_cannot_be_read_are_named(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """A configuration file saved in another encoding, or a directory where the file
    should be: one line naming it, exit 2, whatever the command."""
    site = files["site"]
    site.write_bytes("# café\n".encode("latin-1") + site.read_bytes())
    for args in (
        ["config", "show"],
        ["config", "show", "--profile", "cpu"],
        ["validate", str(files["spec"])],
    ):
        out = pk(pilotkit_cmd, cli_env, *args)
        assert out.returncode == 2, args
        assert out.stderr == (
            f"error: {site}:1: not UTF-8 text: byte 0xe9 cannot be decoded; save the file as UTF-8\n"
        ), args
    out = pk(pilotkit_cmd, {**cli_env, "PILOTKIT_SITE_CONFIG": str(site.parent)}, "config", "show")
    assert out.returncode == 2
    assert out.stderr == f"error: {site.parent}: cannot read: Is a directory\n"


def test_config_show_lists_the_settings_of_the_environment(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    out = pk(pilotkit_cmd, cli_env, "config", "show")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"site file {files['site']}: profiles: batch, cpu",
        f"user file {files['user']}: profiles: cpu",
    ]
    env = {**cli_env, "PILOTKIT__RESOURCES__PARTITION": "gpu", "PILOTKIT__PROVIDER__CALLBACK_HOST": "login2"}
    out = pk(pilotkit_cmd, env, "config", "show")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[2:] == [
        'environment: provider.callback_host = "login2"  # $PILOTKIT__PROVIDER__CALLBACK_HOST',
        'environment: resources.partition = "gpu"  # $PILOTKIT__RESOURCES__PARTITION',
    ]


def test_a_user_file_that_picks_another_plugin_than_the_site_file(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """The site's profile stages images from CVMFS and runs them with apptainer; the
    user's picks the pull stager and runc. The user's choice wins, the site's options for
    the other plugins are left out, and the site's binds stay. A spec that picks the
    site's stager again gets the site's options for it. A profile's image table needs no
    ``ref``: the spec names the image."""
    site, user, spec = files["site"], files["user"], files["spec"]
    site.write_text(
        site.read_text()
        + '\n[profiles.cpu.image]\nstager = "cvmfs"\nrepository = "unpacked.example.org"\n'
        + '\n[profiles.cpu.container]\nruntime = "apptainer"\nbinds = ["/data:/data:ro"]\n'
    )
    user.write_text(
        USER + '\n[profiles.cpu.image]\nstager = "pull"\ncache = "/tmp/sif"\n'
        '\n[profiles.cpu.container]\nruntime = "oci"\n'
    )
    shown = pk(pilotkit_cmd, cli_env, "config", "show", "--profile", "cpu")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert 'image.stager = "pull"  # ' + f"{user}:8" in lines
    assert 'image.cache = "/tmp/sif"  # ' + f"{user}:9" in lines
    assert 'container.runtime = "oci"  # ' + f"{user}:12" in lines
    assert any(line.startswith('container.binds = ["/data:/data:ro"]  # ' + f"{site}:") for line in lines)
    assert not [line for line in lines if "repository" in line or "apptainer" in line], lines

    spec.write_text(SPEC + '\n[image]\nref = "docker://busybox"\n')
    assert pk(pilotkit_cmd, cli_env, "validate", str(spec)).returncode == 0
    spec.write_text(SPEC + '\n[image]\nref = "docker://busybox"\nstager = "cvmfs"\n')
    shown = pk(pilotkit_cmd, cli_env, "config", "show", str(spec))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(
        line.startswith('image.repository = "unpacked.example.org"  # ' + f"{site}:") for line in lines
    )
    assert not [line for line in lines if "cache" in line], lines


def test_a_variable_for_another_provider_leaves_a_local_spec_alone(
    files: dict[str, Path], pilotkit_cmd: list[str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    """``PILOTKIT__PROVIDER__CALLBACK_HOST`` exported for the site's Slurm runs: a local
    spec still validates and runs; a key that no provider takes is still refused."""
    spec = files["spec"]
    spec.write_text(SPEC.replace('profile = "cpu"\n', ""))
    env = {**cli_env, "PILOTKIT__PROVIDER__CALLBACK_HOST": "10.0.0.5"}
    out = pk(pilotkit_cmd, env, "validate", str(spec))
    assert out.returncode == 0, out.stderr
    assert "provider local" in out.stdout
    out = pk(pilotkit_cmd, env, "run", "-q", "--workdir", str(tmp_path / "w"), str(spec))
    assert out.returncode == 0, out.stderr
    bad = pk(pilotkit_cmd, {**cli_env, "PILOTKIT__PROVIDER__CALLBAK_HOST": "10.0.0.5"}, "validate", str(spec))
    assert bad.returncode == 2
    assert bad.stderr == "error: $PILOTKIT__PROVIDER__CALLBAK_HOST: provider.callbak_host: unknown key\n"
