"""``pilotkit init`` writes a spec that ``pilotkit validate`` accepts as written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def pk(cmd: list[str], env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("app", ["tasks", "dask", "mpi", "ray", "jupyter", "k3s"])
def test_init_writes_a_valid_spec(
    app: str, tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    written = pk(pilotkit_cmd, cli_env, "init", "--app", app, f"{app}.toml", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    text = (tmp_path / f"{app}.toml").read_text()
    assert text.startswith("# A pilot spec written by `pilotkit init`")
    valid = pk(pilotkit_cmd, cli_env, "validate", f"{app}.toml", cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith(f"{app}.toml: valid: pilot '{app}', provider local, app {app}")
    again = pk(pilotkit_cmd, cli_env, "init", "--app", app, f"{app}.toml", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr == f"error: {app}.toml exists: pass --force to overwrite it\n"


def test_init_with_a_profile(tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[profiles.here.resources]\ncores = 1\nwalltime = "20m"\n')
    env = {**cli_env, "PILOTKIT_SITE_CONFIG": str(site), "XDG_CONFIG_HOME": str(tmp_path / "none")}
    written = pk(pilotkit_cmd, env, "init", "--profile", "here", "-", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert 'profile = "here"' in written.stdout
    (tmp_path / "s.toml").write_text(written.stdout)
    valid = pk(pilotkit_cmd, env, "validate", "s.toml", cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    shown = pk(pilotkit_cmd, env, "config", "show", "s.toml", cwd=tmp_path)
    assert f'resources.walltime = "20m"  # {site}:3' in shown.stdout.splitlines()
    missing = pk(pilotkit_cmd, env, "init", "--profile", "nope", "-", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("error: --profile: no profile 'nope' in ")


def test_init_into_a_directory_that_is_not_there(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "pilot.toml"
    out = pk(pilotkit_cmd, cli_env, "init", str(target), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == f"error: cannot write {target}: No such file or directory\n"
    assert not (tmp_path / "no").exists()
