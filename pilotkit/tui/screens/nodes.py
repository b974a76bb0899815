"""A pilot's timeline (``t``: which task ran on which node and when, in rows per node,
gaps left blank) and its nodes (``n``: cores, memory, load, GPUs with their tasks, the
tasks running on each). From a live daemon these are its ``timeline`` and ``nodes``
(what ``pilotkit timeline`` and ``pilotkit nodes`` print), asked again every second; a
replay lays out the tasks it has seen (each task's last attempt)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import ClassVar, Generic, TypeVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from ...errors import PilotkitError
from ...protocol import NodeGpu, NodeReport, NodesResult, NodeTask, TimelineResult
from ...timeline import Attempt, bar, lay_out, nodes_lines
from ..format import Palette, clock, duration
from ..model import DashboardModel, PilotView
from ..source import ActionRefused
from ..widgets import palette_of
from .base import DashboardScreen

POLL = 1.0
MAX_ROWS = 12
"""Rows drawn per node; a node that ran more at once shows its occupancy bar only."""
MAX_DETAILED = 64
"""Nodes whose rows are drawn; with more nodes, each shows its load line only."""
NAME_WIDTH = 12

R = TypeVar("R")


def timeline_of(view: PilotView, now: float) -> TimelineResult:
    """The timeline of what the dashboard has seen of a pilot (each task's last attempt)."""
    t = view.tasks
    end = view.ended if view.terminal and view.ended is not None else now
    attempts = [Attempt(task=t.task[i], group=t.group[i], attempt=t.attempt[i] or 1, node=t.node[i], start=start,
                        end=t.end[i] if t.end[i] is not None or not view.terminal else end,
                        outcome=t.outcome[i] if t.end[i] is not None else None)
                for i in range(len(t)) if (start := t.start[i]) is not None]
    cores = {name: n.cores or 0 for name, n in view.nodes.items()}
    return lay_out(view.id, view.state, attempts, end=end, cores=cores)


def nodes_of(view: PilotView, now: float) -> NodesResult:
    """The nodes as the dashboard has seen them (no GPU is known to hold a given task)."""
    t = view.tasks
    running: dict[str, list[NodeTask]] = {}
    for i in range(len(t)):
        node = t.node[i]
        if t.status[i] == "running" and node is not None:
            running.setdefault(node, []).append(NodeTask(task=t.task[i], group=t.group[i], start=t.start[i]))
    out = []
    for name, n in sorted(view.nodes.items()):
        gpus = [NodeGpu(uuid=g.uuid, name=g.name, memory_total=g.memory_total, memory_used=g.memory_used,
                        utilization=None if g.util_now is None else round(g.util_now)) for g in n.gpus.values()]
        out.append(NodeReport(name=name, cores=n.cores or 0, memory=n.memory or 0, total_memory=n.memory_total,
                              memory_used=n.memory_used, cpu_percent=n.cpu_now, core_percent=n.core_percent,
                              last_seen=n.last_seen, lost=n.lost,
                              gpu_reason=n.gpu_reason, gpus=gpus, tasks=running.get(name, [])))
    return NodesResult(pilot=view.id, state=view.state, t=now, nodes=out, gpu_tasks=False)


class _Followed(DashboardScreen, Generic[R]):
    """A screen that asks the source for a result every second (a replay: the model)."""

    TITLE = ""
    EVERY = POLL
    """Seconds between two questions to the daemon."""
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(self, pilot: str) -> None:
        super().__init__()
        self.pilot_id = pilot
        self.result: R | None = None
        self.problem: str | None = None

    def ask(self) -> Awaitable[R]:
        raise NotImplementedError

    def from_model(self, view: PilotView, now: float) -> R:
        raise NotImplementedError

    def draw(self, result: R, width: int) -> Text:
        raise NotImplementedError

    def body(self) -> ComposeResult:
        with VerticalScroll(id="followed-panel"):
            yield Static("asking the daemon…", id="followed", markup=False)

    def on_mount(self) -> None:
        self.query_one("#followed-panel").border_title = self.TITLE
        self.follow()

    @work(exclusive=True, group="followed")
    async def follow(self) -> None:
        while True:
            try:
                self.result = await self.ask()
                self.problem = None
            except ActionRefused as exc:  # a replay: what the dashboard has seen
                if self.dashboard.source.mode != "replay":
                    self.problem = exc.message
                self.refresh_view(self.dashboard.model)
                return
            except PilotkitError as exc:
                self.problem = exc.message
            self.show()
            await asyncio.sleep(self.EVERY)

    def refresh_view(self, model: DashboardModel) -> None:
        if self.dashboard.source.mode == "replay":
            view = model.pilots.get(self.pilot_id)
            if view is not None:
                self.result = self.from_model(view, model.now())
        self.show()

    def show(self) -> None:
        if self.is_mounted:
            self.query_one("#followed", Static).update(self.render_result())

    def render_result(self) -> Text:
        if self.result is None:
            return Text(self.problem or "asking the daemon…", palette_of(self).muted)
        return self.draw(self.result, max(40, self.size.width - 4))

    def text(self) -> str:
        return self.render_result().plain

    def action_back(self) -> None:
        self.dismiss()


class TimelineScreen(_Followed[TimelineResult]):
    TITLE = "Timeline: which task ran where and when"
    EVERY = 2.0  # up to 20,000 attempts each time

    def heading(self) -> str:
        return f"{self.pilot_id} > timeline"

    def ask(self) -> Awaitable[TimelineResult]:
        return self.dashboard.source.timeline(self.pilot_id)

    def from_model(self, view: PilotView, now: float) -> TimelineResult:
        return timeline_of(view, now)

    def draw(self, r: TimelineResult, width: int) -> Text:
        return draw_timeline(r, width, palette_of(self))


class NodesScreen(_Followed[NodesResult]):
    TITLE = "Nodes: what each has and runs"

    def heading(self) -> str:
        return f"{self.pilot_id} > nodes"

    def ask(self) -> Awaitable[NodesResult]:
        return self.dashboard.source.nodes(self.pilot_id)

    def from_model(self, view: PilotView, now: float) -> NodesResult:
        return nodes_of(view, now)

    def draw(self, r: NodesResult, width: int) -> Text:
        p = palette_of(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, line in enumerate(nodes_lines(r, width)):
            if i:
                text.append("\n")
            style: Style | str | None = Style(bold=True) if not line.startswith(" ") else None
            if "LOST" in line:
                style = Style(color=p.failed, bold=True)
            elif (line.startswith("  GPU") and line.endswith(": idle")) or line.startswith("  load per CPU"):
                style = p.muted
            elif line.startswith("  cpus "):
                style = Style(color=p.running)
            text.append(line, style)
        if not r.nodes:
            text.append("\nno node yet", p.muted)
        return text


def _colour(outcome: str | None, p: Palette) -> str:
    return p.state(outcome or "running")


def draw_timeline(r: TimelineResult, width: int, p: Palette) -> Text:
    """Each node: its occupancy bar, then a row per attempt running at once (up to
    :data:`MAX_ROWS`), each attempt a run of blocks coloured by how it ended, with the
    task's name on it where it is long enough."""
    text = Text(no_wrap=True, overflow="ellipsis")
    span = max(r.end - r.start, 1e-9)
    bar_width = max(10, width - NAME_WIDTH - 2)
    scale = bar_width / span
    text.append(f"{r.state}  {clock(r.start)} to {clock(r.end)} ({duration(r.end - r.start)}), "
                f"{r.attempts} attempt(s) on {len(r.nodes)} node(s)\n", Style(bold=True))
    text.append("colours: ")
    for word in ("running", "ok", "failed", "cancelled"):
        text.append("██ ", Style(color=_colour(None if word == "running" else word, p)))
        text.append(f"{word}  ")
    text.append("blank: the node ran nothing\n", p.muted)
    axis = f"{clock(r.start)}".ljust(bar_width - 8) + clock(r.end)
    text.append(" " * NAME_WIDTH + "  " + axis[:bar_width] + "\n", p.muted)
    for n in r.nodes:
        text.append(n.name, Style(bold=True))
        gaps = f", {len(n.gaps)} gap(s)" if n.gaps else ""
        text.append(f"  busy {100 * n.busy:.0f}%, {len(n.spans)} attempt(s), at most {n.lanes} at once"
                    f"{f' on {n.cores} cores' if n.cores else ''}{gaps}\n", p.muted)
        text.append(f"{'load':>{NAME_WIDTH}}  ", p.muted)
        text.append(bar(n, r.start, r.end, bar_width) + "\n", Style(color=p.running))
        if n.lanes > MAX_ROWS or len(r.nodes) > MAX_DETAILED:
            why = f"{n.lanes} rows" if n.lanes > MAX_ROWS else f"{len(r.nodes)} nodes"
            text.append(f"{'':<{NAME_WIDTH}}  ({why}: the load line only)\n", p.muted)
            continue
        rows: list[list[tuple[str, Style | None]]] = [[(" ", None)] * bar_width for _ in range(n.lanes)]
        for k, s in enumerate(n.spans):
            end = s.end if s.end is not None else r.end
            a = max(0, int((s.start - r.start) * scale))
            b = min(bar_width, max(a + 1, round((end - r.start) * scale)))
            style = Style(color=_colour(s.outcome, p))
            cells = rows[s.lane]
            for i in range(a, b):
                cells[i] = ("█" if k % 2 == 0 else "▓", style)
            label = s.task if s.attempt <= 1 else f"{s.task}#{s.attempt}"
            if b - a >= len(label) + 2:  # room for its name: written on it
                named = Style(color="black", bgcolor=_colour(s.outcome, p))
                for i, char in enumerate(label, start=a + 1):
                    cells[i] = (char, named)
        for lane, cells in enumerate(rows):
            text.append(f"{f'row {lane}':>{NAME_WIDTH}}  ", p.muted)
            for char, look in cells:
                text.append(char, look)
            text.append("\n")
    if not r.nodes:
        text.append("no task has run yet", p.muted)
    return text

