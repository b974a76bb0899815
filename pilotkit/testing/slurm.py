"""Fixtures for the project's real multi-node Slurm test cluster (share/testcluster).

``slurm_cluster`` (session) brings the cluster up if it is not (and takes it down at
the end only if it brought it up); ``slurm`` sets its environment in the test
(``SLURM_CONF``, and ``PILOTKIT_CALLBACK_HOST`` so node agents can reach the pilot).
The cluster script is found through ``$PILOTKIT_TESTCLUSTER`` or from the working
directory upwards (``share/testcluster/testcluster``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .needs import need, need_binary


def testcluster_script() -> Path:
    explicit = os.environ.get("PILOTKIT_TESTCLUSTER")
    if explicit:
        return Path(explicit)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / "share" / "testcluster" / "testcluster"
        if candidate.exists():
            return candidate
    return Path(__file__).resolve().parents[2] / "share" / "testcluster" / "testcluster"


def cluster_env(script: Path) -> dict[str, str]:
    out = subprocess.run([str(script), "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """A real 3-node Slurm cluster in network namespaces, up for the session."""
    need_binary("slurmctld", "install with share/dev/install-system-deps")
    need_binary("slurmd")
    need("root (to build network namespaces)", os.geteuid() == 0)
    script = testcluster_script()
    need(f"the test cluster script {script}", script.exists())
    was_up = subprocess.run([str(script), "status"], capture_output=True).returncode == 0
    if not was_up:
        up = subprocess.run([str(script), "up", "3"], capture_output=True, text=True)
        if up.returncode != 0:
            pytest.fail(f"the Slurm test cluster did not come up:\n{up.stdout}\n{up.stderr}", pytrace=False)
    try:
        yield cluster_env(script)
    finally:
        if not was_up:
            subprocess.run([str(script), "down"], capture_output=True, text=True)


@pytest.fixture
def slurm(slurm_cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The cluster's environment, set in this test's process."""
    script = testcluster_script()
    if subprocess.run([str(script), "status"], capture_output=True).returncode != 0:
        subprocess.run([str(script), "up", "3"], capture_output=True, text=True, check=True)
    for key, value in slurm_cluster.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PILOTKIT_CALLBACK_HOST", slurm_cluster["PILOTKIT_TESTCLUSTER_HOST_ADDR"])
    return slurm_cluster
