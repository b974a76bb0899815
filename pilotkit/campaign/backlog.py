"""A campaign's backlog: every task of the spec, handed to allocations as they have
room and taken back when an allocation ends under a running task."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator

from ..task import Task


class Backlog:
    """The tasks no allocation runs now, in order; tasks given back go first.

    A task is *waiting* (here), *out* (lent to an allocation) or *finished* (its result
    recorded). Tasks are made from the groups' iterators as they are needed."""

    def __init__(self, sources: list[tuple[Iterator[Task], int]]) -> None:
        self._sources = collections.deque(sources)
        self._unmade = sum(total for _, total in sources)
        self._waiting: collections.deque[Task] = collections.deque()
        self.total = self._unmade
        self.lent: dict[str, Task] = {}
        """Tasks lent to allocations, by id."""
        self.finished = 0

    def skipped(self, count: int) -> None:
        """``count`` of the sources' tasks will not be made (an earlier run finished them)."""
        self.total -= count
        self._unmade -= count

    def add(self, source: Iterator[Task], total: int) -> None:
        """More tasks, after the ones there are (``pilotkit submit --to``)."""
        self._sources.append((source, total))
        self.total += total
        self._unmade += total

    @property
    def waiting(self) -> int:
        """Tasks that wait for an allocation."""
        return len(self._waiting) + self._unmade

    @property
    def out(self) -> int:
        """Tasks lent to allocations."""
        return len(self.lent)

    @property
    def done(self) -> bool:
        """Every task has its result."""
        return self.finished >= self.total

    def _make(self, count: int) -> None:
        while self._sources and len(self._waiting) < count:
            source, _ = self._sources[0]
            task = next(source, None)
            if task is None:
                self._sources.popleft()
                continue
            self._unmade -= 1
            self._waiting.append(task)

    def take(self, room: int, fits: Callable[[Task], bool], window: int = 256) -> list[Task]:
        """Up to ``room`` cores' worth of waiting tasks for which ``fits`` holds, looking
        at most ``window`` tasks deep (a task that fits no allocation waits its turn)."""
        self._make(window)
        taken: list[Task] = []
        kept: list[Task] = []
        looked = 0
        while self._waiting and room > 0 and looked < window:
            task = self._waiting.popleft()
            looked += 1
            if task.cores <= room and fits(task):
                taken.append(task)
                room -= task.cores
            else:
                kept.append(task)
        self._waiting.extendleft(reversed(kept))
        self.lent.update((task.id, task) for task in taken)
        return taken

    def give_back(self, task: Task) -> None:
        """A lent task that must run again elsewhere: first in line."""
        self.lent.pop(task.id, None)
        self._waiting.appendleft(task)

    def ended(self, task_id: str) -> None:
        """A lent task's result is recorded."""
        if self.lent.pop(task_id, None) is not None:
            self.finished += 1

    def drop_all(self) -> list[Task]:
        """Every waiting task, made now and removed (the campaign stops: each is reported)."""
        self._make(self.waiting)
        tasks = list(self._waiting)
        self._waiting.clear()
        return tasks
