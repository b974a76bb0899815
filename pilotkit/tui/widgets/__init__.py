"""The dashboard's widgets. Each one is given the model (attributes down) by its screen
and repaints only what changed; user intent goes up as messages."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.widget import Widget
from textual.widgets import Static

from ..format import DEFAULT_PALETTE, Palette


def palette_of(widget: Widget) -> Palette:
    """The app's palette (from the current theme)."""
    value = getattr(widget.app, "palette", None)
    return value if isinstance(value, Palette) else DEFAULT_PALETTE


class Caption(Static):
    """A line (or a fixed-size block) of text, repainted only when it changes and
    without a layout pass (its size is set in the stylesheet)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self._shown: Text | str | None = None

    def show(self, content: Text | str) -> None:
        if type(content) is type(self._shown) and content == self._shown:
            return
        self._shown = content
        self.update(content, layout=False)


def set_virtual_size(view: ScrollView, size: Size) -> None:
    """Grow or shrink a scroll view's content without a layout of the whole screen.

    Assigning ``virtual_size`` lays the screen out again, every repaint while tasks stream
    in. Where the scrollbars stay as they are, this updates them in place instead (with
    Textual's scrollbar update; a plain assignment where that is missing)."""
    old = view.virtual_size
    if size == old:
        return
    height = view.container_size.height
    update = getattr(view, "_scroll_update", None)
    same_bars = old.width == size.width and (old.height > height) == (size.height > height) and height > 0
    if update is None or not same_bars:
        view.virtual_size = size
        return
    view.set_reactive(Widget.virtual_size, size)
    update(size)
    view.refresh()
