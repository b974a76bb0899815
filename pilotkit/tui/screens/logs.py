"""Follow a task's stdout or stderr (or the pilot's own log): wrap, timestamps, search,
the last lines or the whole file.

Times are those the lines were written at: a line of the pilot's log carries its own; a
line of a task's output gets the time the node agent saw it written (at most a second
late, see :mod:`pilotkit.logtimes`). Output of a run without those samples has no time
for the lines already in the file when the screen opened (shown blank), and the time
of arrival, within the daemon's poll of the file, for the ones that come while followed.
"""

from __future__ import annotations

import collections
import re
import time
from datetime import datetime
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, RichLog

from ...errors import PilotkitError
from ..format import clock
from ..widgets import Caption, palette_of
from .base import DashboardScreen

CAP = 5000
"""Lines kept (the buffer and the widget) of the end of a log."""
ALL_CAP = 200_000
"""Lines kept after ``a`` (the whole file)."""
BACKLOG = 0.5
"""Seconds after the log opens in which what arrives is taken for what the file held
already (written at an unknown time)."""
STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})")


def written_at(line: str) -> float | None:
    """The time a pilot-log line carries (``2026-11-25 17:40:56 INFO ...``), local time."""
    m = STAMP.match(line)
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
    except ValueError:
        return None


class LogsScreen(DashboardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("w", "wrap", "Wrap"),
        Binding("t", "timestamps", "Timestamps"),
        Binding("e", "stream", "stdout/stderr"),
        Binding("f", "follow", "Follow"),
        Binding("slash", "search", "Search"),
        Binding("n", "next_match(1)", "Next", show=False),
        Binding("N", "next_match(-1)", "Previous", show=False),
        Binding("a", "whole", "Whole file"),
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
        self.cap = CAP
        self.lines: collections.deque[tuple[float | None, str]] = collections.deque(maxlen=CAP)
        """(when it was written, None: unknown; the line)."""
        self._partial = ""
        self.ended: str | None = None
        self.search_text = ""
        """The search (``/``): lines holding it (any case) are marked; n/N go from one to the next."""
        self.matches: list[int] = []
        self.match = -1
        self._opened = 0.0

    def heading(self) -> str:
        what = f"{self.task_id} {'stderr' if self.stderr else 'stdout'}" if self.task_id else "pilot log"
        return f"{self.pilot_id} > {what}"

    def body(self) -> ComposeResult:
        yield Caption(id="logs-caption")
        yield RichLog(id="log", max_lines=self.cap, wrap=self.wrap, markup=False, highlight=False, auto_scroll=True)
        yield Input(placeholder="search: enter finds it, n/N next/previous, esc closes", id="log-search")

    def on_mount(self) -> None:
        self.query_one("#log-search", Input).display = False
        self._caption()
        self.load()

    # -------------------------------------------------------------- reading

    @work(exclusive=True, group="logs")
    async def load(self) -> None:
        """Stream the log into the buffer (a new call replaces a running one)."""
        self.lines = collections.deque(maxlen=self.cap)
        self._partial = ""
        self.ended = None
        self.matches, self.match = [], -1
        log = self.query_one(RichLog)
        log.max_lines = self.cap
        log.clear()
        source = self.dashboard.source
        self._opened = time.monotonic()
        tail = -1 if self.cap == ALL_CAP else self.cap
        try:
            async for text, times in source.logs(self.pilot_id, self.task_id, stderr=self.stderr, tail=tail,
                                                 follow=True):
                self._feed(text, times)
            self.ended = "end of output"
        except PilotkitError as exc:
            self.ended = exc.message
        if self._partial:
            self._add([self._partial])
            self._partial = ""
        self._caption()

    def _feed(self, text: str, times: list[float | None] | None = None) -> None:
        text = self._partial + text
        lines = text.split("\n")
        self._partial = lines.pop()
        if lines:
            self._add(lines, times)

    def _add(self, lines: list[str], times: list[float | None] | None = None) -> None:
        arrived: float | None = time.time()
        if time.monotonic() - self._opened < BACKLOG:
            arrived = None  # the file held it already: written when, unknown
        log = self.query_one(RichLog)
        for i, line in enumerate(lines):
            if self.task_id is None:
                t = written_at(line)
            else:
                t = times[i] if times is not None and i < len(times) else None
                if t is None:
                    t = arrived
            self.lines.append((t, line))
            log.write(self._line(t, line), scroll_end=self.follow)

    def _line(self, t: float | None, line: str) -> Text:
        text = Text(no_wrap=not self.wrap)
        p = palette_of(self)
        if self.timestamps:
            text.append((clock(t) if t is not None else " " * 8) + " ", p.muted)
        text.append(line.replace("\t", "    "))
        if self.search_text:
            text.highlight_words([self.search_text], Style(bgcolor=p.running, color="black"), case_sensitive=False)
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
        text.append(" (the whole file)" if self.cap == ALL_CAP else f" (the last {self.cap}: a for all)", p.muted)
        if self.search_text:
            where = f"{self.match + 1}/{len(self.matches)}" if self.matches and self.match >= 0 else (
                f"{len(self.matches)}" if self.matches else "no")
            text.append(f"  search '{self.search_text}': {where} match(es)", p.running)
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
        box = self.query_one("#log-search", Input)
        if box.display:
            box.display = False
            self.query_one(RichLog).focus()
            return
        self.dismiss()

    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#log-search")
    def _search_entered(self, event: Input.Submitted) -> None:
        self.search(event.value.strip())
        event.input.display = False
        self.query_one(RichLog).focus()

    def search(self, query: str) -> None:
        """Mark the lines holding ``query`` (any case) and go to the first one at or after
        the top of the screen (an empty query: no search)."""
        query_changed = query != self.search_text
        self.search_text = query
        needle = query.lower()
        self.matches = [i for i, (_, line) in enumerate(self.lines) if needle and needle in line.lower()]
        self.match = -1
        if query_changed:
            self._rewrite()
        if self.matches:
            top = round(self.query_one(RichLog).scroll_offset.y)
            after = [k for k, i in enumerate(self.matches) if i >= top] if not self.wrap else []
            self._go(after[0] if after else 0)
        self._caption()

    def action_next_match(self, step: int) -> None:
        if not self.matches:
            if self.search_text:
                self.notify(f"'{self.search_text}' is not in the lines kept (a: the whole file)", timeout=2)
            else:
                self.notify("no search yet: / searches", timeout=2)
            return
        self._go((self.match + step) % len(self.matches))
        self._caption()

    def _go(self, k: int) -> None:
        """Show match ``k`` (the follow stops: the view stays there)."""
        self.match = k
        self.follow = False
        log = self.query_one(RichLog)
        log.auto_scroll = False
        log.scroll_to(y=max(0, self.matches[k] - 2), animate=False)

    def action_whole(self) -> None:
        """Load the whole file (up to 200,000 lines), not only its end."""
        if self.cap == ALL_CAP:
            return
        self.cap = ALL_CAP
        self.load()

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
