"""Fixtures for the project's real multi-node Slurm test cluster (share/testcluster).

``slurm_cluster`` (session) brings the cluster up if it is not, and leaves it up;
``slurm`` holds the cluster for one test and sets its environment there (``SLURM_CONF``,
and ``PILOTKIT_CALLBACK_HOST`` so node agents can reach the pilot). The cluster script
is found through ``$PILOTKIT_TESTCLUSTER`` or from the working directory upwards
(``share/testcluster/testcluster``).

The cluster is one per machine and may be shared by several test runs at once: each
test holds an exclusive lock on :func:`lock_path` (the ``flock`` of the shell scripts
that use it too) while it uses the cluster, so no run takes it down or restarts it
under another's job. The lock is this process's own descriptor: daemons that a test
starts (``testcluster up`` starting munged and slurmd) do not inherit it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .needs import need, need_binary
from .share import share_script


def testcluster_script() -> Path:
    return share_script("PILOTKIT_TESTCLUSTER", "testcluster", "testcluster")


def lock_path() -> Path:
    """The lock every user of the test cluster holds while using it
    (``$PILOTKIT_TESTCLUSTER_LOCK``, default ``/tmp/pilotkit-testcluster.lock``)."""
    return Path(os.environ.get("PILOTKIT_TESTCLUSTER_LOCK", "/tmp/pilotkit-testcluster.lock"))


@contextlib.contextmanager
def cluster_lock() -> Iterator[None]:
    """Hold the test cluster exclusively (waits for other holders)."""
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
    with cluster_lock():
        if subprocess.run([str(script), "status"], capture_output=True).returncode != 0:
            up = subprocess.run([str(script), "up", "3"], capture_output=True, text=True)
            if up.returncode != 0:
                pytest.fail(f"the Slurm test cluster did not come up:\n{up.stdout}\n{up.stderr}", pytrace=False)
        env = cluster_env(script)
    # Left up for the next run (taking it down here would pull it from under another
    # run that shares it).
    yield env


@pytest.fixture
def slurm(slurm_cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The cluster, held for this test, with its environment set in this test's process."""
    script = testcluster_script()
    with cluster_lock():
        if subprocess.run([str(script), "status"], capture_output=True).returncode != 0:
            subprocess.run([str(script), "up", "3"], capture_output=True, text=True, check=True)
        for key, value in slurm_cluster.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("PILOTKIT_CALLBACK_HOST", slurm_cluster["PILOTKIT_TESTCLUSTER_HOST_ADDR"])
        yield slurm_cluster
