"""A pilot's queue: the tasks waiting and why each waits (no free core or GPU, the drain
point, a drain), and how fast the backlog goes: tasks per minute and its ETA against the
walltime's drain point, green before it, red after. The daemon's ``queue`` (what
``pilotkit queue PILOT --json`` prints), asked again every second."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from ...errors import PilotkitError
from ...protocol import QueueResult
from ..format import Palette, clock, duration
from ..model import DashboardModel
from ..widgets import palette_of
from .base import DashboardScreen

POLL = 1.0


def eta_text(q: QueueResult, p: Palette) -> Text:
    """When the backlog is done at the current rate, and whether that is before the drain
    point: green before, red (bold) after, plain where there is no drain point."""
    line = ""
    if q.eta is not None:
        line += f"backlog {q.queued + q.running}: done in {duration(q.eta)}"
    if q.finish_at is not None:
        line += f" at {clock(q.finish_at)}"
    if q.drain_at is not None and q.before_drain is not None:
        line += f", {'before' if q.before_drain else 'AFTER'} the drain point {clock(q.drain_at)}"
    color = None if q.before_drain is None else (p.done if q.before_drain else p.failed)
    return Text(line, Style(color=color, bold=q.before_drain is False))


class QueueScreen(DashboardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, pilot: str) -> None:
        super().__init__()
        self.pilot_id = pilot
        self.result: QueueResult | None = None
        self.problem: str | None = None

    def heading(self) -> str:
        return f"{self.pilot_id} > queue"

    def body(self) -> ComposeResult:
        with VerticalScroll(id="queue-panel"):
            yield Static("asking the daemon…", id="queue", markup=False)

    def on_mount(self) -> None:
        self.query_one("#queue-panel").border_title = "Waiting tasks"
        self.follow()

    @work(exclusive=True, group="queue")
    async def follow(self) -> None:
        while True:
            try:
                self.result = await self.dashboard.source.queue(self.pilot_id)
                self.problem = None
            except PilotkitError as exc:
                self.problem = exc.message
            self.show()
            if self.problem is not None and self.result is None:
                return
            await asyncio.sleep(POLL)

    def refresh_view(self, model: DashboardModel) -> None:
        self.show()

    def show(self) -> None:
        if self.is_mounted:
            self.query_one("#queue", Static).update(self.render_queue())

    def text(self) -> str:
        return self.render_queue().plain

    def render_queue(self) -> Text:
        p = palette_of(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        q = self.result
        if q is None:
            text.append(self.problem or "asking the daemon…", p.muted)
            return text
        text.append(f"{q.state}", Style(color=p.state(q.state), bold=True))
        text.append(f"  queued {q.queued}  running {q.running}  free cores {q.free_cores}/{q.cores}  "
                    f"free GPUs {q.free_gpus}/{q.gpus}\n")
        if q.rate is None:
            text.append(f"rate: no task finished in the last {q.window:.0f}s\n", p.muted)
        else:
            text.append(f"rate: {q.rate:.1f} tasks/min (last {q.window:.0f}s)\n")
            text.append_text(eta_text(q, p))
            text.append("\n")
        if q.drain_at is not None:
            left = q.drain_at - time.time()
            text.append(f"drain point {clock(q.drain_at)} ({duration(max(0.0, left))} left)\n", p.muted)
        if q.reasons:
            text.append("waiting: " + ", ".join(f"{n} {r}" for r, n in sorted(q.reasons.items())) + "\n")
        if self.problem:
            text.append(f"[{self.problem}]\n", p.failed)
        text.append(f"\n{'task':<24} {'group':<12} {'needs':<7} {'why':<13} detail\n", Style(color=p.muted, bold=True))
        for t in q.tasks:
            needs = f"{t.cores}c" + (f"+{t.gpus}g" if t.gpus else "")
            text.append(f"{t.task:<24} {t.group:<12} {needs:<7} ")
            color = p.done if t.reason == "next" else (p.failed if t.reason in ("drain-point", "draining") else p.running)
            text.append(f"{t.reason:<13}", Style(color=color))
            text.append(f" {t.detail}\n", p.muted)
        if not q.tasks:
            text.append("nothing waits\n", p.muted)
        elif q.queued > len(q.tasks):
            text.append(f"({len(q.tasks)} of {q.queued} listed)\n", p.muted)
        return text

    def action_back(self) -> None:
        self.dismiss()
