"""``pilotkit results`` and ``pilotkit tasks --json`` on a pilot the daemon ran: the
metrics its tasks reported come through the daemon."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import DaemonProcess, wait_for, write_spec

SPEC = """
name = "scored"
[resources]
cores = 2
[[app.groups]]
name = "g"
shell = true
command = "echo '{{\\"loss\\": {x}}}' >> \\"$PILOTKIT_METRICS\\""
[app.groups.grid]
x = [3, 1, 2]
"""


def test_results_of_a_daemon_pilot(daemon: DaemonProcess, tmp_path: Path) -> None:
    pilot = daemon.submit(write_spec(tmp_path, SPEC))
    daemon.wait_state(pilot, {"done"})
    tasks = json.loads(daemon.cli("tasks", pilot, "--json").stdout)["tasks"]
    assert {t["task"]: t["metrics"] for t in tasks} == {"g-0": {"loss": 3}, "g-1": {"loss": 1}, "g-2": {"loss": 2}}
    rows = json.loads(daemon.cli("results", pilot, "--json", "--sort", "loss").stdout)
    assert [r["task"] for r in rows] == ["g-1", "g-2", "g-0"]
    assert rows[0]["params"] == {"x": 1} and rows[0]["outcome"] == "ok"
    top = daemon.cli("results", pilot, "--sort", "loss", "--desc", "--top", "1").stdout.splitlines()
    assert top[0].split() == ["task", "outcome", "duration", "x", "loss"]
    assert top[1].split()[0] == "g-0" and len(top) == 2


LIVE = SPEC.replace('name = "scored"', 'name = "live"') + """
[[app.groups]]
name = "slow"
commands = ["sleep 30"]
"""


def test_results_of_a_running_pilot(daemon: DaemonProcess, tmp_path: Path) -> None:
    pilot = daemon.submit(write_spec(tmp_path, LIVE))
    wait_for(lambda: daemon.status(pilot)["groups"].get("g", {}).get("done") == 3, 30, "the scored tasks")
    assert daemon.status(pilot)["state"] == "running"
    rows = json.loads(daemon.cli("results", pilot, "--json", "--sort", "loss", "--where", "group=g").stdout)
    assert [(r["task"], r["metrics"], r["params"]) for r in rows] == [
        ("g-1", {"loss": 1}, {"x": 1}), ("g-2", {"loss": 2}, {"x": 2}), ("g-0", {"loss": 3}, {"x": 3})]
    running = json.loads(daemon.cli("results", pilot, "--json", "--where", "outcome=running").stdout)
    assert [r["task"] for r in running] == ["slow-0"]
    daemon.cli("cancel", pilot)
