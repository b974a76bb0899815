"""The event log of one pilot: the model's capped list of its latest events, rendered
virtually (only the lines on screen), following the end unless scrolled up."""

from __future__ import annotations

from rich.segment import Segment
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..format import event_line
from ..model import PilotView
from . import palette_of, set_virtual_size

WIDTH = 120


class EventLog(ScrollView, can_focus=True):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.pilot: PilotView | None = None
        self._total = -1
        self._cache: dict[tuple[int, int, int], Strip] = {}
        self._width = 0

    def sync(self, pilot: PilotView) -> None:
        if pilot is not self.pilot:
            self.pilot = pilot
            self._total = -1
            self._cache.clear()
        if pilot.log_total == self._total:
            return
        following = self._total < 0 or self.scroll_offset.y >= self.max_scroll_y - 1
        self._total = pilot.log_total
        set_virtual_size(self, Size(WIDTH, len(pilot.log)))
        if len(self._cache) > 300:
            self._cache.clear()
        if following:
            self.scroll_end(animate=False, immediate=True)
            self.call_after_refresh(self.scroll_end, animate=False)  # once laid out
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        self._width = self.scrollable_content_region.width  # once per pass, not per line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self._width
        pilot = self.pilot
        i = round(self.scroll_offset.y) + y
        if pilot is None or i >= len(pilot.log):
            return Strip.blank(width, self.rich_style)
        p = palette_of(self)
        key = (self._total - len(pilot.log) + i, width, p.serial)
        strip = self._cache.get(key)
        if strip is None:
            t, event = pilot.log[i]
            text = event_line(t, event, p)
            text.truncate(width, overflow="ellipsis")
            segments = list(Segment.apply_style(text.render(self.app.console), self.rich_style))
            strip = self._cache[key] = Strip(segments).adjust_cell_length(width, self.rich_style)
        return strip
