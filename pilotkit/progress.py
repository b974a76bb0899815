"""Task progress per group, built from the event stream (used by `pilotkit run` and the
dashboard)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import Event, GroupAdded, PilotStateChanged, TaskCancelled, TaskFinished, TaskStarted
from .vocab import WINDING_DOWN_STATES, Counts, TaskStatus, final_status

GroupProgress = Counts
"""The counts of one task group (the shared :class:`pilotkit.vocab.Counts`)."""


@dataclass
class Progress:
    """Counts per task group and the pilot's state, folded from events."""

    state: str = "new"
    reason: str | None = None
    groups: dict[str, Counts] = field(default_factory=dict)

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
