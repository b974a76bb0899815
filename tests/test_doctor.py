"""``pilotkit doctor`` against the project's real 3-node Slurm cluster: everything ok,
then a misspelt partition, an unreachable callback address, a workdir the nodes cannot
see, a runtime that is not installed and a controller that is gone, each named."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pilotkit.testing import need_binary

pytestmark = pytest.mark.slurm

SITE = """[profiles.test.provider]
type = "slurm"
{callback}

[profiles.test.resources]
partition = "{partition}"
walltime = "5m"

[profiles.test.pilot]
workdir_root = "{root}"
"""


def doctor(
    tmp_path: Path,
    env: dict[str, str],
    *,
    partition: str = "debug",
    callback: str | None = None,
    wrap: tuple[str, ...] = (),
    extra: str = "",
) -> subprocess.CompletedProcess[str]:
    """``pilotkit doctor --profile test --deep --json``; ``callback`` "": no
    ``callback_host`` in the profile (the provider's default)."""
    site = tmp_path / "site.toml"
    site.write_text(
        SITE.format(
            callback=f'callback_host = "{env["PILOTKIT_TESTCLUSTER_HOST_ADDR"] if callback is None else callback}"'
            if callback != ""
            else "",
            partition=partition,
            root=tmp_path / "runs",
        )
        + extra
    )
    env = {**env, "PILOTKIT_SITE_CONFIG": str(site), "XDG_CONFIG_HOME": str(tmp_path / "none")}
    return subprocess.run(
        [*wrap, "pilotkit", "doctor", "--profile", "test", "--deep", "--json"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def checks(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in json.loads(out.stdout)["checks"]}


def test_doctor_on_the_test_cluster_is_ok(
    slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = doctor(tmp_path, {**cli_env, **slurm})
    assert out.returncode == 0, out.stdout + out.stderr
    found = checks(out)
    for name in ("batch commands", "allocation", "callback", "workdir", "disk"):
        assert found[name]["level"] == "ok", found[name]
    assert found["allocation"]["message"] == "sbatch --test-only accepts partition 'debug'"
    assert found["workdir"]["message"].startswith(f"{tmp_path / 'runs'}: a compute node sees it")
    assert json.loads(out.stdout)["ok"] is True
    assert all(c["level"] != "error" for c in found.values())
    assert not list(tmp_path.glob(".pilotkit-doctor-*")), "the marker file is removed"
    text = subprocess.run(
        ["pilotkit", "doctor"], env={**cli_env, **slurm}, capture_output=True, text=True, timeout=60
    )
    assert text.returncode == 0, text.stdout
    assert text.stdout.splitlines()[0].startswith(
        "ok      batch commands: sbatch, srun, squeue, scancel, sinfo"
    )


def test_doctor_names_a_misspelt_partition(
    slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = doctor(tmp_path, {**cli_env, **slurm}, partition="debgu")
    assert out.returncode == 1, out.stdout + out.stderr
    allocation = checks(out)["allocation"]
    assert allocation["level"] == "error"
    assert allocation["message"].startswith("sbatch --test-only refuses partition 'debgu': ")
    assert "invalid partition" in allocation["message"].lower()
    assert "sinfo -s" in allocation["hint"]


def test_doctor_names_an_unreachable_callback_address(
    slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    # 127.0.0.1 is this machine's to listen on, but a node reaches only its own loopback.
    out = doctor(tmp_path, {**cli_env, **slurm}, callback="127.0.0.1")
    assert out.returncode == 1, out.stdout + out.stderr
    found = checks(out)
    assert found["allocation"]["level"] == "ok"
    assert found["callback"]["level"] == "error"
    assert found["callback"]["message"].startswith("a compute node cannot connect to 127.0.0.1:")
    assert "callback_host" in found["callback"]["hint"]
    assert [c for c in found.values() if c["level"] == "error"] == [found["callback"]]


def test_doctor_names_a_workdir_the_nodes_cannot_see(
    slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    # A node-local directory: the workdir root is a tmpfs mounted in a mount namespace of
    # this doctor only; the nodes' slurmd see the empty directory under it, as a compute
    # node sees a login node's /tmp.
    root = tmp_path / "runs"
    root.mkdir()
    mount = f"mount -t tmpfs pilotkit-doctor {root} && exec " + '"$@"'
    wrap = ("unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh")
    out = doctor(tmp_path, {**cli_env, **slurm}, wrap=wrap)
    assert out.returncode == 1, out.stdout + out.stderr
    found = checks(out)
    assert found["workdir"]["level"] == "error", found["workdir"]
    assert found["workdir"]["message"].startswith(f"{root}: a compute node does not see it")
    assert "filesystem the nodes share" in found["workdir"]["hint"]
    assert [c for c in found.values() if c["level"] == "error"] == [found["workdir"]]
    assert not list(root.iterdir()), "nothing was left in the directory the nodes see"


def test_doctor_finds_the_callback_address_a_run_would_use(
    slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    """No ``callback_host`` anywhere: the address this machine has on the interface that
    routes to the controller, as a Slurm pilot picks it, not the host's name (a loopback
    address on this machine)."""
    env = {**cli_env, **slurm}
    env.pop("PILOTKIT_CALLBACK_HOST", None)
    out = doctor(tmp_path, env, callback="")
    assert out.returncode == 0, out.stdout + out.stderr
    callback = checks(out)["callback"]
    assert callback["level"] == "ok", callback
    assert callback["message"].startswith(
        f"a compute node connected back to {slurm['PILOTKIT_TESTCLUSTER_HOST_ADDR']}:"
    )


def test_doctor_names_the_runtimes_a_run_would_find(
    slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Each container runtime plugin's binary and version, found by the runtime's own
    ``detect``; a profile's runtime that is not installed here is the error."""
    runc = need_binary("runc")
    out = doctor(tmp_path, {**cli_env, **slurm}, extra='\n[profiles.test.container]\nruntime = "oci"\n')
    assert out.returncode == 0, out.stdout + out.stderr
    containers = checks(out)["containers"]
    assert containers["level"] == "ok"
    assert containers["message"].startswith("oci (runc 1."), containers
    assert f", {runc})" in containers["message"], containers
    missing = next(name for name in ("sarus", "shifter", "podman-hpc", "apptainer") if not shutil.which(name))
    out = doctor(
        tmp_path, {**cli_env, **slurm}, extra=f'\n[profiles.test.container]\nruntime = "{missing}"\n'
    )
    assert out.returncode == 1, out.stdout + out.stderr
    containers = checks(out)["containers"]
    assert containers["level"] == "error"
    assert containers["message"].startswith(
        f"the profile's runtime {missing}: not installed here; found oci (runc "
    )


def test_doctor_checks_the_environment_settings(
    slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Without ``--profile``, the ``PILOTKIT__...`` variables are what is checked; a bad
    one is one line naming it, exit 2, before anything runs."""
    env = {**cli_env, **slurm, "XDG_CONFIG_HOME": str(tmp_path / "none"), "PILOTKIT_SITE_CONFIG": "/none"}
    out = subprocess.run(
        ["pilotkit", "doctor", "--json"], env={**env, "PILOTKIT__RESOURCES__PARTITION": "debgu"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert checks(out)["allocation"]["message"].startswith("sbatch --test-only refuses partition 'debgu': ")
    out = subprocess.run(
        ["pilotkit", "doctor"], env={**env, "PILOTKIT__PROVIDER__CALLBACK_TIMEOUT": "soon"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (
        "error: $PILOTKIT__PROVIDER__CALLBACK_TIMEOUT: provider.callback_timeout: expected a number, got a string\n"
    )


def test_doctor_names_a_controller_that_does_not_answer(cli_env: dict[str, str], tmp_path: Path) -> None:
    """The Slurm commands are there but their controller is gone (nothing listens on its
    port): the batch commands are the error, the allocation is not tried, and the checks
    of this machine still run."""
    need_binary("squeue")
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=gone\nSlurmctldHost=gone(127.0.0.1)\nSlurmctldPort=9\n"
        "NodeName=n1 CPUs=1\nPartitionName=p Nodes=n1 Default=YES\n"
    )
    env = {**cli_env, "SLURM_CONF": str(conf), "XDG_CONFIG_HOME": str(tmp_path / "none")}
    env["PILOTKIT_SITE_CONFIG"] = str(tmp_path / "none.toml")
    out = subprocess.run(
        ["pilotkit", "doctor", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1, out.stdout + out.stderr
    found = checks(out)
    assert found["batch commands"]["level"] == "error"
    assert "Unable to contact slurm controller" in found["batch commands"]["message"]
    assert "SLURM_CONF" in found["batch commands"]["hint"]
    assert "allocation" not in found and "callback" not in found
    assert {"workdir", "disk", "containers", "cvmfs", "gpus", "cgroups"} <= set(found)
