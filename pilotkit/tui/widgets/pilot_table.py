"""The overview's table of pilots, updated in place (``update_cell``)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from ..format import Palette, progress_bar, walltime_cell
from ..messages import OpenPilot
from ..model import DashboardModel, PilotView
from . import palette_of

COLUMNS = (
    ("pilot", "Pilot", 30),
    ("provider", "Provider", 9),
    ("state", "State", 17),
    ("nodes", "Nodes", 5),
    ("cores", "Cores", 6),
    ("gpus", "GPUs", 4),
    ("walltime", "Walltime left", 21),
    ("progress", "Tasks", 40),
)
NARROW_COLUMNS = (
    ("pilot", "Pilot", 26),
    ("state", "State", 10),
    ("progress", "Tasks", 26),
    ("walltime", "Walltime left", 18),
    ("nodes", "Nodes", 5),
    ("cores", "Cores", 6),
    ("gpus", "GPUs", 4),
    ("provider", "Provider", 9),
)
"""Under 120 columns: what matters first, so an 80-column terminal shows the tasks."""
WALL_BAR = 12
PROGRESS_BAR = 16
NARROW_WIDTH = 120


class PilotTable(DataTable[Text]):
    """Pilots, running ones first; enter opens one."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cursor_foreground_priority="renderable")
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._keys: list[str] = []
        self.narrow: bool | None = None

    @property
    def columns_shown(self) -> tuple[tuple[str, str, int], ...]:
        return NARROW_COLUMNS if self.narrow else COLUMNS

    def on_mount(self) -> None:
        self.fit(self.app.size.width)

    def fit(self, width: int) -> None:
        """Lay the columns out for a terminal ``width`` wide (again, when that changes)."""
        narrow = width < NARROW_WIDTH
        if narrow == self.narrow:
            return
        self.narrow = narrow
        self.clear(columns=True)
        self._cells.clear()
        self._keys = []
        for key, label, width_ in self.columns_shown:
            self.add_column(label, key=key, width=width_)

    @property
    def selected(self) -> str | None:
        if not self._keys or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value

    def sync(self, model: DashboardModel) -> None:
        """Add new pilots and update changed cells; nothing is rebuilt."""
        p = palette_of(self)
        now = model.now()
        order = [v.id for v in model.ordered()]
        if order[: len(self._keys)] != self._keys:
            # a pilot changed rank (it finished): re-sort what is there, keep the cursor
            selected = self.selected
            for view in model.ordered():
                if view.id not in self._cells:
                    self._add(view, now, p)
            rank = {pid: i for i, pid in enumerate(order)}
            self.sort("pilot", key=lambda cell: rank.get(cell.plain, len(rank)))
            self._keys = order
            if selected is not None and selected in rank:
                self.move_cursor(row=rank[selected], animate=False)
        else:
            for view in model.ordered()[len(self._keys):]:
                self._add(view, now, p)
                self._keys.append(view.id)
        for view in model.pilots.values():
            cells = self.cells(view, now, p)
            old = self._cells.get(view.id)
            if old is None or old == cells:
                continue
            for (key, _, _), cell, before in zip(self.columns_shown, cells, old, strict=True):
                if cell != before:
                    self.update_cell(view.id, key, cell)
            self._cells[view.id] = cells

    def _add(self, view: PilotView, now: float, p: Palette) -> None:
        cells = self.cells(view, now, p)
        self._cells[view.id] = cells
        self.add_row(*cells, key=view.id)

    def cells(self, view: PilotView, now: float, p: Palette) -> tuple[Text, ...]:
        """The row of ``view``, in the order of :attr:`columns_shown`."""
        totals = view.totals()
        narrow = bool(self.narrow)
        progress = progress_bar(totals, 8 if narrow else PROGRESS_BAR, p)
        progress.append(f" {totals.done:>6}/{totals.total:<6}" if not narrow else f" {totals.done}/{totals.total}")
        if totals.failed:
            progress.append(f" {totals.failed} failed" if not narrow else f" {totals.failed}F",
                            Style(color=p.failed))
        if totals.cancelled:
            progress.append(f" {totals.cancelled} cancelled" if not narrow else f" {totals.cancelled}C",
                            Style(color=p.cancelled))
        state = Text(view.state, style=Style(color=p.state(view.state), bold=not view.terminal))
        if view.summary is not None and not view.summary.attached:
            state.append("*", p.muted)
        by_key = {
            "pilot": Text(view.id),
            "provider": Text(view.provider),
            "state": state,
            "nodes": Text(str(view.node_count), justify="right"),
            "cores": Text(str(view.cores), justify="right"),
            "gpus": Text(str(view.gpus), justify="right"),
            "walltime": walltime_cell(view.walltime_left(now), view.walltime_span(), 8 if narrow else WALL_BAR, p)
            if not view.terminal else Text("ended", style=p.muted),
            "progress": progress,
        }
        return tuple(by_key[key] for key, _, _ in self.columns_shown)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(OpenPilot(event.row_key.value))
