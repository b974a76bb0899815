from __future__ import annotations

import os
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
