"""The dashboard app: one model, one data source, screens painted from the model.

The source runs in a worker and changes the model in place; it posts
:class:`~pilotkit.tui.messages.ModelChanged`, which the message queue coalesces, and the
app repaints the screen on top at most every :attr:`PilotkitApp.REFRESH` seconds. Widgets
post what the user wants (open, logs, actions) upwards; the app checks ``--readonly``,
asks before cancelling, and runs actions in a worker.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer

from ..errors import PilotkitError
from .format import Palette
from .messages import ConnectionChanged, ModelChanged, OpenLogs, OpenPilot, OpenSubmit, RequestAction
from .model import Connection, DashboardModel, PilotView
from .replay import ReplaySource
from .screens.base import DashboardScreen, Drafts
from .screens.logs import LogsScreen
from .screens.modals import ConfirmScreen, HelpScreen
from .screens.overview import OverviewScreen
from .screens.pilot import PilotScreen
from .screens.submit import SubmitScreen, check_spec
from .source import ActionRefused, DataSource, SubmitRefused

CONFIRM = {
    "cancel": ("Cancel pilot {pilot}?",
               "Queued tasks never start, running ones are stopped, the allocation is released.",
               "Cancel pilot"),
}
GC_YOUNG = 10_000
"""Allocations (less deallocations) between two collections of the youngest objects."""
ACTIONS_ON_A_PILOT = frozenset({"drain", "cancel", "retry"})
"""What the action keys do; ``--readonly`` and replays hide them all."""


def retry_question(view: PilotView | None, pilot: str) -> tuple[str, str, str] | None:
    """The question to ask before ``retry`` (None: retry at once).

    Retrying a pilot the user cancelled starts it again: a new allocation, with a new
    walltime, runs every task that did not finish. That undoes a cancel, so it asks."""
    if view is None or view.state != "cancelled":
        return None
    totals = view.totals()
    unfinished = max(0, totals.total - totals.done)
    return (f"Restart cancelled pilot {pilot}?",
            f"It was cancelled. Retry claims a new allocation (a new walltime) and queues "
            f"{unfinished} unfinished task(s) again ({totals.failed} failed, {totals.cancelled} cancelled, "
            f"the rest never ran); {totals.done} done task(s) are kept.",
            "Restart pilot")


class PilotkitApp(App[None]):
    """``pilotkit tui``."""

    CSS_PATH = str(Path(__file__).with_name("pilotkit.tcss"))
    TITLE = "pilotkit"
    REFRESH = 0.1
    """Least time between two repaints (seconds): at most ten a second."""
    TICK = 1.0
    """Repaint this often anyway (walltime left, the clock)."""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("R", "reconnect", "Reconnect", show=False),
        Binding("plus", "faster", "Faster", show=False),
        Binding("minus", "slower", "Slower", show=False),
        Binding("space", "pause", "Pause", show=False),
    ]

    def __init__(
        self,
        source: DataSource,
        *,
        readonly: bool = False,
        spec: Path | None = None,
        pilot: str | None = None,
        campaign: str | None = None,
        start_dir: Path | None = None,
        tick: bool = True,
    ) -> None:
        super().__init__()
        self.source = source
        self.readonly = readonly
        self.spec = spec
        self.initial_pilot = pilot
        self.initial_campaign = campaign
        self.start_dir = start_dir
        self.model = DashboardModel(frozen_clock=source.mode == "replay")
        self.palette = Palette()
        self.refreshed = asyncio.Event()
        """Set after each repaint (tests wait on it instead of sleeping)."""
        self.repaints = 0
        self.last_repaint = 0.0
        """Seconds the last repaint took."""
        self._last = 0.0
        self._pending: Timer | None = None
        self._tick = tick
        self._connected = asyncio.Event()
        self.drafts = Drafts()
        """Unsaved spec edits of the submit screen."""
        self._gc_threshold = gc.get_threshold()

    # -------------------------------------------------------------- start

    def on_unmount(self) -> None:
        gc.set_threshold(*self._gc_threshold)

    def on_mount(self) -> None:
        # What exists now (modules, the app) lives as long as the process: keep it out of
        # the garbage collector's full passes, which pause the screen for as long as they
        # walk (Python's own advice for long-running processes).
        gc.freeze()
        # Collect the youngest objects after GC_YOUNG allocations rather than 700: a batch
        # of events leaves fewer survivors to promote, and the full passes (which walk the
        # task columns: 100,000 rows are a dozen lists that long) come seldom enough that
        # a busy pilot's batches do not wait on them; the old setting comes back on exit.
        gc.set_threshold(GC_YOUNG, *self._gc_threshold[1:])
        self.palette = Palette.from_theme(self.theme_variables)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.push_screen(OverviewScreen())
        if self.initial_pilot is not None:
            self.push_screen(PilotScreen(self.initial_pilot))
        if self.initial_campaign is not None:
            self.open_campaign(self.initial_campaign)
        self.feed()
        if self._tick:
            self.set_interval(self.TICK, self.repaint)
        if self.spec is not None:
            self.submit_on_start(self.spec)

    @work(exclusive=True, group="source")
    async def feed(self) -> None:
        """The data source, for the life of the app."""
        await self.source.run(self.model, self._changed, self._connection)

    def _changed(self) -> None:
        self.post_message(ModelChanged())

    def _connection(self, connection: Connection) -> None:
        self.post_message(ConnectionChanged(connection))

    def _theme_changed(self, theme: Theme) -> None:
        self.palette = Palette.from_theme(self.theme_variables)
        self.repaint()

    # -------------------------------------------------------------- repainting

    def on_model_changed(self, message: ModelChanged) -> None:
        self.schedule_repaint()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        self.model.connection = message.connection
        if message.connection.state == "connected":
            self._connected.set()
        else:
            self._connected.clear()
        self.repaint()

    def schedule_repaint(self) -> None:
        if self._pending is not None:
            return
        wait = self.REFRESH - (time.monotonic() - self._last)
        if wait <= 0:
            self.repaint()
        else:
            self._pending = self.set_timer(wait, self._timed_repaint)

    def _timed_repaint(self) -> None:
        self._pending = None
        self.repaint()

    def repaint(self) -> None:
        """Paint the screen on top from the model, now."""
        start = time.perf_counter()
        self._last = time.monotonic()
        try:
            screen = self.screen
        except ScreenStackError:  # closing
            return
        if isinstance(screen, DashboardScreen) and screen.is_mounted:
            screen.repaint()
        self.last_repaint = time.perf_counter() - start
        self.repaints += 1
        self.refreshed.set()

    async def until(self, condition: Callable[[], object], timeout: float = 30.0) -> None:
        """Wait until ``condition()`` holds, checking after each repaint."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            self.refreshed.clear()
            try:
                await asyncio.wait_for(self.refreshed.wait(), min(left, self.TICK * 2))
            except TimeoutError:
                pass

    # -------------------------------------------------------------- navigation

    def on_open_pilot(self, message: OpenPilot) -> None:
        top = self.screen
        if isinstance(top, PilotScreen) and top.pilot_id == message.pilot:
            return
        self.push_screen(PilotScreen(message.pilot))

    def on_open_logs(self, message: OpenLogs) -> None:
        self.push_screen(LogsScreen(message.pilot, message.task, stderr=message.stderr))

    def on_open_submit(self, message: OpenSubmit) -> None:
        self.open_submit()

    def open_submit(self, path: Path | None = None) -> None:
        if self.refuse("submit"):
            return
        self.push_screen(SubmitScreen(path, start=self.start_dir))

    def open_campaign(self, campaign: str) -> None:
        from .screens.campaign import CampaignScreen

        self.push_screen(CampaignScreen(campaign))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # -------------------------------------------------------------- actions

    @property
    def can_act(self) -> bool:
        """Whether actions are offered at all (not ``--readonly``, not a replay)."""
        return not self.readonly and self.source.can_control

    def refuse(self, what: str) -> bool:
        """True (and says why) when this dashboard may not ``what``."""
        if self.readonly:
            self.notify(f"{what}: refused, the dashboard is read-only (--readonly)", severity="warning")
            return True
        if not self.source.can_control:
            self.notify(f"{what}: refused, a replay is read-only", severity="warning")
            return True
        return False

    def on_request_action(self, message: RequestAction) -> None:
        self.request(message.action, message.pilot)

    def request(self, action: str, pilot: str) -> None:
        if self.refuse(action):
            return
        confirm = CONFIRM.get(action)
        if action == "retry":
            confirm = retry_question(self.model.pilots.get(pilot), pilot)
        if confirm is None:
            self.do_action(action, pilot)
            return
        question, detail, yes = confirm

        def answered(ok: bool | None) -> None:
            if ok:
                self.do_action(action, pilot)
            else:
                self.notify(f"{action}: not done", timeout=2)

        self.push_screen(ConfirmScreen(question.format(pilot=pilot), detail, yes=yes), answered)

    @work(exclusive=True, group="control")
    async def do_action(self, action: str, pilot: str) -> None:
        try:
            said = await self.source.control(action, pilot)
        except ActionRefused as exc:
            self.notify(exc.message, severity="warning")
        except PilotkitError as exc:
            self.notify(f"{action} {pilot}: {exc.message}", severity="error")
        else:
            self.notify(said)

    @work(exclusive=True, group="submit")
    async def submit_on_start(self, spec: Path) -> None:
        """``pilotkit tui SPEC``: check, submit once connected, show the pilot."""
        try:
            text = await asyncio.to_thread(spec.read_text)
        except OSError as exc:
            self.notify(f"cannot read {spec}: {exc.strerror or exc}", severity="error")
            return
        problems = await asyncio.to_thread(check_spec, text, spec.resolve())
        if problems:
            self.push_screen(SubmitScreen(spec, start=self.start_dir, problems=problems))
            return
        if self.refuse("submit"):
            return
        try:
            await asyncio.wait_for(self._connected.wait(), 120)
        except TimeoutError:
            self.notify(f"not submitted: no daemon connection ({self.model.connection.detail})", severity="error")
            return
        try:
            pilot = await self.source.submit(text, str(spec.resolve()))
        except SubmitRefused as exc:
            self.push_screen(SubmitScreen(spec, start=self.start_dir, problems=exc.problems))
            return
        except PilotkitError as exc:
            self.notify(f"submit {spec}: {exc.message}", severity="error")
            return
        self.notify(f"submitted {pilot}")
        self.post_message(OpenPilot(pilot))

    # -------------------------------------------------------------- source control

    def action_reconnect(self) -> None:
        self.source.reconnect()

    def _replay(self) -> ReplaySource | None:
        return self.source if isinstance(self.source, ReplaySource) else None

    def action_faster(self) -> None:
        replay = self._replay()
        if replay is not None:
            replay.faster()
            self.repaint()

    def action_slower(self) -> None:
        replay = self._replay()
        if replay is not None:
            replay.slower()
            self.repaint()

    def action_pause(self) -> None:
        replay = self._replay()
        if replay is not None:
            replay.toggle_pause()

    # -------------------------------------------------------------- palette

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Submit a spec", "Pick a spec file, check it, submit it", self.open_submit)
        yield SystemCommand("Help: keys", "Every key of the dashboard", self.action_help)
        if self.source.mode == "live":
            yield SystemCommand("Reconnect", "Connect to the daemon again now", self.action_reconnect)
        current = screen.pilot_id if isinstance(screen, PilotScreen) else None
        for view in self.model.ordered():
            yield SystemCommand(f"Open {view.id}", f"{view.state}, {view.provider}",
                                _bind(self.post_message, OpenPilot(view.id)), discover=False)
        for campaign in self.model.campaigns:
            yield SystemCommand(f"Open campaign {campaign.id}", f"{campaign.state}, {campaign.done}/{campaign.total} done",
                                _bind(self.open_campaign, campaign.id), discover=False)
        if current is not None and self.can_act:
            for action in ("drain", "cancel", "retry"):
                yield SystemCommand(f"{action.capitalize()} {current}", f"{action} this pilot",
                                    _bind(self.request, action, current))


def _bind(fn: Callable[..., object], *args: object) -> Callable[[], None]:
    def call() -> None:
        fn(*args)

    return call
