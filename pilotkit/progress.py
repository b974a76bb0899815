"""Task progress per group, built from the event stream (used by `pilotkit run` and the
dashboard)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .events import Event, GroupAdded, PilotStateChanged, TaskCancelled, TaskFinished, TaskStarted
from .vocab import WINDING_DOWN_STATES, Counts, TaskStatus, final_status

GroupProgress = Counts
"""The counts of one task group (the shared :class:`pilotkit.vocab.Counts`)."""

FAILURES_KEPT = 20
"""How many failed tasks :class:`Progress` keeps by name (the rest are only counted)."""


@dataclass(frozen=True)
class Failure:
    """A task whose last attempt failed (or, not ``final``, an attempt that failed and
    will be tried again)."""

    task: str
    group: str
    attempt: int
    status: str
    """The attempt's outcome: ``failed``, ``timeout``, ``lost``, ``spawn-error``..."""
    exit_code: int | None
    final: bool = True


@dataclass
class Progress:
    """Counts per task group and the pilot's state, folded from events."""

    state: str = "new"
    reason: str | None = None
    groups: dict[str, Counts] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    """The first :data:`FAILURES_KEPT` failed tasks, in the order they failed."""
    listeners: list[Callable[[Failure], None]] = field(default_factory=list)
    """Called with each failed task as it is counted."""

    def apply(self, event: Event) -> None:
        if isinstance(event, TaskStarted):
            group = self.groups[event.group]
            group.running += 1
        elif isinstance(event, TaskFinished):
            group = self.groups[event.group]
            group.running -= 1
            if event.final:
                status = final_status(event.status, self.state in WINDING_DOWN_STATES)
                if status is TaskStatus.DONE:
                    group.done += 1
                elif status is TaskStatus.CANCELLED:
                    group.cancelled += 1
                else:
                    group.failed += 1
                    failure = Failure(event.task, event.group, event.attempt, event.status, event.exit_code)
                    if len(self.failures) < FAILURES_KEPT:
                        self.failures.append(failure)
                    for listener in self.listeners:
                        listener(failure)
        elif isinstance(event, GroupAdded):
            group = self.groups.setdefault(event.group, Counts())
            group.total += event.total
        elif isinstance(event, TaskCancelled):
            group = self.groups[event.group]
            group.cancelled += event.count
        else:
            if isinstance(event, PilotStateChanged):
                self.state = event.state
                self.reason = event.reason or self.reason
            return
        group.settle()

    def totals(self) -> Counts:
        out = Counts()
        for g in self.groups.values():
            out.add(g)
        return out
