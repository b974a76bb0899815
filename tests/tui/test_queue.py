"""The queue (what waits and why; rate and ETA against the drain point) from a real
daemon: ``pilotkit queue --json`` and the dashboard's queue screen show the same."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.color import Color
from rich.style import Style
from rich.text import Text

from pilotkit.client import Target
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.live import LiveSource
from pilotkit.tui.screens.pilot import PilotScreen
from pilotkit.tui.screens.queue import QueueScreen
from pilotkit.tui.widgets import palette_of

from .conftest import SIZE, wait_for

SPEC = """name = "queue"
[resources]
cores = 2
walltime = "5m"
[app]
type = "tasks"
[[app.groups]]
name = "wide"
cores = 2
shell = true
command = "sleep 0.6"
[app.groups.grid]
i = [0, 1, 2, 3, 4, 5, 6, 7]
[[app.groups]]
name = "long"
time_limit = "4m30s"
shell = true
command = "true"
[app.groups.grid]
i = [0, 1]
"""


def submit(daemon: Any, tmp_path: Path) -> str:
    spec = tmp_path / "queue.toml"
    spec.write_text(SPEC)
    return daemon.submit(spec)  # type: ignore[no-any-return]


def queue_json(daemon: Any, pilot: str) -> dict[str, Any]:
    return json.loads(daemon.cli("queue", pilot, "--json").stdout)  # type: ignore[no-any-return]


async def test_queue_says_why_tasks_wait_and_when_the_backlog_ends(tui_daemon: Any, tmp_path: Path) -> None:
    pilot = submit(tui_daemon, tmp_path)
    try:
        q = wait_for(lambda: (q := queue_json(tui_daemon, pilot))["rate"] and q["running"] == 1 and q, 60,
                     "a rate while a wide task runs")
        assert q["state"] == "running" and q["cores"] == 2 and q["free_cores"] == 0
        reasons = {t["group"]: t["reason"] for t in q["tasks"]}
        assert reasons == {"wide": "no-free-core", "long": "drain-point"}
        wide = next(t for t in q["tasks"] if t["group"] == "wide")
        assert wide["cores"] == 2 and "needs 2 core(s) on one node, at most 0 free" in wide["detail"]
        long = next(t for t in q["tasks"] if t["group"] == "long")
        assert "would end after the drain point" in long["detail"]
        assert q["reasons"]["drain-point"] == 2
        # the drain point is the walltime less the spec's drain margin (60 s by default)
        assert abs(q["walltime_end"] - 60 - q["drain_at"]) < 1
        assert q["rate"] > 0 and q["eta"] > 0 and q["before_drain"] is True
        assert abs(q["finish_at"] - q["t"] - q["eta"]) < 1e-6
        text = tui_daemon.cli("queue", pilot).stdout
        assert "tasks/min" in text and "before the drain point" in text and "drain-point" in text

        # the dashboard's queue screen shows what the CLI shows
        app = PilotkitApp(LiveSource(Target(socket=str(tui_daemon.socket)), poll=0.3), pilot=pilot)
        async with app.run_test(size=SIZE) as ui:
            await app.until(lambda: isinstance(app.screen, PilotScreen))
            await ui.press("w")
            await app.until(lambda: isinstance(app.screen, QueueScreen))
            screen = app.screen
            assert isinstance(screen, QueueScreen)
            await app.until(lambda: screen.result is not None and screen.result.rate is not None, 30)
            assert screen.result is not None
            shown = {t.reason for t in screen.result.tasks}
            assert "drain-point" in shown
            text = screen.text()
            assert "tasks/min" in text and "drain-point" in text
            await ui.press("escape")
            assert isinstance(app.screen, PilotScreen)
            page = app.screen  # the pilot page: rate and ETA under the task groups, green before the drain
            await app.until(lambda: page.backlog is not None and page.backlog.rate is not None, 30)
            line = Text.from_markup(str(page.query_one("#groups").border_subtitle))
            assert "tasks/min" in line.plain and "before the drain point" in line.plain
            colors = {c.triplet for s in line.spans if (c := Style.parse(str(s.style)).color) is not None}
            assert Color.parse(palette_of(page).done).triplet in colors  # green: before the drain point
    finally:
        tui_daemon.cli("cancel", pilot, check=False)
    time.sleep(0.1)


def test_queue_of_a_finished_pilot_has_nothing_waiting(tui_daemon: Any, tmp_path: Path) -> None:
    spec = tmp_path / "done.toml"
    spec.write_text('name = "done"\n[app]\ntype = "tasks"\n[[app.groups]]\nname = "g"\ncommand = "true"\n')
    pilot = tui_daemon.submit(spec)
    tui_daemon.wait_state(pilot, {"done"})
    q = queue_json(tui_daemon, pilot)
    assert q["state"] == "done" and q["tasks"] == [] and q["rate"] is None and q["eta"] is None
    bad = tui_daemon.cli("queue", "no-such-pilot", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
