"""``pilotkit describe PILOT`` and ``pilotkit failures PILOT``, and the dashboard's
describe and failures screens, from a real daemon."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pilotkit.client import Target
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.live import LiveSource
from pilotkit.tui.screens.describe import DescribeScreen
from pilotkit.tui.screens.failures import FailuresScreen
from pilotkit.tui.screens.logs import LogsScreen
from pilotkit.tui.screens.overview import OverviewScreen
from pilotkit.tui.screens.pilot import PilotScreen

from .conftest import DEMO_SPEC, SIZE


async def test_describe_and_failures(tui_daemon: Any, tmp_path: Path) -> None:
    spec = tmp_path / "demo.toml"
    shutil.copy(DEMO_SPEC, spec)
    pilot = tui_daemon.submit(spec)
    tui_daemon.wait_state(pilot, {"failed", "done"})
    d = json.loads(tui_daemon.cli("describe", pilot, "--json").stdout)
    s = d["summary"]
    assert s["id"] == pilot and s["provider"] == "local" and s["cores"] >= 1 and s["nodes"] == 1
    assert d["spec"] == spec.read_text() and d["spec_path"] == str(spec.resolve())
    assert d["allocation"]["provider"] == "local" and d["allocation"]["job_id"] == s["job_id"]
    assert [n["name"] for n in d["nodes"]] == d["allocation"]["nodes"]
    workdir = Path(s["workdir"])
    assert d["files"] == {"workdir": str(workdir), "pilot_log": str(workdir / "pilot.log"),
                          "results": str(workdir / "results.jsonl"), "tasks": str(workdir / "tasks")}
    assert Path(d["files"]["pilot_log"]).is_file() and Path(d["files"]["tasks"]).is_dir()

    text = tui_daemon.cli("describe", pilot).stdout
    assert f"Pilot      {pilot}" in text and f"job {s['job_id']}" in text and str(workdir / "pilot.log") in text
    assert 'name = "demo"' in text and "Nodes" in text
    (node,) = d["nodes"]
    assert node["containment"] and f"task processes contained by {node['containment']}" in text
    bad = tui_daemon.cli("describe", "no-such-pilot", check=False)
    assert bad.returncode == 2 and "no-such-pilot" in bad.stderr and "Traceback" not in bad.stderr

    # failures: grouped by outcome, exit code and the last line of stderr
    f = json.loads(tui_daemon.cli("failures", pilot, "--json").stdout)
    assert f["failed"] == 1 and len(f["groups"]) == 1
    (group,) = f["groups"]
    assert group["tasks"] == ["check-1"] and group["count"] == 1 and group["outcome"] == "failed"
    assert "missing column: mass" in group["last_line"] and group["exit_code"] not in (None, 0)
    words = tui_daemon.cli("failures", pilot).stdout
    assert "1 failed task(s) in 1 group(s)" in words and "missing column: mass" in words and "check-1" in words

    app = PilotkitApp(LiveSource(Target(socket=str(tui_daemon.socket)), poll=0.3))
    async with app.run_test(size=SIZE) as ui:
        await app.until(lambda: pilot in app.model.pilots)
        await ui.press("i")  # from the overview
        await app.until(lambda: isinstance(app.screen, DescribeScreen))
        screen = app.screen
        assert isinstance(screen, DescribeScreen)
        await app.until(lambda: screen.result is not None)
        assert screen.text().splitlines() == text.splitlines()[: len(screen.text().splitlines())]
        assert str(workdir / "pilot.log") in screen.text()
        await ui.press("escape")
        assert isinstance(app.screen, OverviewScreen)
        await ui.press("enter", "i")  # from the pilot
        await app.until(lambda: isinstance(app.screen, DescribeScreen))
        await ui.press("escape")
        assert isinstance(app.screen, PilotScreen)
        await ui.press("F")
        await app.until(lambda: isinstance(app.screen, FailuresScreen))
        failures = app.screen
        assert isinstance(failures, FailuresScreen)
        await app.until(lambda: failures.result is not None and bool(failures.lines()))
        assert "missing column: mass" in failures.lines()[0] and "check-1" in failures.lines()[0]
        await ui.press("enter")  # the first task's stderr, at its end
        await app.until(lambda: isinstance(app.screen, LogsScreen))
        logs = app.screen
        assert isinstance(logs, LogsScreen) and logs.task_id == "check-1" and logs.stderr
        await app.until(lambda: logs.ended is not None)
        assert "missing column: mass" in logs.lines[-1][1]
