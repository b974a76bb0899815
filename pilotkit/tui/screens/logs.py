"""Follow a task's stdout or stderr (or the pilot's own log): wrap, timestamps, a capped
buffer."""

from __future__ import annotations

import collections
import time
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import RichLog

from ...errors import PilotkitError
from ..format import clock
from ..widgets import Caption, palette_of
from .base import DashboardScreen

CAP = 5000
"""Lines kept (the buffer and the widget)."""


class LogsScreen(DashboardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("w", "wrap", "Wrap"),
        Binding("t", "timestamps", "Timestamps"),
        Binding("e", "stream", "stdout/stderr"),
        Binding("f", "follow", "Follow"),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
        Binding("g,home", "top", "Top", show=False),
        Binding("G,end", "bottom", "Bottom", show=False),
    ]

    def __init__(self, pilot: str, task: str | None = None, *, stderr: bool = False, wrap: bool = False,
                 timestamps: bool = False) -> None:
        super().__init__()
        self.pilot_id = pilot
        self.task_id = task
        self.stderr = stderr
        self.wrap = wrap
        self.timestamps = timestamps
        self.follow = True
        self.lines: collections.deque[tuple[float, str]] = collections.deque(maxlen=CAP)
        self._partial = ""
        self.ended: str | None = None

    def heading(self) -> str:
        what = f"{self.task_id} {'stderr' if self.stderr else 'stdout'}" if self.task_id else "pilot log"
        return f"{self.pilot_id} > {what}"

    def body(self) -> ComposeResult:
        yield Caption(id="logs-caption")
        yield RichLog(id="log", max_lines=CAP, wrap=self.wrap, markup=False, highlight=False, auto_scroll=True)

    def on_mount(self) -> None:
        self._caption()
        self.load()

    # -------------------------------------------------------------- reading

    @work(exclusive=True, group="logs")
    async def load(self) -> None:
        """Stream the log into the buffer (a new call replaces a running one)."""
        self.lines.clear()
        self._partial = ""
        self.ended = None
        self.query_one(RichLog).clear()
        source = self.dashboard.source
        try:
            async for text in source.logs(self.pilot_id, self.task_id, stderr=self.stderr, tail=CAP, follow=True):
                self._feed(text)
            self.ended = "end of output"
        except PilotkitError as exc:
            self.ended = exc.message
        if self._partial:
            self._add([self._partial])
            self._partial = ""
        self._caption()

    def _feed(self, text: str) -> None:
        text = self._partial + text
        lines = text.split("\n")
        self._partial = lines.pop()
        if lines:
            self._add(lines)

    def _add(self, lines: list[str]) -> None:
        now = time.time()
        log = self.query_one(RichLog)
        for line in lines:
            self.lines.append((now, line))
            log.write(self._line(now, line), scroll_end=self.follow)

    def _line(self, t: float, line: str) -> Text:
        text = Text(no_wrap=not self.wrap)
        if self.timestamps:
            text.append(clock(t) + " ", palette_of(self).muted)
        text.append(line.replace("\t", "    "))
        return text

    def _rewrite(self) -> None:
        log = self.query_one(RichLog)
        log.wrap = self.wrap
        log.clear()
        for t, line in self.lines:
            log.write(self._line(t, line), scroll_end=self.follow)

    def _caption(self) -> None:
        p = palette_of(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{len(self.lines)} line(s)", Style(bold=True))
        text.append(f" (last {CAP} kept)", p.muted)
        flags = [name for name, on in (("wrap", self.wrap), ("timestamps", self.timestamps),
                                       ("follow", self.follow)) if on]
        text.append("  " + (", ".join(flags) if flags else "no wrap"), p.muted)
        if self.ended:
            text.append(f"  [{self.ended}]", p.running)
        self.query_one("#logs-caption", Caption).show(text)

    def refresh_view(self, model: object) -> None:
        self._caption()

    # -------------------------------------------------------------- keys

    def action_back(self) -> None:
        self.dismiss()

    def action_wrap(self) -> None:
        self.wrap = not self.wrap
        self._rewrite()
        self._caption()

    def action_timestamps(self) -> None:
        self.timestamps = not self.timestamps
        self._rewrite()
        self._caption()

    def action_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one(RichLog)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self._caption()

    def action_stream(self) -> None:
        if self.task_id is None:
            self.notify("the pilot's log has no stderr", timeout=2)
            return
        self.stderr = not self.stderr
        self.repaint()
        self.load()

    def action_scroll(self, lines: int) -> None:
        log = self.query_one(RichLog)
        log.scroll_to(y=log.scroll_offset.y + lines, animate=False)

    def action_top(self) -> None:
        self.query_one(RichLog).scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.query_one(RichLog).scroll_end(animate=False)
