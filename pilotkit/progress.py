"""Task progress per group, built from the event stream (used by `pilotkit run` and the
dashboard)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import Event, GroupAdded, PilotStateChanged, TaskCancelled, TaskFinished, TaskStarted


@dataclass
class GroupProgress:
    total: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def queued(self) -> int:
        return self.total - self.running - self.done - self.failed - self.cancelled

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled


@dataclass
class Progress:
    """Counts per task group and the pilot's state, folded from events."""

    state: str = "new"
    reason: str | None = None
    groups: dict[str, GroupProgress] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
        if isinstance(event, TaskStarted):
            self.groups[event.group].running += 1
        elif isinstance(event, TaskFinished):
            group = self.groups[event.group]
            group.running -= 1
            if event.final:
                if event.status in ("ok", "stopped"):
                    group.done += 1
                elif event.status == "killed" and self.state in ("draining", "evicting"):
                    group.cancelled += 1
                else:
                    group.failed += 1
        elif isinstance(event, GroupAdded):
            self.groups.setdefault(event.group, GroupProgress()).total += event.total
        elif isinstance(event, TaskCancelled):
            self.groups[event.group].cancelled += event.count
        elif isinstance(event, PilotStateChanged):
            self.state = event.state
            self.reason = event.reason or self.reason

    def totals(self) -> GroupProgress:
        out = GroupProgress()
        for g in self.groups.values():
            out.total += g.total
            out.running += g.running
            out.done += g.done
            out.failed += g.failed
            out.cancelled += g.cancelled
        return out
