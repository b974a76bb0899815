"""Fixtures for the dashboard's tests: a real daemon (the daemon tests' own fixture class),
recorded event logs, and an app driven headless through ``App.run_test``."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
DEMO_SPEC = DATA / "demo.toml"
DEMO_LOG = DATA / "demo.jsonl"
"""The events of a real run of ``demo.toml`` on a daemon (``pilotkit events --json``)."""
DEMO_RUN = DATA / "demo-run"
"""Part of that run's directory: the pilot's log and a few tasks' output."""
CLUSTER_LOG = DATA / "cluster.jsonl"
"""A synthetic pilot on 6 nodes with 2 GPUs each and metrics (pilotkit.tui.synthetic)."""
SIZE = (160, 48)


def _daemon_fixtures() -> Any:
    """The daemon tests' conftest (a real ``pilotkit daemon`` with dirs of its own)."""
    path = ROOT / "tests" / "daemon" / "conftest.py"
    spec = importlib.util.spec_from_file_location("pilotkit_tests_daemon_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


daemon_fixtures = _daemon_fixtures()
DaemonProcess = daemon_fixtures.DaemonProcess
wait_for: Callable[..., Any] = daemon_fixtures.wait_for


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clock times render the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def tui_daemon(tmp_path: Path) -> Iterator[Any]:
    """A running daemon in ``tmp_path``; stopped after the test."""
    d = DaemonProcess(tmp_path / "daemon")
    d.start()
    yield d
    d.stop()


def quick_spec(directory: Path, *, tasks: int = 20, seconds: float = 0.2, name: str = "quick",
               fail: bool = False) -> Path:
    """A spec of ``tasks`` short tasks (one of them failing with ``fail``)."""
    values = ", ".join(str(i) for i in range(tasks))
    command = f"echo task {{i}}; sleep {seconds}" + ("; test {i} -ne 3" if fail else "")
    path = directory / f"{name}.toml"
    path.write_text(f"""name = "{name}"
[resources]
walltime = "10m"
[app]
type = "tasks"
[[app.groups]]
name = "work"
shell = true
command = "{command}"
[app.groups.grid]
i = [{values}]
""")
    return path


def env_for(daemon: Any) -> dict[str, str]:
    env = dict(daemon.env)
    env.pop("PILOTKIT_HOST", None)
    env["TZ"] = "UTC"
    return env


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TZ"] = "UTC"
    return env
