from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "share" / "examples"


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the real ``pilotkit`` command in a subprocess."""
    env = dict(os.environ)
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env.pop("PILOTKIT_EVENTLOG", None)
    return env


@pytest.fixture
def pilotkit_cmd() -> list[str]:
    return [sys.executable, "-m", "pilotkit.cli.main"]


TESTCLUSTER = ROOT / "share" / "testcluster" / "testcluster"


def _cluster_env() -> dict[str, str]:
    out = subprocess.run([str(TESTCLUSTER), "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """A real 3-node Slurm cluster in network namespaces (share/testcluster), up for the
    session. Yields the environment its clients need."""
    from pilotkit.testing import need, need_binary

    need_binary("slurmctld", "install with share/dev/install-system-deps")
    need_binary("slurmd")
    need("root (to build network namespaces)", os.geteuid() == 0)
    up = subprocess.run([str(TESTCLUSTER), "up", "3"], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"the Slurm test cluster did not come up:\n{up.stdout}\n{up.stderr}", pytrace=False)
    try:
        yield _cluster_env()
    finally:
        subprocess.run([str(TESTCLUSTER), "down"], capture_output=True, text=True)


@pytest.fixture
def slurm(slurm_cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The cluster's environment set in this process (sbatch, squeue... find it)."""
    for key, value in slurm_cluster.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PILOTKIT_CALLBACK_HOST", slurm_cluster["PILOTKIT_TESTCLUSTER_HOST_ADDR"])
    return slurm_cluster


def restart_cluster() -> None:
    """Rebuild the cluster after a test that broke a node on purpose."""
    subprocess.run([str(TESTCLUSTER), "down"], capture_output=True, text=True, check=True)
    subprocess.run([str(TESTCLUSTER), "up", "3"], capture_output=True, text=True, check=True)
