"""Turns the scheduler's per-prefix task counts into ``app-progress`` events
(:class:`pilotkit.api.AppProgress`, ``app = "dask"``, the prefix as ``name``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pilotkit.api import AppProgress


class ProgressTracker:
    """Remembers the last counts per prefix; yields an event for each prefix that changed."""

    def __init__(self, pilot: str) -> None:
        self.pilot = pilot
        self.last: dict[str, tuple[int, ...]] = {}

    def changes(self, snapshot: Mapping[str, Sequence[int]]) -> list[AppProgress]:
        """Events for the prefixes whose ``[total, waiting, processing, memory, erred]``
        differ from the previous snapshot, in prefix order: ``waiting`` is pending,
        ``processing`` running, ``memory`` done and ``erred`` failed."""
        events: list[AppProgress] = []
        for prefix in sorted(snapshot):
            counts = tuple(int(n) for n in snapshot[prefix])
            if len(counts) != 5 or self.last.get(prefix) == counts:
                continue
            self.last[prefix] = counts
            total, waiting, processing, memory, erred = counts
            events.append(
                AppProgress(
                    pilot=self.pilot,
                    app="dask",
                    name=prefix,
                    total=total,
                    pending=waiting,
                    running=processing,
                    done=memory,
                    failed=erred,
                )
            )
        return events
