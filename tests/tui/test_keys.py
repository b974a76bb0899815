"""Keys, the command palette, replay speed and themes, on a replayed log."""

from __future__ import annotations

from pathlib import Path

from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.replay import ReplaySource
from pilotkit.tui.screens.modals import HelpScreen
from pilotkit.tui.screens.overview import OverviewScreen
from pilotkit.tui.screens.pilot import PilotScreen
from pilotkit.tui.widgets.task_table import TaskTable

from .conftest import DEMO_LOG, SIZE


async def test_palette_opens_a_pilot_and_themes_repaint() -> None:
    app = PilotkitApp(ReplaySource(DEMO_LOG, speed=None))
    async with app.run_test(size=SIZE) as pilot:
        await app.until(lambda: app.model.connection.state == "replayed")
        await pilot.press("ctrl+p")
        await pilot.press(*"Open demo")
        await pilot.pause()
        await pilot.press("enter")
        await app.until(lambda: isinstance(app.screen, PilotScreen))
        before = app.palette
        app.theme = "textual-light"
        await pilot.pause()
        assert app.palette.serial != before.serial and app.palette.empty != before.empty
        assert app.screen.query_one(TaskTable).row_count() == 20
        await pilot.press("escape")
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_replay_speed_keys_and_refusals(tmp_path: Path) -> None:
    source = ReplaySource(DEMO_LOG, speed=1.0)
    app = PilotkitApp(source)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("plus", "plus")
        assert source.speed == 4.0
        await pilot.press("minus", "minus", "minus")
        assert source.speed == 0.5
        await pilot.press("space")
        assert source.paused
        await app.until(lambda: app.model.connection.state == "paused")
        applied = source.applied
        await pilot.press("space")
        assert not source.paused
        for _ in range(6):
            await pilot.press("plus")
        await app.until(lambda: app.model.connection.state == "replayed", 30)
        assert applied < source.applied == source.total
        await pilot.press("s")  # a replay cannot submit
        assert isinstance(app.screen, OverviewScreen)
