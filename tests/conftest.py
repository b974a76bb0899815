from __future__ import annotations

import os
import subprocess
import sys
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


def restart_cluster() -> None:
    """Rebuild the cluster after a test that broke a node on purpose."""
    from pilotkit.testing.slurm import testcluster_script

    script = str(testcluster_script())
    subprocess.run([script, "down"], capture_output=True, text=True, check=True)
    subprocess.run([script, "up", "3"], capture_output=True, text=True, check=True)
