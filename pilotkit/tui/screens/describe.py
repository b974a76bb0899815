"""A pilot described: its spec, the resources it was given, its job id and nodes, where
its files are. The daemon's ``describe``, what ``pilotkit describe PILOT`` prints."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from ...errors import PilotkitError
from ...protocol import DescribeResult
from ..widgets import palette_of
from .base import DashboardScreen


class DescribeScreen(DashboardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
    ]

    def __init__(self, pilot: str) -> None:
        super().__init__()
        self.pilot_id = pilot
        self.result: DescribeResult | None = None
        self.problem: str | None = None

    def heading(self) -> str:
        return f"{self.pilot_id} > describe"

    def body(self) -> ComposeResult:
        with VerticalScroll(id="describe-panel"):
            yield Static("asking the daemon…", id="describe", markup=False)

    def on_mount(self) -> None:
        self.query_one("#describe-panel").border_title = "Describe"
        self.query_one("#describe-panel").focus()
        self.load()

    @work(exclusive=True, group="describe")
    async def load(self) -> None:
        try:
            self.result = await self.dashboard.source.describe_pilot(self.pilot_id)
        except PilotkitError as exc:
            self.problem = exc.message
        self.show()

    def text(self) -> str:
        if self.result is not None:
            return "\n".join(self.result.lines(self.dashboard.model.now()))
        return self.problem or "asking the daemon…"

    def show(self) -> None:
        if not self.is_mounted:
            # The answer came before the screen finished mounting (an answer at hand,
            # as a replay's is): draw it once the screen is up.
            self.call_after_refresh(self.show)
            return
        p = palette_of(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.result is None:
            text.append(self.text(), p.failed if self.problem else p.muted)
        else:
            for line in self.result.lines(self.dashboard.model.now()):
                if line and not line.startswith(" "):
                    head, _, rest = line.partition(" ")
                    text.append(head, p.muted)
                    text.append(" " + rest + "\n" if rest else "\n")
                else:
                    text.append(line + "\n")
        self.query_one("#describe", Static).update(text)

    def action_scroll(self, lines: int) -> None:
        panel = self.query_one("#describe-panel", VerticalScroll)
        panel.scroll_to(y=panel.scroll_offset.y + lines, animate=False)

    def action_back(self) -> None:
        self.dismiss()
