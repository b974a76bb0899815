"""Failure triage: a pilot's failed tasks grouped by outcome, exit code and the last line
of their stderr, most first (the daemon's ``failures``, what ``pilotkit failures PILOT``
prints). Enter on a group opens the stderr of its first task at its end, where the error
is; ``r`` retries the failed tasks (asks first where the pilot was cancelled)."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...errors import PilotkitError
from ...protocol import FailuresResult
from ..messages import OpenLogs, RequestAction
from ..widgets import Caption, palette_of
from .base import DashboardScreen


class FailuresScreen(DashboardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("r", "act('retry')", "Retry failed"),
        Binding("g", "reload", "Again"),
    ]

    def __init__(self, pilot: str) -> None:
        super().__init__()
        self.pilot_id = pilot
        self.result: FailuresResult | None = None
        self.problem: str | None = None

    def heading(self) -> str:
        return f"{self.pilot_id} > failures"

    def body(self) -> ComposeResult:
        yield Caption(id="failures-caption")
        yield OptionList(id="failures")

    def on_mount(self) -> None:
        self.query_one("#failures").border_title = "Failed tasks, grouped"
        self.query_one("#failures-caption", Caption).show("asking the daemon…")
        self.query_one(OptionList).focus()
        self.load()

    @work(exclusive=True, group="failures")
    async def load(self) -> None:
        try:
            self.result = await self.dashboard.source.failures(self.pilot_id)
            self.problem = None
        except PilotkitError as exc:
            self.problem = exc.message
        self.show()

    def show(self) -> None:
        p = palette_of(self)
        caption = self.query_one("#failures-caption", Caption)
        options = self.query_one(OptionList)
        options.clear_options()
        r = self.result
        if r is None:
            caption.show(Text(self.problem or "asking the daemon…", style=p.failed if self.problem else p.muted))
            return
        caption.show(Text(f"{r.failed} failed task(s) in {len(r.groups)} group(s); enter: the first one's stderr",
                          style=p.muted))
        for i, g in enumerate(r.groups):
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append(f"{g.count:>6} ", Style(bold=True))
            code = f"exit {g.exit_code}" if g.exit_code is not None else "no exit code"
            text.append(f"{g.outcome} ({code}) ", Style(color=p.failed))
            text.append(g.last_line or "(no stderr)")
            more = f" and {g.count - 3} more" if g.count > 3 else ""
            text.append(f"  {', '.join(g.tasks[:3])}{more}", p.muted)
            options.add_option(Option(text, id=str(i)))
        if r.groups:
            options.highlighted = 0

    def lines(self) -> list[str]:
        """The groups as the screen lists them (plain text)."""
        options = self.query_one(OptionList)
        return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

    @on(OptionList.OptionSelected, "#failures")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if self.result is None:
            return
        group = self.result.groups[int(event.option.id or 0)]
        if group.tasks:
            self.post_message(OpenLogs(self.pilot_id, group.tasks[0], stderr=True))

    def action_reload(self) -> None:
        self.load()

    def action_act(self, action: str) -> None:
        self.post_message(RequestAction(action, self.pilot_id))

    def action_back(self) -> None:
        self.dismiss()
