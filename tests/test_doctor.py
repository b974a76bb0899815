"""``pilotkit doctor`` against the project's real 3-node Slurm cluster: everything ok,
then a misspelt partition and an unreachable callback address, each named."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

SITE = """[profiles.test.provider]
type = "slurm"
callback_host = "{callback}"

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
) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site.toml"
    site.write_text(
        SITE.format(
            callback=callback or env["PILOTKIT_TESTCLUSTER_HOST_ADDR"],
            partition=partition,
            root=tmp_path / "runs",
        )
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
