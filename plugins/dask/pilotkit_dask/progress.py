"""Turns the scheduler's per-prefix task counts into :class:`DaskProgress` events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .events import DaskProgress


class ProgressTracker:
    """Remembers the last counts per prefix; yields an event for each prefix that changed."""

    def __init__(self, pilot: str) -> None:
        self.pilot = pilot
        self.last: dict[str, tuple[int, ...]] = {}

    def changes(self, snapshot: Mapping[str, Sequence[int]]) -> list[DaskProgress]:
        """Events for the prefixes whose ``[total, waiting, processing, memory, erred]``
        differ from the previous snapshot, in prefix order."""
        events: list[DaskProgress] = []
        for prefix in sorted(snapshot):
            counts = tuple(int(n) for n in snapshot[prefix])
            if len(counts) != 5 or self.last.get(prefix) == counts:
                continue
            self.last[prefix] = counts
            total, waiting, processing, memory, erred = counts
            events.append(
                DaskProgress(
                    pilot=self.pilot,
                    prefix=prefix,
                    total=total,
                    waiting=waiting,
                    processing=processing,
                    memory=memory,
                    erred=erred,
                )
            )
        return events
