"""Task progress per group, in the manner of Dask's progress view: one bar per group
(done, failed, cancelled and running parts; queued is the empty rest), its counts, and a
totals line. The pilot's page also shows the work inside an app's own cluster (Dask task
prefixes, Ray functions) this way."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from ...vocab import Counts
from ..format import progress_bar
from . import palette_of

NAME = 12
COUNTS = 48


class GroupProgressView(Static):
    def __init__(self, *, id: str | None = None, label: str = "group", empty: str = "no task groups yet") -> None:
        super().__init__("", id=id, markup=False)
        self.label = label
        """The first column's heading."""
        self.empty = empty
        """What it says when there is nothing to show."""
        self._key: tuple[object, ...] = ()
        self._groups = -1

    def show(self, groups: dict[str, Counts], totals: Counts) -> None:
        width = self.content_region.width or 80
        key = (tuple((n, _astuple(g)) for n, g in groups.items()), _astuple(totals), width, palette_of(self))
        if key == self._key:
            return
        layout = len(groups) != self._groups
        self._groups = len(groups)
        self._key = key
        p = palette_of(self)
        bar_width = max(6, width - NAME - COUNTS - 2)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{self.label:<{NAME}} {'':<{bar_width}} ", Style(color=p.muted))
        text.append(f"{'total':>7} {'queued':>7} {'running':>7} {'done':>7} {'failed':>7} {'cancel.':>7}",
                    Style(color=p.muted))
        rows = [*groups.items(), ("total", totals)] if groups else [("total", totals)]
        for i, (name, g) in enumerate(rows):
            last = i == len(rows) - 1
            text.append("\n")
            label = name if len(name) <= NAME else name[: NAME - 1] + "…"
            text.append(f"{label:<{NAME}} ", Style(bold=last))
            text.append(progress_bar(g, bar_width, p))
            text.append(" ")
            text.append(f"{g.total:>7} ", Style(bold=last))
            text.append(f"{g.queued:>7} ", Style(color=p.muted))
            text.append(f"{g.running:>7} ", Style(color=p.running) if g.running else Style(color=p.muted))
            text.append(f"{g.done:>7} ", Style(color=p.done) if g.done else Style(color=p.muted))
            text.append(f"{g.failed:>7} ", Style(color=p.failed) if g.failed else Style(color=p.muted))
            text.append(f"{g.cancelled:>7}", Style(color=p.cancelled) if g.cancelled else Style(color=p.muted))
        if not groups:
            text.append("\n")
            text.append(self.empty, Style(color=p.muted))
        self.update(text, layout=layout)


def _astuple(g: Counts) -> tuple[int, int, int, int, int]:
    return (g.total, g.running, g.done, g.failed, g.cancelled)
