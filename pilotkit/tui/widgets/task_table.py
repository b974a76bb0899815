"""The task table, virtual: 100,000 tasks cost what the visible rows cost.

Rows come straight from the model's task list; nothing is copied per row. With no
filter and the default sort (most recent first) the view is the model's own list read
backwards. A filter (``/``: every word must match task, group, status, node or outcome;
a leading ``!`` inverts) or another sort builds an index list: at once when the user
changes it, and while tasks stream in at each repaint, or less often where it is slow
(at most a tenth of the time goes to it: 100,000 tasks).

The list holds still while you read it: with the cursor on the first row the table
follows the newest task (as ``tail -f`` does); anywhere else, rows that arrive above push
the view down by as many rows, so the rows on screen and the cursor stay where they are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size

from ..format import clock, seconds
from ..model import PilotView, TaskRow, Tasks
from . import palette_of, set_virtual_size
from .virtual import VirtualTable

_BLOCKS = "▁▂▃▄▅▆▇█"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

SORTS: dict[str, Callable[[Tasks], Callable[[int], Any]]] = {
    "recent": lambda t: lambda i: i,
    "task": lambda t: t.task.__getitem__,
    "group": lambda t: lambda i: (t.group[i], t.task[i]),
    "status": lambda t: lambda i: (t.status[i], t.task[i]),
    "node": lambda t: lambda i: (t.node[i] or "", t.task[i]),
    "time": lambda t: lambda i: t.duration(i) or 0.0,
}
"""Sort keys: given the tasks, a key of a row index. Besides these, ``param:NAME`` and
``metric:NAME`` sort by a scan parameter or a task's metric (tasks without it last)."""
_LEAD = (0, 2)
_TRAIL = (1, 3, 4, 5, 6, 7)
"""With parameter or metric columns: task and status, then those, then the rest."""
VALUE_WIDTH = 10
"""Widest a parameter or metric column gets."""
RECOMPUTE_EVERY = 0.0
"""Least seconds between two filter/sort passes while tasks stream in (besides ten times
the cost of the last pass)."""


def value_key(kind: str, name: str) -> str:
    """The sort key of a parameter (``kind`` "param") or metric column."""
    return f"{kind}:{name}"


def _order(value: Any) -> tuple[int, float, str]:
    """Numbers before words, each in their order (a column may hold both)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def cell(value: Any) -> str:
    """A parameter or metric as the table shows it."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def parse_filter(text: str) -> tuple[list[str], bool]:
    """Words of a filter and whether it is inverted (a leading ``!``)."""
    text = text.strip()
    invert = text.startswith("!")
    if invert:
        text = text[1:]
    return text.lower().split(), invert


def matches(hay: str, words: list[str], invert: bool) -> bool:
    """Whether a row's text (:meth:`Tasks.haystack`) passes the filter."""
    return all(w in hay for w in words) != invert


class TaskTable(VirtualTable):
    """Tasks of one pilot; enter or ``l`` follows the selected task's output."""

    COLUMNS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("task", 24), ("group", 10), ("status", 9), ("try", 3), ("node", 12), ("exit", 4), ("started", 8),
        ("time", 7),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.pilot: PilotView | None = None
        self.words: list[str] = []
        self.invert = False
        self.sort_key = "recent"
        self.reverse = False
        self._rows: list[int] | None = None
        """The filtered/sorted view (row indices); None: every task, newest first."""
        self._tasks_version = -1
        self._trend: tuple[tuple[str, int, str, bool, int], str] = (("", -1, "", False, 0), "")
        """best_so_far's last answer, for (tasks version, metric, reverse, width)."""
        self._computed = 0.0
        self._cost = 0.0
        """Seconds the last filter/sort took: while tasks stream in, it runs again after
        ten times that at the least (at most a tenth of the time goes to it)."""
        self._stale = False
        self.now = 0.0
        self._extra: list[tuple[str, str]] = []
        """(kind, name) of the parameter and metric columns, after the fixed ones."""
        self._columns: tuple[tuple[str, int], ...] = self.COLUMNS
        self._values_version = -1

    # -------------------------------------------------------------- the view

    @property
    def simple(self) -> bool:
        return not self.words and not self.invert and self.sort_key == "recent"

    def row_count(self) -> int:
        if self._rows is not None:
            return len(self._rows)
        return len(self.pilot.tasks) if self.pilot is not None else 0

    def index(self, i: int) -> int | None:
        """The task (its index in the model) on line ``i`` of the view."""
        if i < 0 or i >= self.row_count():
            return None
        if self._rows is not None:
            return self._rows[i]
        return i if self.reverse else self.row_count() - 1 - i

    def row(self, i: int) -> TaskRow | None:
        index = self.index(i)
        return None if index is None or self.pilot is None else self.pilot.tasks.row(index)

    def row_key(self, i: int) -> str:
        index = self.index(i)
        return self.pilot.tasks.task[index] if index is not None and self.pilot is not None else ""

    def row_identity(self, i: int) -> Hashable:
        index = self.index(i)
        if index is None or self.pilot is None:
            return None
        t = self.pilot.tasks
        return (index, t.version[index], int(self.now) if t.status[index] == "running" else 0, self._values_version)

    @property
    def columns(self) -> tuple[tuple[str, int], ...]:
        return self._columns

    def _sync_columns(self) -> None:
        """A column for each parameter, then each metric, any task has (none: the fixed columns)."""
        t = self.pilot.tasks if self.pilot is not None else None
        version = t.values_version if t is not None else -1
        if version == self._values_version:
            return
        self._values_version = version
        if t is None:
            self._extra, self._columns = [], self.COLUMNS
            return
        self._extra = [("param", k) for k in t.param_keys] + [("metric", k) for k in t.metric_keys]
        extra = tuple((self._label(kind, name), min(VALUE_WIDTH, max(6, len(name))))
                      for kind, name in self._extra)
        fixed = self.COLUMNS
        self._columns = (tuple(fixed[i] for i in _LEAD) + extra + tuple(fixed[i] for i in _TRAIL)) if extra else fixed
        self.clear_cache()

    def _label(self, kind: str, name: str) -> str:
        """A column's heading: the name; a metric that shares a parameter's name is ``m:NAME``."""
        t = self.pilot.tasks if self.pilot is not None else None
        if kind == "metric" and t is not None and name in t.param_keys:
            return f"m:{name}"
        return name

    def row_cells(self, i: int) -> Sequence[Text | str]:
        index = self.index(i)
        assert index is not None and self.pilot is not None
        t = self.pilot.tasks
        p = palette_of(self)
        status, start, code, attempt = t.status[index], t.start[index], t.exit_code[index], t.attempt[index]
        took = self.now - start if status == "running" and start is not None else t.duration(index)
        fixed: tuple[Text | str, ...] = (
            t.task[index], t.group[index], Text(status, style=Style(color=p.state(status))), str(attempt or ""),
            t.node[index] or "", "" if code is None else str(code), clock(start) if start else "", seconds(took),
        )
        if not self._extra:
            return fixed
        return (tuple(fixed[i] for i in _LEAD) + tuple(cell(t.value(kind, index, name)) for kind, name in self._extra)
                + tuple(fixed[i] for i in _TRAIL))

    def header(self) -> Sequence[str]:
        arrow = "↑" if self.reverse else "↓"
        names = [name for name, _ in self.COLUMNS]
        keys = names if not self._extra else ([names[i] for i in _LEAD] + [value_key(k, n) for k, n in self._extra]
                                              + [names[i] for i in _TRAIL])
        return [f"{label}{arrow}" if key == self.sort_key or (key == "started" and self.sort_key == "recent")
                else label for key, (label, _) in zip(keys, self.columns, strict=True)]

    def sort_keys(self) -> list[str]:
        """What ``s`` cycles through: the fixed sorts, then each parameter and metric."""
        return list(SORTS) + [value_key(kind, name) for kind, name in self._extra]

    def best(self) -> tuple[str, str, Any] | None:
        """With the view sorted by a metric: (metric, task, value) of the first row that has
        it (the least value, or the greatest when reversed); else None."""
        kind, _, name = self.sort_key.partition(":")
        if kind != "metric" or self.pilot is None or not self._rows:
            return None
        t = self.pilot.tasks
        value = t.value("metric", self._rows[0], name)
        return None if value is None else (name, t.task[self._rows[0]], value)

    @property
    def selected(self) -> TaskRow | None:
        return self.row(self.cursor)

    def index_of(self, task: str) -> int | None:
        """The line of ``task`` in the view."""
        if self.pilot is None:
            return None
        index = self.pilot.tasks.find(task)
        if index is None:
            return None
        if self._rows is None:
            return index if self.reverse else self.row_count() - 1 - index
        try:
            return self._rows.index(index)
        except ValueError:
            return None

    def set_filter(self, text: str) -> None:
        words, invert = parse_filter(text)
        if (words, invert) != (self.words, self.invert):
            self.words, self.invert = words, invert
            self._recompute(anchor=False)

    def set_sort(self, key: str, reverse: bool | None = None) -> None:
        self.sort_key = key
        if reverse is not None:
            self.reverse = reverse
        self._recompute(anchor=False)

    def _recompute(self, *, anchor: bool = True) -> None:
        pilot = self.pilot
        started = time.perf_counter()
        self._computed = time.monotonic()
        self._stale = False
        if pilot is None or self.simple:
            self._rows = None
        else:
            words, invert = self.words, self.invert
            tasks = pilot.tasks
            rows = [i for i in range(len(tasks)) if matches(tasks.haystack(i), words, invert)] if (
                words or invert) else list(range(len(tasks)))
            if self.sort_key == "recent":
                if not self.reverse:
                    rows.reverse()
            elif self.sort_key in SORTS:
                rows.sort(key=SORTS[self.sort_key](tasks), reverse=self.reverse)
            else:  # a parameter or metric: tasks that have it, in order; the others after
                kind, _, name = self.sort_key.partition(":")
                have = [(tasks.value(kind, i, name), i) for i in rows]
                valued = [(v, i) for v, i in have if v is not None]
                valued.sort(key=lambda vi: _order(vi[0]), reverse=self.reverse)
                rows = [i for _, i in valued] + [i for v, i in have if v is None]
            self._rows = rows
        self._cost = time.perf_counter() - started
        self._changed(anchor=anchor)

    def _changed(self, *, anchor: bool = True) -> None:
        """Keep the cursor on the task it was on and the rows on screen where they were
        (``anchor``; else bring the cursor into view), resize, repaint. A cursor on the
        first row stays there: the table follows the newest rows."""
        key = self._cursor_key
        at_head = self.cursor == 0 and round(self.scroll_offset.y) == 0
        if key is not None and not at_head:
            i = self.index_of(key)
            if i is not None and i != self.cursor:
                delta = i - self.cursor
                self.set_reactive(TaskTable.cursor, i)
                set_virtual_size(self, Size(self.width_needed, self.row_count() + 1))
                if anchor:
                    self.scroll_to(y=max(0, round(self.scroll_offset.y) + delta), animate=False, immediate=True)
                else:
                    self._scroll_to_cursor()
        self.rows_changed()
        if at_head and self.row_count():
            self.cursor = 0  # the newest row, announced

    def _scroll_to_cursor(self) -> None:
        height = max(1, self.scrollable_content_region.height - 1)
        top = round(self.scroll_offset.y)
        if self.cursor < top or self.cursor >= top + height:
            self.scroll_to(y=max(0, self.cursor - height // 2), animate=False)

    def sync(self, pilot: PilotView, now: float) -> None:
        """Show ``pilot``'s tasks as they are at ``now`` (cheap when nothing changed)."""
        if int(now) != int(self.now):
            self.refresh()  # running tasks' times
        self.now = now
        if pilot is not self.pilot:
            self.pilot = pilot
            self._values_version = -1
            self._sync_columns()
            self._tasks_version = pilot.tasks_version
            self._cursor_key = None
            self.cursor = 0
            self._recompute()
            return
        if pilot.tasks_version == self._tasks_version and not self._stale:
            return
        self._tasks_version = pilot.tasks_version
        self._sync_columns()
        if self._rows is None:
            self._changed()
        elif time.monotonic() - self._computed >= max(RECOMPUTE_EVERY, 10 * self._cost):
            self._recompute()
        else:
            self._stale = True
            self.refresh()  # the rows shown may have changed status

    def describe_view(self) -> str:
        what = f"{self.row_count()} task(s)"
        if self.words or self.invert:
            what += f" matching {'!' if self.invert else ''}{' '.join(self.words)}"
        what += f", by {self.sort_key.partition(':')[2] or self.sort_key}" + (" (reversed)" if self.reverse else "")
        best = self.best()
        if best is not None:
            name, task, value = best
            trend = self.best_so_far(name)  # the objective over time, before the task (narrow screens cut the end)
            what = f"best {name}{' ' + trend if trend else ''}: {task} ({cell(value)}, " \
                   f"{'greatest' if self.reverse else 'least'}); {what}"
        return what

    def best_so_far(self, name: str, width: int = 8) -> str:
        """Metric ``name``'s best value so far, as the tasks that report it ended (the
        objective over time): a sparkline of up to ``width`` blocks, low values low; ""
        with fewer than two such tasks."""
        if self.pilot is None:
            return ""
        key = (self.pilot.id, self.pilot.tasks_version, name, self.reverse, width)
        if self._trend[0] != key:
            self._trend = (key, self._sparkline(name, width))
        return self._trend[1]

    def _sparkline(self, name: str, width: int) -> str:
        assert self.pilot is not None
        t = self.pilot.tasks
        ended = sorted((end, float(v)) for i in t.metrics
                       if (end := t.end[i]) is not None and _is_number(v := t.value("metric", i, name)))  # fmt: skip
        if len(ended) < 2:
            return ""
        pick = max if self.reverse else min
        best: list[float] = []
        for _, v in ended:
            best.append(v if not best else pick(best[-1], v))
        n = min(width, len(best))
        points = [best[round(k * (len(best) - 1) / (n - 1))] for k in range(n)]
        lo, hi = min(points), max(points)
        return "".join(_BLOCKS[round((p - lo) / (hi - lo) * 7) if hi > lo else 0] for p in points)

    # -------------------------------------------------------------- keys

    def action_sort(self) -> None:
        keys = self.sort_keys()
        at = keys.index(self.sort_key) if self.sort_key in keys else -1
        self.set_sort(keys[(at + 1) % len(keys)])

    def action_reverse(self) -> None:
        self.set_sort(self.sort_key, not self.reverse)
