"""The dashboard's defects, each pinned down on a replayed log driven through ``run_test``:
the list holding still, ``--pilot`` at the top, a fresh ``running`` filter, cancelled
tasks in sight, an 80x24 layout, the footer of a read-only dashboard, log times and
search, drafts of the submit screen."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from textual.widgets import Footer

from pilotkit.events import GroupAdded, TaskCancelled, TaskFinished, TaskStarted
from pilotkit.tui.app import PilotkitApp, retry_question
from pilotkit.tui.format import Palette
from pilotkit.tui.messages import OpenLogs, OpenPilot
from pilotkit.tui.replay import ReplaySource
from pilotkit.tui.screens.logs import LogsScreen
from pilotkit.tui.screens.pilot import PilotScreen
from pilotkit.tui.screens.submit import SpecEditor, SubmitScreen
from pilotkit.tui.widgets.event_log import EventLog
from pilotkit.tui.widgets.progress import GroupProgressView
from pilotkit.tui.widgets.task_table import TaskTable

from .conftest import DEMO_LOG, DEMO_RUN, DEMO_SPEC, SIZE

DEMO_PILOT = "demo-20261125-174054-86d4"


def replay(**options: Any) -> PilotkitApp:
    return PilotkitApp(ReplaySource(DEMO_LOG, speed=None, workdir=DEMO_RUN), tick=False, **options)


async def open_demo(app: PilotkitApp, pilot: Any) -> tuple[PilotScreen, TaskTable]:
    await app.until(lambda: app.model.connection.state == "replayed")
    if not isinstance(app.screen, PilotScreen):
        app.post_message(OpenPilot(DEMO_PILOT))
        await app.until(lambda: isinstance(app.screen, PilotScreen))
    screen = app.screen
    assert isinstance(screen, PilotScreen)
    tasks = screen.query_one(TaskTable)
    await app.until(lambda: tasks.row_count() == 20)
    await pilot.pause()
    return screen, tasks


def start(app: PilotkitApp, task: str, t: float) -> None:
    app.model.apply_event(TaskStarted(pilot=DEMO_PILOT, t=t, task=task, group="more", attempt=1, node="vm"))


async def repainted(app: PilotkitApp, pilot: Any) -> None:
    app.repaint()
    await pilot.pause()


async def test_the_recent_list_holds_still_while_read_and_follows_at_the_top() -> None:
    app = replay()
    async with app.run_test(size=(100, 30)) as pilot:
        _, tasks = await open_demo(app, pilot)
        t0 = app.model.latest_t
        for i in range(40):
            start(app, f"more-{i}", t0 + i)
        await repainted(app, pilot)
        assert tasks.cursor == 0 and tasks.selected is not None and tasks.selected.task == "more-39"

        # at the top the table follows the newest task
        start(app, "more-40", t0 + 40)
        await repainted(app, pilot)
        assert tasks.cursor == 0 and tasks.selected is not None and tasks.selected.task == "more-40"

        # reading further down: new tasks above move nothing on screen
        await pilot.press(*["j"] * 12)
        await pilot.pause()
        reading = tasks.selected
        assert reading is not None
        top = round(tasks.scroll_offset.y)
        first_on_screen = tasks.row_key(top)
        row_on_screen = tasks.cursor - top
        for i in range(41, 46):
            start(app, f"more-{i}", t0 + i)
        await repainted(app, pilot)
        top = round(tasks.scroll_offset.y)
        assert tasks.selected is not None and tasks.selected.task == reading.task
        assert tasks.row_key(top) == first_on_screen
        assert tasks.cursor - top == row_on_screen


async def test_pilot_option_opens_at_the_top_of_the_list() -> None:
    app = replay(pilot=DEMO_PILOT)
    async with app.run_test(size=SIZE) as pilot:
        _, tasks = await open_demo(app, pilot)
        assert tasks.cursor == 0 and round(tasks.scroll_offset.y) == 0
        assert tasks.selected is not None and tasks.selected.index == 19  # the latest task


async def test_running_filter_is_fresh_at_the_next_repaint() -> None:
    app = replay()
    async with app.run_test(size=SIZE) as pilot:
        _, tasks = await open_demo(app, pilot)
        await pilot.press("slash", *"running", "enter")
        await app.until(lambda: tasks.row_count() == 0)
        t0 = app.model.latest_t
        start(app, "more-0", t0 + 1)
        await repainted(app, pilot)
        assert tasks.row_count() == 1
        app.model.apply_event(TaskFinished(pilot=DEMO_PILOT, t=t0 + 2, task="more-0", group="more", attempt=1,
                                           node="vm", status="ok", exit_code=0, duration=1.0))
        await repainted(app, pilot)  # one repaint, not a second later
        assert tasks.row_count() == 0
        assert "0 task(s) matching running" in tasks.describe_view()


async def test_cancelled_tasks_have_a_column_and_a_colour_of_their_own() -> None:
    app = replay()
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await open_demo(app, pilot)
        t0 = app.model.latest_t
        app.model.apply_event(GroupAdded(pilot=DEMO_PILOT, t=t0, group="later", total=7))
        app.model.apply_event(TaskCancelled(pilot=DEMO_PILOT, t=t0 + 1, group="later", count=7))
        await repainted(app, pilot)
        text = str(screen.query_one("#groups", GroupProgressView).render())
        header, *rows = text.splitlines()
        assert header.split()[-1] == "cancel."
        later = next(r for r in rows if r.startswith("later"))
        assert later.split()[-1] == "7" and later.split()[-6] == "7"  # total, cancelled
    for palette in (Palette(), app.palette):
        assert palette.cancelled not in (palette.empty, palette.queued, palette.muted)


async def test_80x24_keeps_the_tasks_and_the_events() -> None:
    app = replay()
    async with app.run_test(size=(80, 24)) as pilot:
        screen, tasks = await open_demo(app, pilot)
        assert screen.has_class("-short") and screen.has_class("-narrow")
        events = screen.query_one(EventLog)
        assert tasks.region.height >= 5 and tasks.region.width >= 30
        assert events.region.height >= 5 and events.region.width >= 20
        assert tasks.region.bottom <= 23 and events.region.bottom <= 23
    app = replay()
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await open_demo(app, pilot)
        assert not screen.has_class("-short") and not screen.has_class("-narrow")


async def test_readonly_and_replays_leave_the_action_keys_out_of_the_footer() -> None:
    for options in ({}, {"readonly": True}):
        app = replay(**options)
        async with app.run_test(size=SIZE) as pilot:
            await open_demo(app, pilot)
            shown = {b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
            assert "Logs" in shown and not shown & {"Drain", "Cancel", "Retry failed", "Evict", "Submit"}
            assert "Cancel" not in str(app.screen.query_one(Footer).render())
            await pilot.press("c")  # the key still says why
            assert isinstance(app.screen, PilotScreen)


def test_retry_of_a_cancelled_pilot_says_what_it_will_do() -> None:
    from pilotkit.tui.model import PilotView

    view = PilotView(DEMO_PILOT)
    view.apply(GroupAdded(pilot=DEMO_PILOT, t=1.0, group="g", total=5))
    view.apply(TaskStarted(pilot=DEMO_PILOT, t=2.0, task="a", group="g", attempt=1, node="n"))
    view.apply(TaskFinished(pilot=DEMO_PILOT, t=3.0, task="a", group="g", attempt=1, node="n", status="ok",
                            exit_code=0))
    assert retry_question(view, DEMO_PILOT) is None  # not cancelled: retry at once
    view.state = "cancelled"
    question = retry_question(view, DEMO_PILOT)
    assert question is not None
    title, detail, yes = question
    assert "Restart cancelled pilot" in title and yes == "Restart pilot"
    assert "new allocation" in detail and "4 unfinished task(s)" in detail and "1 done" in detail


async def test_log_times_are_the_written_ones_and_search_finds_lines() -> None:
    app = replay()
    async with app.run_test(size=SIZE) as pilot:
        await app.until(lambda: app.model.connection.state == "replayed")
        app.post_message(OpenLogs(DEMO_PILOT, None))
        await app.until(lambda: isinstance(app.screen, LogsScreen))
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        await app.until(lambda: logs.ended is not None)
        first_t, first = logs.lines[0]
        stamp = datetime.strptime(first[:19], "%Y-%m-%d %H:%M:%S").timestamp()
        assert first_t == stamp  # the line's own time, not when it was read

        await pilot.press("slash", *"evicting", "enter")
        assert logs.search_text == "evicting" and len(logs.matches) == 2 and logs.match == 0
        assert all("evicting" in logs.lines[i][1] for i in logs.matches)
        await pilot.press("n")
        assert logs.match == 1
        await pilot.press("n")
        assert logs.match == 0
        await pilot.press("a")  # the whole file
        await app.until(lambda: logs.ended is not None and logs.cap > 5000)
        await pilot.press("escape")
        assert not isinstance(app.screen, LogsScreen)

        app.post_message(OpenLogs(DEMO_PILOT, "check-1", stderr=True))
        await app.until(lambda: isinstance(app.screen, LogsScreen))
        task_logs = app.screen
        assert isinstance(task_logs, LogsScreen)
        await app.until(lambda: task_logs.ended is not None)
        assert task_logs.lines and all(t is None for t, _ in task_logs.lines)  # written before: time unknown


async def test_submit_screen_keeps_a_draft_and_saves_it(tmp_path: Path, monkeypatch: Any) -> None:
    spec = tmp_path / "demo.toml"
    shutil.copy(DEMO_SPEC, spec)
    source = ReplaySource(DEMO_LOG, speed=None)
    source.can_control = True  # the screen, not the refusal of a replay
    app = PilotkitApp(source, tick=False, start_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.until(lambda: app.model.connection.state == "replayed")
        app.push_screen(SubmitScreen(spec, start=tmp_path))
        await app.until(lambda: isinstance(app.screen, SubmitScreen) and app.screen.original is not None)
        screen = app.screen
        assert isinstance(screen, SubmitScreen)
        editor = screen.query_one(SpecEditor)
        await app.until(lambda: bool(editor.text))
        editor.insert("# edited here\n", (0, 0))
        edited = editor.text
        await pilot.press("escape", "escape")  # the editor lets go of the focus, then the screen closes
        assert not isinstance(app.screen, SubmitScreen)
        assert spec.read_text() == DEMO_SPEC.read_text()  # nothing written unasked

        app.open_submit()  # no file named: the draft left last
        await app.until(lambda: isinstance(app.screen, SubmitScreen) and app.screen.original is not None)
        again = app.screen
        assert isinstance(again, SubmitScreen)
        await app.until(lambda: again.query_one(SpecEditor).text == edited)
        await pilot.press("f2")
        await app.until(lambda: spec.read_text() == edited)
        assert app.drafts.get(spec) is None and app.drafts.last is None
        await pilot.press("escape", "escape")
        app.open_submit()
        await pilot.pause()
        assert isinstance(app.screen, SubmitScreen) and app.screen.shown is None  # nothing left over


async def test_overview_at_80_columns_shows_the_tasks_and_follows_a_resize() -> None:
    from pilotkit.tui.widgets.pilot_table import PilotTable

    app = replay()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.until(lambda: app.model.connection.state == "replayed")
        await repainted(app, pilot)
        table = app.screen.query_one(PilotTable)
        assert table.narrow and [c.key.value for c in table.ordered_columns][:3] == ["pilot", "state", "progress"]
        assert table.row_count == 1 and "19/20 1F" in table.get_row_at(0)[2].plain  # 19 done, 1 failed
        await pilot.resize_terminal(160, 48)
        await repainted(app, pilot)
        assert not table.narrow and table.row_count == 1
        assert [c.key.value for c in table.ordered_columns][-1] == "progress"
        assert table.selected == DEMO_PILOT


async def test_task_log_lines_show_the_time_the_agent_saw_them_written(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DEMO_RUN, run)
    for err in (run / "tasks" / "check-1").glob("attempt-*.err"):  # the agent's samples (pilotkit.logtimes)
        Path(f"{err}.times").write_text(f"1764092456.5 {err.stat().st_size}\n")
    app = PilotkitApp(ReplaySource(DEMO_LOG, speed=None, workdir=run), tick=False)
    async with app.run_test(size=SIZE):
        await app.until(lambda: app.model.connection.state == "replayed")
        app.post_message(OpenLogs(DEMO_PILOT, "check-1", stderr=True))
        await app.until(lambda: isinstance(app.screen, LogsScreen))
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        await app.until(lambda: logs.ended is not None)
        assert logs.lines and all(t == 1764092456.5 for t, _ in logs.lines)


async def test_the_dashboard_collects_young_objects_less_often_and_restores_the_setting() -> None:
    import gc

    from pilotkit.tui.app import GC_YOUNG

    before = gc.get_threshold()
    app = replay()
    async with app.run_test(size=SIZE):
        assert gc.get_threshold() == (GC_YOUNG, *before[1:])
    assert gc.get_threshold() == before
