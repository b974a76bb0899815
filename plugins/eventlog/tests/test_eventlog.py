"""The example plugin, end to end: installed by entry point, records a real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pilotkit.testing import Plugins


def test_registered_through_entry_point() -> None:
    plugins = Plugins().load()
    info = plugins.info["eventlog"]
    assert info.error is None
    assert "pilotkit_event" in info.hooks and "pilotkit_add_commands" in info.hooks
    assert info.source == "pilotkit-eventlog"


def test_records_a_real_run_and_summarises_it(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "ev"\n[[app.groups]]\nname = "g"\ncommands = ["true", "false"]\n')
    log = tmp_path / "events.jsonl"
    env = {"PILOTKIT_EVENTLOG": str(log), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    exe = [sys.executable, "-m", "pilotkit.cli.main"]
    run = subprocess.run(
        [*exe, "run", "-q", "--workdir", str(tmp_path / "w"), str(spec)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr  # one task failed
    kinds = [json.loads(line)["type"] for line in log.read_text().splitlines()]
    assert kinds[0] == "pilot-state" and kinds.count("task-finished") == 2
    out = subprocess.run([*exe, "eventlog", "--json", str(log)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    (pilot,) = summary["pilots"].values()
    assert pilot == {"state": "failed", "tasks_ok": 1, "tasks_failed": 1}
