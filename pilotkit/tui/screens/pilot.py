"""One pilot: its nodes, task progress per group, its tasks and its events."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input

from ...errors import PilotkitError
from ...protocol import QueueResult
from ...vocab import Counts
from ..format import duration, walltime_cell
from ..messages import OpenLogs, RequestAction
from ..model import DashboardModel, PilotView
from ..shell import NoShell, ShellCommand, shell_command
from ..source import ActionRefused
from ..widgets import Caption, palette_of
from ..widgets.event_log import EventLog
from ..widgets.nodes import NodeDetail, NodeTable
from ..widgets.progress import GroupProgressView
from ..widgets.task_table import TaskTable
from .base import DashboardScreen
from .queue import eta_text

FILTER_DELAY = 0.15
"""Seconds of no typing before the task filter applies."""
RATE_POLL = 2.0
"""Seconds between two questions for the pilot's rate and ETA (the daemon's ``queue``)."""


class PilotScreen(DashboardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter"),
        Binding("l", "logs", "Logs"),
        Binding("L", "logs(True)", "stderr", show=False),
        Binding("w", "queue", "Queue"),
        Binding("i", "describe", "Describe"),
        Binding("F", "failures", "Failures"),
        Binding("t", "timeline", "Timeline"),
        Binding("n", "nodes", "Nodes"),
        Binding("exclamation_mark", "shell", "Shell"),
        Binding("d", "act('drain')", "Drain"),
        Binding("c", "act('cancel')", "Cancel"),
        Binding("r", "act('retry')", "Retry failed"),
    ]

    def __init__(self, pilot_id: str) -> None:
        super().__init__()
        self.pilot_id = pilot_id
        self._filter_timer: Timer | None = None
        self.backlog: QueueResult | None = None
        """The pilot's rate and ETA, shown under the task groups (a live daemon's ``queue``)."""

    def heading(self) -> str:
        return self.pilot_id

    def body(self) -> ComposeResult:
        yield Caption(id="pilot-title")
        yield Caption(id="pilot-services")
        with Horizontal(id="nodes-panel"):
            yield NodeTable(id="nodes")
            yield NodeDetail(id="node-detail")
        yield GroupProgressView(id="groups")
        yield GroupProgressView(id="app-progress", label="name")
        with Horizontal(id="pilot-bottom"):
            with Vertical(id="tasks-panel"):
                yield Input(placeholder="filter tasks: words to match, ! to invert (enter: apply, esc: clear)",
                            id="task-filter")
                yield Caption(id="tasks-caption")
                yield TaskTable(id="tasks")
            yield EventLog(id="events")

    def on_mount(self) -> None:
        self.query_one("#task-filter", Input).display = False
        self.query_one("#nodes-panel").border_title = "Nodes"
        self.query_one("#groups").border_title = "Task groups"
        self.query_one("#app-progress").display = False
        self.query_one("#tasks-panel").border_title = "Tasks"
        self.query_one("#events").border_title = "Events"
        self.query_one(TaskTable).focus()
        self.dashboard.source.watch(self.pilot_id)
        self.follow_rate()

    @work(exclusive=True, group="rate")
    async def follow_rate(self) -> None:
        """Ask for the rate and ETA every :data:`RATE_POLL` seconds while the pilot runs."""
        while True:
            view = self.dashboard.model.pilots.get(self.pilot_id)
            if view is not None and view.terminal:
                self.backlog = None
                self._rate_line()
                return
            try:
                self.backlog = await self.dashboard.source.throughput(self.pilot_id)
            except ActionRefused:
                return  # a replay, or a daemon without ``queue``: no line
            except PilotkitError:
                self.backlog = None
            self._rate_line()
            await asyncio.sleep(RATE_POLL)

    def _rate_line(self) -> None:
        """Tasks per minute and when the backlog is done, against the drain point (green
        before it, red after), on the task groups' lower border."""
        if not self.is_mounted:
            return
        q = self.backlog
        groups = self.query_one("#groups")
        if q is None:
            groups.border_subtitle = None
            return
        p = palette_of(self)
        text = Text(no_wrap=True)
        if q.rate is None:
            text.append(f"no task finished in the last {q.window:.0f}s", p.muted)
        else:
            text.append(f"{q.rate:.1f} tasks/min, ")
            text.append_text(eta_text(q, p))
        groups.border_subtitle = text

    def on_screen_resume(self) -> None:
        self.dashboard.source.watch(self.pilot_id)
        super().on_screen_resume()

    # -------------------------------------------------------------- painting

    def refresh_view(self, model: DashboardModel) -> None:
        view = model.pilots.get(self.pilot_id)
        if view is None:
            self.query_one("#pilot-title", Caption).show(f"{self.pilot_id}: unknown to the daemon (yet)")
            return
        self._title(view, model.now())
        self._services(view)
        nodes = self.query_one(NodeTable)
        nodes.sync(view)
        self._detail(view)
        self.query_one("#groups", GroupProgressView).show(view.groups(), view.totals())
        self._app_progress(view)
        tasks = self.query_one(TaskTable)
        tasks.sync(view, model.now())
        self.query_one("#tasks-caption", Caption).show(tasks.describe_view())
        self.query_one(EventLog).sync(view)

    def _title(self, view: PilotView, now: float) -> None:
        p = palette_of(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(view.name, Style(bold=True))
        text.append(f"  {view.id}  ", p.muted)
        text.append(view.state, Style(color=p.state(view.state), bold=True))
        if view.reason:
            text.append(f" ({view.reason})", p.muted)
        text.append(f"  {view.provider}")
        if view.job_id:
            text.append(f" job {view.job_id}", p.muted)
        text.append(f"  {view.node_count} node(s), {view.cores} cores, {view.gpus} GPUs")
        if view.summary is not None and view.summary.run > 1:
            text.append(f"  run {view.summary.run}", p.muted)
        if view.walltime_end is not None and not view.terminal:
            text.append("  walltime ")
            text.append(walltime_cell(view.walltime_left(now), view.walltime_span(), 12, p))
        elif view.ended is not None and view.created is not None:
            text.append(f"  ran {duration(view.ended - view.created)}", p.muted)
        self.query_one("#pilot-title", Caption).show(text)

    def _services(self, view: PilotView) -> None:
        """One line per URL or address the pilot's app serves; hidden when none."""
        caption = self.query_one("#pilot-services", Caption)
        shown = bool(view.services) and not view.terminal
        if caption.display != shown:
            caption.display = shown
        if not shown:
            return
        p = palette_of(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, service in enumerate(view.services[:4]):
            text.append("\n" if i else "")
            text.append(f"{service.name:<15}", p.muted)
            text.append(f" {service.url}")
        caption.styles.height = min(4, len(view.services))
        caption.show(text)

    def _app_progress(self, view: PilotView) -> None:
        """The work inside the app's own cluster (``app-progress`` events: Dask task
        prefixes, Ray functions), one bar per name; hidden until there is some."""
        box = self.query_one("#app-progress", GroupProgressView)
        apps = view.app_progress
        if box.display != bool(apps):
            box.display = bool(apps)
        if not apps:
            return
        if len(apps) == 1:
            ((app, rows),) = apps.items()
        else:
            app = "app"
            rows = {f"{a}:{name}": c for a, names in apps.items() for name, c in names.items()}
        box.border_title = f"{app.capitalize()} tasks"
        totals = Counts()
        for counts in rows.values():
            totals.add(counts)
        box.show(rows, totals)

    def _detail(self, view: PilotView) -> None:
        name = self.query_one(NodeTable).selected
        node = view.nodes.get(name) if name is not None else None
        self.query_one(NodeDetail).show(node)

    @on(NodeTable.Highlighted, "#nodes")
    def _node_moved(self, event: NodeTable.Highlighted) -> None:
        view = self.dashboard.model.pilots.get(self.pilot_id)
        if view is not None:
            self._detail(view)

    @on(NodeTable.Selected, "#nodes")
    def _node_chosen(self, event: NodeTable.Selected) -> None:
        self.action_logs()

    # -------------------------------------------------------------- the filter

    def action_filter(self) -> None:
        box = self.query_one("#task-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#task-filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        """Filter once typing pauses (a filter scans every task)."""
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY, self._apply_filter)

    def _apply_filter(self) -> None:
        self._filter_timer = None
        table = self.query_one(TaskTable)
        table.set_filter(self.query_one("#task-filter", Input).value)
        self.query_one("#tasks-caption", Caption).show(table.describe_view())

    @on(Input.Submitted, "#task-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._apply_filter()
        self.query_one(TaskTable).focus()
        if not event.value:
            event.input.display = False

    def action_back(self) -> None:
        box = self.query_one("#task-filter", Input)
        if box.has_focus or box.value:
            box.value = ""
            box.display = False
            self._apply_filter()
            self.query_one(TaskTable).focus()
            return
        self.dashboard.source.watch(None)
        self.dismiss()

    # -------------------------------------------------------------- actions

    @on(TaskTable.Selected, "#tasks")
    def _task_chosen(self, event: TaskTable.Selected) -> None:
        self.post_message(OpenLogs(self.pilot_id, event.key))

    def action_logs(self, stderr: bool = False) -> None:
        """The selected task's output; from the node table, the pilot's log."""
        if self.query_one(NodeTable).has_focus:
            self.post_message(OpenLogs(self.pilot_id, None))
            return
        row = self.query_one(TaskTable).selected
        self.post_message(OpenLogs(self.pilot_id, row.task if row is not None else None, stderr))

    def action_queue(self) -> None:
        from .queue import QueueScreen

        self.app.push_screen(QueueScreen(self.pilot_id))

    def action_shell(self) -> None:
        """A shell on the selected node (the first one when none is selected)."""
        if self.dashboard.refuse("shell"):
            return
        view = self.dashboard.model.pilots.get(self.pilot_id)
        if view is None:
            return
        if view.terminal:
            self.notify(f"shell: {self.pilot_id} has ended; its allocation is gone", severity="warning")
            return
        node = self.query_one(NodeTable).selected or next(iter(view.nodes), None)
        try:
            command = shell_command(provider=view.provider, job_id=view.job_id, node=node, workdir=view.workdir,
                                    remote=self.dashboard.source.remote)
        except NoShell as exc:
            self.notify(exc.message, severity="warning")
            return
        self.run_shell(command)

    @work(exclusive=True, group="shell")
    async def run_shell(self, command: ShellCommand) -> None:
        try:
            with self.app.suspend():
                print(f"pilotkit: {command.what}; exit it to go back to the dashboard", flush=True)
                proc = await asyncio.create_subprocess_exec(*command.argv, cwd=command.cwd)
                code = await proc.wait()
        except SuspendNotSupported:
            self.notify("shell: this terminal cannot hand itself over (a browser or a test)", severity="warning")
            return
        except OSError as exc:
            self.notify(f"shell: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"back from {command.what} (exit {code})", timeout=3)
        self.repaint()

    def action_failures(self) -> None:
        from .failures import FailuresScreen

        self.app.push_screen(FailuresScreen(self.pilot_id))

    def action_timeline(self) -> None:
        from .nodes import TimelineScreen

        self.app.push_screen(TimelineScreen(self.pilot_id))

    def action_nodes(self) -> None:
        from .nodes import NodesScreen

        self.app.push_screen(NodesScreen(self.pilot_id))

    def action_describe(self) -> None:
        from .describe import DescribeScreen

        self.app.push_screen(DescribeScreen(self.pilot_id))

    def action_act(self, action: str) -> None:
        self.post_message(RequestAction(action, self.pilot_id))
