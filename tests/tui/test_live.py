"""Every screen and action of the dashboard against a real ``pilotkit daemon`` process,
driven with ``App.run_test`` and key presses."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from textual.widgets import Input, OptionList, RichLog

from pilotkit.client import Target
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.live import LiveSource
from pilotkit.tui.messages import OpenPilot
from pilotkit.tui.screens.logs import LogsScreen
from pilotkit.tui.screens.modals import ConfirmScreen, HelpScreen
from pilotkit.tui.screens.overview import OverviewScreen
from pilotkit.tui.screens.pilot import PilotScreen
from pilotkit.tui.screens.submit import SpecEditor, SubmitScreen
from pilotkit.tui.widgets.pilot_table import PilotTable
from pilotkit.tui.widgets.status_bar import StatusBar
from pilotkit.tui.widgets.task_table import TaskTable

from .conftest import DEMO_SPEC, SIZE, DaemonProcess, quick_spec


class RecordingApp(PilotkitApp):
    """The dashboard, keeping what it told the user."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.told: list[str] = []

    def notify(self, message: str, **kwargs: Any) -> None:  # type: ignore[override]
        self.told.append(str(message))
        super().notify(message, **kwargs)


def live_app(daemon: Any, **options: Any) -> RecordingApp:
    source = LiveSource(Target(socket=str(daemon.socket)), backoff=0.2, cap=1.0, poll=0.5)
    return RecordingApp(source, start_dir=Path(daemon.base), **options)


async def open_pilot_page(app: PilotkitApp, pilot: Any, pilot_id: str) -> Any:
    """From the overview, open ``pilot_id``'s page; its view in the model."""
    await app.until(lambda: pilot_id in app.model.pilots)
    await pilot.press("enter")
    assert isinstance(app.screen, PilotScreen) and app.screen.pilot_id == pilot_id
    return app.model.pilots[pilot_id]


def status_text(app: PilotkitApp) -> str:
    return str(app.screen.query_one(StatusBar).render())


def notices(app: RecordingApp) -> str:
    return "\n".join(app.told)


async def test_overview_pilot_filter_sort_logs_help(tui_daemon: Any, tmp_path: Path) -> None:
    spec = tmp_path / "demo.toml"
    shutil.copy(DEMO_SPEC, spec)
    pilot_id = tui_daemon.submit(spec)
    app = live_app(tui_daemon)
    async with app.run_test(size=SIZE) as pilot:
        await app.until(lambda: pilot_id in app.model.pilots)
        assert isinstance(app.screen, OverviewScreen)
        assert "connected" in status_text(app) and "LIVE" in status_text(app)
        assert app.screen.query_one(PilotTable).selected == pilot_id

        await pilot.press("enter")
        assert isinstance(app.screen, PilotScreen) and app.screen.pilot_id == pilot_id
        view = app.model.pilots[pilot_id]
        await app.until(lambda: view.hydrated and view.terminal and view.totals().done == 19)
        assert view.state == "failed" and view.totals().failed == 1
        tasks = app.screen.query_one(TaskTable)
        await app.until(lambda: tasks.row_count() == 20)

        # / filters (every word), ! inverts, esc clears
        await pilot.press("slash", *"check", "enter")
        await app.until(lambda: tasks.row_count() == 4)
        box = app.screen.query_one("#task-filter", Input)
        await pilot.press("slash")
        box.value = "!check"
        await pilot.press("enter")
        await app.until(lambda: tasks.row_count() == 16)
        await pilot.press("slash")
        box.value = "check failed"
        await pilot.press("enter")
        await app.until(lambda: tasks.row_count() == 1)
        assert tasks.selected is not None and tasks.selected.task == "check-1"

        # the failed task's stderr, then stdout; wrap and timestamps
        await pilot.press("L")
        assert isinstance(app.screen, LogsScreen) and app.screen.stderr
        logs = app.screen
        await app.until(lambda: logs.ended is not None)
        assert any("missing column: mass" in line for _, line in logs.lines)
        await pilot.press("e")
        await app.until(lambda: not logs.stderr and logs.ended is not None)
        assert [line for _, line in logs.lines] == ["checking units"]
        await pilot.press("t", "w")
        assert logs.timestamps and logs.wrap
        assert app.screen.query_one(RichLog).lines
        await pilot.press("escape")
        assert isinstance(app.screen, PilotScreen)

        await pilot.press("slash", "escape")  # clears the filter
        await app.until(lambda: tasks.row_count() == 20)
        await pilot.press("s")  # sort by task
        assert tasks.sort_key == "task" and tasks.row(0) is not None and tasks.row(0).task == "check-0"  # type: ignore[union-attr]
        await pilot.press("S")
        assert tasks.row(0).task == "fit-15"  # type: ignore[union-attr]
        await pilot.press("G", "k", "g", "j")
        assert tasks.cursor == 1

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("l")  # the pilot's own log
        pilot_log = app.screen
        assert isinstance(pilot_log, LogsScreen) and pilot_log.task_id is None
        await app.until(lambda: pilot_log.ended is not None)
        assert any("running -> evicting" in line for _, line in pilot_log.lines)


async def test_submit_screen_validates_inline_then_submits(tui_daemon: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[app]\ntype = "tasks"\n[[app.groups]]\nname = "g"\ncomand = "true"\n')
    good = quick_spec(tmp_path, tasks=4, seconds=0.1)
    app = live_app(tui_daemon)
    async with app.run_test(size=SIZE) as pilot:
        await app.until(lambda: app.model.connection.state == "connected")
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SubmitScreen)
        screen.query_one("#spec-path", Input).value = str(bad)
        screen.query_one("#spec-path", Input).focus()
        await pilot.press("enter")
        editor = screen.query_one(SpecEditor)
        await app.until(lambda: screen.checked is not None and screen.checked == editor.text and editor.text)
        assert screen.problems, "the misspelt key is a problem"
        lines = {p.line for p in screen.problems}
        assert 6 in lines and any("comand" in p.key or "command" in (p.suggestion or "") for p in screen.problems)
        assert 5 in screen.query_one(SpecEditor).problem_lines  # 0-based: line 6 is marked
        assert screen.query_one("#spec-problems", OptionList).option_count == len(screen.problems)
        await pilot.press("ctrl+s")  # refused: problems
        assert isinstance(app.screen, SubmitScreen)

        # fix it in the editor: the check runs again as you type
        editor.load_text(good.read_text())
        await app.until(lambda: screen.checked == editor.text, 20)
        assert screen.problems == []
        await pilot.press("ctrl+s")
        await app.until(lambda: isinstance(app.screen, PilotScreen))
        assert isinstance(app.screen, PilotScreen)
        new = app.screen.pilot_id
        assert new.startswith("quick-")  # named by the edited text, not the file it came from
        await app.until(lambda: app.model.pilots[new].terminal and app.model.pilots[new].totals().done == 4)


async def test_actions_confirm_cancel_drain_retry(tui_daemon: Any, tmp_path: Path) -> None:
    slow = tui_daemon.submit(quick_spec(tmp_path, tasks=8, seconds=30, name="slow"))
    app = live_app(tui_daemon, pilot=slow)
    async with app.run_test(size=SIZE) as pilot:
        view = app.model.pilot(slow)
        await app.until(lambda: view.state == "running" and view.totals().running == 2)
        assert isinstance(app.screen, PilotScreen)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert isinstance(app.screen, PilotScreen) and not view.terminal
        await pilot.press("e")  # no evict: the daemon has none, the key does nothing
        assert isinstance(app.screen, PilotScreen)
        await pilot.press("c")
        await pilot.press("y")
        await app.until(lambda: view.state == "cancelled" and view.totals().cancelled >= 6)
        # the tasks that never started are in the list too, as cancelled
        await app.until(lambda: sum(1 for s in view.tasks.status if s == "cancelled") >= 6)
        assert len(view.tasks) == 8

        # retry of a cancelled pilot would start it again: it asks first and says so
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Restart cancelled pilot" in app.screen.question and "new allocation" in app.screen.detail
        await pilot.press("n")
        await app.until(lambda: "retry: not done" in notices(app))
        assert view.state == "cancelled" and view.summary is not None and view.summary.run == 1

        # drain: queued tasks never start, running ones finish
        drained = tui_daemon.submit(quick_spec(tmp_path, tasks=6, seconds=3, name="drained"))
        await app.until(lambda: drained in app.model.pilots)
        await pilot.press("escape")
        app.post_message(OpenPilot(drained))
        await app.until(lambda: isinstance(app.screen, PilotScreen) and app.screen.pilot_id == drained)
        dview = app.model.pilot(drained)
        await app.until(lambda: dview.totals().running == 2)
        await pilot.press("d")
        await app.until(lambda: "draining" in notices(app))
        await app.until(lambda: dview.terminal, 30)
        totals = dview.totals()
        assert totals.cancelled >= 2 and totals.done >= 2 and totals.done + totals.cancelled == 6

        # retry the failed tasks of a failed pilot: a new run
        failed = tui_daemon.submit(quick_spec(tmp_path, tasks=4, seconds=0.1, name="flaky", fail=True))
        await pilot.press("escape")
        app.post_message(OpenPilot(failed))
        await app.until(lambda: isinstance(app.screen, PilotScreen) and app.screen.pilot_id == failed)
        fview = app.model.pilot(failed)
        await app.until(lambda: fview.state == "failed")
        await pilot.press("r")
        await app.until(lambda: "run 2: 1 task(s) queued again" in notices(app))
        await app.until(lambda: fview.summary is not None and fview.summary.run == 2 and fview.terminal)


async def test_readonly_refuses_actions(tui_daemon: Any, tmp_path: Path) -> None:
    pilot_id = tui_daemon.submit(quick_spec(tmp_path, tasks=2, seconds=0.1))
    app = live_app(tui_daemon, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await app.until(lambda: pilot_id in app.model.pilots)
        assert "read-only" in status_text(app)
        shown = {b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
        assert not shown & {"Drain", "Cancel", "Retry failed", "Submit"}  # not offered
        for key in ("c", "d", "r", "s"):
            await pilot.press(key)
            assert isinstance(app.screen, OverviewScreen), key
        assert notices(app).count("read-only") == 4  # pressed anyway: says why not


async def test_lost_daemon_shows_and_reconnects(tui_daemon: Any) -> None:
    app = live_app(tui_daemon)
    async with app.run_test(size=SIZE):
        await app.until(lambda: app.model.connection.state == "connected")
        tui_daemon.stop()
        await app.until(lambda: app.model.connection.state == "reconnecting")
        assert "reconnecting" in status_text(app) and "retry" in status_text(app)
        tui_daemon.start()
        await app.until(lambda: app.model.connection.state == "connected", 30)
        assert "connected" in status_text(app)


async def test_gives_up_after_bounded_retries(tmp_path: Path) -> None:
    source = LiveSource(Target(socket=str(tmp_path / "none.sock")), retries=2, backoff=0.05, cap=0.1)
    app = PilotkitApp(source)
    async with app.run_test(size=SIZE):
        await app.until(lambda: app.model.connection.state == "lost", 10)
        assert "gave up after 2 retries" in status_text(app)


async def test_does_not_start_a_daemon_unasked_and_says_how(tmp_path: Path, monkeypatch: Any) -> None:
    d = DaemonProcess(tmp_path / "stopped")
    for key in ("XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(key, d.env[key])
    app = PilotkitApp(LiveSource(backoff=0.05, cap=0.1, retries=2))
    async with app.run_test(size=SIZE):
        await app.until(lambda: app.model.connection.state == "lost", 20)
        assert "pilotkit daemon --detach" in status_text(app)
        assert "--start-daemon" in status_text(app)
    assert not d.socket.exists()  # no daemon came up behind the user's back


async def test_starts_a_daemon_when_none_runs(tmp_path: Path, monkeypatch: Any) -> None:
    d = DaemonProcess(tmp_path / "auto")
    for key in ("XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(key, d.env[key])
    app = PilotkitApp(LiveSource(start_daemon=True, backoff=0.2))
    try:
        async with app.run_test(size=SIZE):
            await app.until(lambda: app.model.connection.state == "connected", 60)
            assert app.model.daemon is not None
    finally:
        d.cli("shutdown", check=False)


async def test_pilot_page_shows_what_the_app_serves(tui_daemon: Any, tmp_path: Path) -> None:
    """A real Jupyter pilot under the daemon: its URL with the token appears on the pilot's
    page once the server is up (from the daemon's pilot detail), and goes once it stops."""
    import importlib.util
    import json

    from pilotkit.testing import need
    from pilotkit.tui.widgets import Caption

    for module in ("pilotkit_jupyter", "jupyter_server"):
        need(module, importlib.util.find_spec(module) is not None, "pip install pilotkit-jupyter")
    spec = tmp_path / "nb.toml"
    spec.write_text('name = "nb-services"\n[pilot]\ngrace = "2s"\n[app]\ntype = "jupyter"\nlab = false\n')
    workdir = tmp_path / "nb-pilot"
    pilot_id = tui_daemon.submit(spec, "--workdir", str(workdir))
    app = live_app(tui_daemon)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_pilot_page(app, pilot, pilot_id)
        await app.until(lambda: bool(view.services), timeout=60)
        url = json.loads((workdir / "jupyter.json").read_text())["url"]
        assert [(s.name, s.url) for s in view.services] == [("Jupyter", url)]
        caption = app.screen.query_one("#pilot-services", Caption)
        await app.until(lambda: bool(caption.display) and url in str(caption.render()))
        tui_daemon.cli("drain", pilot_id)
        await app.until(lambda: view.terminal and not caption.display, timeout=60)
        assert view.state == "done", view.reason


async def test_pilot_page_shows_the_work_inside_a_dask_cluster(tui_daemon: Any, tmp_path: Path) -> None:
    """A real Dask pilot under the daemon: the Dask task prefixes of its script appear on
    the pilot's page under "Dask tasks", each bar full (done = total) once it ran."""
    import importlib.util

    from pilotkit.testing import need
    from pilotkit.tui.widgets.progress import GroupProgressView
    from pilotkit.vocab import Counts

    for module in ("pilotkit_dask", "distributed"):
        need(module, importlib.util.find_spec(module) is not None, "pip install pilotkit-dask")
    (tmp_path / "sums.py").write_text(
        "from distributed import Client\n"
        "def square(x):\n    return x * x\n"
        "client = Client()\n"
        "total = sum(client.gather(client.map(square, range(40))))\n"
        "assert total == sum(x * x for x in range(40)), total\n"
    )
    spec = tmp_path / "sums.toml"
    spec.write_text('name = "dask-progress"\n[pilot]\ngrace = "2s"\n[app]\ntype = "dask"\nscript = "sums.py"\n'
                    'progress_interval = "0.2s"\n')  # fmt: skip
    pilot_id = tui_daemon.submit(spec, "--workdir", str(tmp_path / "run"))
    app = live_app(tui_daemon)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_pilot_page(app, pilot, pilot_id)
        box = app.screen.query_one("#app-progress", GroupProgressView)
        assert not box.display, "no Dask work yet: the box is hidden"
        await app.until(lambda: view.terminal, timeout=120)
        assert view.state == "done", view.reason
        dask = view.app_progress["dask"]
        assert dask["square"] == Counts(total=40, done=40), dask
        await app.until(lambda: bool(box.display) and "square" in str(box.render()))
        assert box.border_title == "Dask tasks"
        text = str(box.render())
        assert text.splitlines()[0].split()[0] == "name" and "total" in text.splitlines()[-1]
