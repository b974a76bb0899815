"""A virtual table (Textual's Line API): only the rows on screen are ever rendered.

Textual's ``DataTable`` keeps and re-measures every cell, and each ``update_cell`` costs
a refresh: fine for the overview's few pilots, too slow for 1,000 nodes whose readings all
change every second or 100,000 tasks. Here a subclass says how many rows there are and
what the cells of row ``i`` are; rendered rows are cached by the row's version.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from . import palette_of, set_virtual_size

CACHE = 512
"""Rendered rows kept (a few screens' worth: each is several objects the garbage collector
walks)."""


class VirtualTable(ScrollView, can_focus=True):
    """Rows ``0..row_count()-1`` under a pinned header, with a cursor."""

    COLUMNS: ClassVar[tuple[tuple[str, int], ...]] = ()
    """(label, width) of each column."""
    COMPONENT_CLASSES: ClassVar[set[str]] = {"virtual-table--header", "virtual-table--cursor"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    cursor = reactive(0, always_update=True)

    @dataclass
    class Selected(Message):
        """Enter (or a click on the selected row) on a row."""

        table: VirtualTable
        key: str

        @property
        def control(self) -> VirtualTable:
            return self.table

    @dataclass
    class Highlighted(Message):
        """The cursor moved to a row."""

        table: VirtualTable
        key: str | None

        @property
        def control(self) -> VirtualTable:
            return self.table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cache: dict[Hashable, Strip] = {}
        self._cursor_key: str | None = None
        self._width = 0
        self._base = Style()

    # -------------------------------------------------------------- the data (subclasses)

    def row_count(self) -> int:
        return 0

    def row_key(self, i: int) -> str:
        raise NotImplementedError

    def row_identity(self, i: int) -> Hashable:
        """Changes when row ``i`` shows another row or must be rendered again (its key
        and version)."""
        raise NotImplementedError

    def row_cells(self, i: int) -> Sequence[Text | str]:
        raise NotImplementedError

    @property
    def columns(self) -> Sequence[tuple[str, int]]:
        """(label, width) of each column shown: :attr:`COLUMNS` unless a table adds some."""
        return self.COLUMNS

    def header(self) -> Sequence[str]:
        return [label for label, _ in self.columns]

    # -------------------------------------------------------------- state

    @property
    def width_needed(self) -> int:
        return sum(w + 1 for _, w in self.columns)

    @property
    def cursor_key(self) -> str | None:
        return self.row_key(self.cursor) if 0 <= self.cursor < self.row_count() else None

    def rows_changed(self) -> None:
        """Call after the rows changed: resizes, clamps the cursor, repaints."""
        set_virtual_size(self, Size(self.width_needed, self.row_count() + 1))
        count = self.row_count()
        if count and self.cursor >= count:
            self.cursor = count - 1
        elif count and self._cursor_key is None:
            self.cursor = self.cursor  # announce the first row
        self.refresh()

    def clear_cache(self) -> None:
        self._cache.clear()
        self.refresh()

    def watch_cursor(self, value: int) -> None:
        key = self.cursor_key
        if key != self._cursor_key:
            self._cursor_key = key
            self.post_message(self.Highlighted(self, key))
        height = max(1, self.scrollable_content_region.height - 1)
        top = round(self.scroll_offset.y)
        if value < top:
            self.scroll_to(y=value, animate=False)
        elif value >= top + height:
            self.scroll_to(y=value - height + 1, animate=False)
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -------------------------------------------------------------- keys

    def action_cursor(self, delta: int) -> None:
        self.cursor = max(0, min(self.row_count() - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.scrollable_content_region.height - 2))

    def action_first(self) -> None:
        self.cursor = 0

    def action_last(self) -> None:
        self.cursor = max(0, self.row_count() - 1)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: Click) -> None:
        if event.y < 1:
            return
        row = round(self.scroll_offset.y) + event.y - 1
        if 0 <= row < self.row_count():
            if row == self.cursor and event.chain > 1:
                self.action_select()
            self.cursor = row

    # -------------------------------------------------------------- rendering

    def render_lines(self, crop: Region) -> list[Strip]:
        self._width = self.scrollable_content_region.width  # once per pass, not per line
        self._base = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self._width
        base = self._base
        if y == 0:
            style = self.get_component_rich_style("virtual-table--header")
            text = " ".join(f"{label:<{w}}"[:w] for label, (_, w) in zip(self.header(), self.columns, strict=True))
            return Strip([Segment(text.ljust(width)[:width], style)], width)
        i = round(self.scroll_offset.y) + y - 1
        if i < 0 or i >= self.row_count():
            return Strip.blank(width, base)
        cursor = i == self.cursor
        key = (self.row_identity(i), width, cursor and (self.has_focus + 1), palette_of(self).serial)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._render_row(i, width, base, cursor)
            if len(self._cache) >= CACHE:
                self._cache.clear()
            self._cache[key] = strip
        return strip

    def _render_row(self, i: int, width: int, base: Style, cursor: bool) -> Strip:
        line = Text(no_wrap=True, overflow="crop", end="")
        for (_, w), cell in zip(self.columns, self.row_cells(i), strict=True):
            text = cell.copy() if isinstance(cell, Text) else Text(cell)
            if text.justify == "right" and text.cell_len < w:
                text.pad_left(w - text.cell_len)
            text.truncate(w, overflow="ellipsis", pad=True)
            line.append_text(text)
            line.append(" ")
        segments = list(line.render(self.app.console))
        segments = list(Segment.apply_style(segments, base))
        if cursor:
            highlight = self.get_component_rich_style("virtual-table--cursor", partial=True)
            if not self.has_focus:
                highlight = Style(bgcolor=palette_of(self).empty)
            segments = list(Segment.apply_style(segments, post_style=highlight))
            fill = base + highlight
        else:
            fill = base
        return Strip(segments).adjust_cell_length(width, fill).crop(0, width)
