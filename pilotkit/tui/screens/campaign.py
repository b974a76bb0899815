"""A campaign: its allocations (queued, running, draining, ended and why) on a timeline,
its backlog, throughput and ETA. The same data as ``pilotkit status CAMPAIGN``: the
campaign's ``campaign.json``, read again every second."""

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

from ...campaign import AllocationRecord, CampaignStatus
from ...errors import PilotkitError
from ..format import Palette, clock, duration
from ..model import DashboardModel
from ..widgets import palette_of
from .base import DashboardScreen

POLL = 1.0

LANE = {"queued": "·", "running": "█", "draining": "▒"}
"""Timeline marks: waiting for its nodes, running tasks, past its drain point."""


class CampaignScreen(DashboardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, campaign: str) -> None:
        super().__init__()
        self.campaign = campaign
        self.status: CampaignStatus | None = None
        self.problem: str | None = None

    def heading(self) -> str:
        return f"campaign {self.status.id if self.status else self.campaign}"

    def body(self) -> ComposeResult:
        with VerticalScroll(id="campaign-panel"):
            yield Static("reading the campaign…", id="campaign", markup=False)

    def on_mount(self) -> None:
        self.query_one("#campaign-panel").border_title = "Campaign"
        self.follow()

    @work(exclusive=True, group="campaign")
    async def follow(self) -> None:
        while True:
            try:
                self.status = await self.dashboard.source.campaign(self.campaign)
                self.problem = None
            except PilotkitError as exc:
                self.problem = exc.message
            self.show()
            if self.status is not None and self.status.ended is not None:
                return  # it will not change
            if self.problem is not None and self.status is None:
                return
            await asyncio.sleep(POLL)

    def refresh_view(self, model: DashboardModel) -> None:
        self.show()

    def action_back(self) -> None:
        self.dismiss()

    def show(self) -> None:
        if self.is_mounted:
            panel = self.query_one("#campaign-panel")
            self.query_one("#campaign", Static).update(self.render_campaign(max(20, panel.size.width - 2)))

    def text(self, width: int = 76) -> str:
        return self.render_campaign(width).plain

    def render_campaign(self, width: int) -> Text:
        p = palette_of(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        s = self.status
        if s is None:
            text.append(self.problem or "reading the campaign…", p.muted)
            return text
        now = s.ended or time.time()
        state = "paused" if s.state == "paused" else s.state
        text.append(s.name, Style(bold=True))
        text.append("  ")
        text.append(state, Style(color=_state_color(p, state), bold=True))
        if s.reason:
            text.append(f": {s.reason}")
        text.append("\n")
        text.append(f"tasks {s.done}/{s.total} done, {s.failed} failed, {s.running} in allocations, "
                    f"{s.waiting} waiting" + (f" ({s.resumed} done before a restart)" if s.resumed else "") + "\n")
        finished = s.done + s.failed - s.resumed
        elapsed = now - s.started
        if finished and elapsed > 0:
            line = f"throughput {finished / elapsed * 60:.1f} tasks/min over {duration(elapsed)}"
            eta = s.eta(now)
            if eta is not None:
                line += f"; backlog {s.waiting + s.running} done in {duration(eta)} (at {clock(now + eta)})"
            text.append(line + "\n")
        else:
            text.append(f"throughput: no task ended yet ({duration(max(0.0, elapsed))} in)\n", p.muted)
        used = sum(1 for a in s.allocations if not a.submit_failed)
        active = sum(1 for a in s.allocations if a.active)
        text.append(f"allocations {used} used of at most {s.max_allocations}, {active} of {s.parallel} at once now"
                    + (f"; the work needed at least {s.min_allocations}" if s.min_allocations else "") + "\n")
        text.append(f"results {s.results}\n", p.muted)
        self._table(text, s, p, now, width)
        self._timeline(text, s, p, now, width)
        for ended, nxt, gap in s.handovers():
            text.append(f"hand-over {_short(s, ended)} -> {_short(s, nxt)}: {gap:.1f}s without an allocation "
                        "running tasks\n", p.muted)
        if self.problem:
            text.append(f"[{self.problem}]\n", p.failed)
        return text

    @staticmethod
    def _table(text: Text, s: CampaignStatus, p: Palette, now: float, width: int) -> None:
        names = [_short(s, a.name) for a in s.allocations]
        w = max([5, *(len(n) for n in names)])
        text.append(f"\n{'alloc':<{w}} {'job':<8} {'state':<9} {'ok':>4} {'back':>4} {'idle c-s':>8}  why\n",
                    Style(color=p.muted, bold=True))
        for a, name in zip(s.allocations, names, strict=True):
            idle = a.idle_core_seconds(now)
            state = "refused" if a.submit_failed else a.state
            text.append(f"{name:<{w}} {a.job_id or '-':<8} ")
            text.append(f"{state:<9}", Style(color=_state_color(p, state)))
            text.append(f" {a.ok:>4} {a.preempted:>4} {'-' if idle is None else f'{idle:.1f}':>8}  ")
            text.append(f"{a.why or ''}\n", p.muted)
        if not s.allocations:
            text.append("no allocation yet\n", p.muted)

    @staticmethod
    def _timeline(text: Text, s: CampaignStatus, p: Palette, now: float, width: int) -> None:
        names = [_short(s, a.name) for a in s.allocations]
        w = max([5, *(len(n) for n in names)])
        lane = width - w - 3
        span = now - s.started
        if lane < 10 or span <= 0 or not s.allocations:
            return
        text.append(f"\n{'':<{w}} {clock(s.started)}{clock(now) if s.ended else 'now':>{lane - 8}}\n",
                    Style(color=p.muted, bold=True))
        for a, name in zip(s.allocations, names, strict=True):
            text.append(f"{name:<{w}} │")
            text.append_text(_lane(a, s.started, span, lane, now, p))
            text.append("│\n")
        text.append(f"{'':<{w}}  {LANE['queued']} queued  {LANE['running']} running  {LANE['draining']} draining  "
                    "! refused\n", p.muted)


def _lane(a: AllocationRecord, start: float, span: float, width: int, now: float, p: Palette) -> Text:
    """One allocation's row of the timeline: ``width`` cells from ``start`` over ``span`` s."""
    cells = [" "] * width
    colors: list[str | None] = [None] * width

    def cell(t: float) -> int:
        return min(width, max(0, round((t - start) / span * width)))

    def fill(t0: float, t1: float, mark: str, color: str) -> None:
        first = min(cell(t0), width - 1)
        for i in range(first, max(first + 1, cell(t1))):
            cells[i], colors[i] = mark, color

    end = a.ended if a.ended is not None else now
    if a.submit_failed:
        fill(a.submitted, a.submitted, "!", p.failed)
    else:
        running = a.running if a.running is not None else end
        fill(a.submitted, running, LANE["queued"], p.queued)
        if a.running is not None:
            drained = a.drained if a.drained is not None else end
            fill(a.running, drained, LANE["running"], p.running if a.ended is None else p.done)
            if a.drained is not None:
                fill(a.drained, end, LANE["draining"], p.cancelled)
    out = Text()
    for mark, color in zip(cells, colors, strict=True):
        out.append(mark, Style(color=color) if color else None)
    return out


def _short(s: CampaignStatus, name: str) -> str:
    """An allocation's name without its campaign's id (``a3``)."""
    prefix = f"{s.id}-"
    return name[len(prefix):] if name.startswith(prefix) else name


def _state_color(p: Palette, state: str) -> str:
    return {"done": p.done, "running": p.running, "draining": p.cancelled, "queued": p.queued, "ended": p.muted,
            "failed": p.failed, "refused": p.failed, "cancelled": p.cancelled, "paused": p.failed}.get(state, p.muted)
