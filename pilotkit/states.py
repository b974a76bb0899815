"""Pilot and task states."""

from __future__ import annotations

import enum


class PilotState(enum.StrEnum):
    """Where a pilot is in its life. The last four are terminal."""

    NEW = "new"
    """Created, nothing claimed yet."""
    CLAIMING = "claiming"
    """Asking the provider for resources (for a batch system: queued)."""
    PROBING = "probing"
    """Node agents are starting and reporting what each node has."""
    STAGING = "staging"
    """The container image is being made available on the nodes."""
    DEPLOYING = "deploying"
    """The app is starting its services (a scheduler, workers...)."""
    RUNNING = "running"
    """The app's work is running."""
    DRAINING = "draining"
    """No new work starts; running work finishes or is stopped."""
    EVICTING = "evicting"
    """Agents stop, the allocation is released."""
    DONE = "done"
    """Everything ran and succeeded."""
    FAILED = "failed"
    """Something failed: a task after its retries, or the pilot itself."""
    CANCELLED = "cancelled"
    """Stopped by the user (Ctrl-C, cancel) or from outside (scancel)."""
    WALLTIME_EXPIRED = "walltime-expired"
    """The allocation's walltime ran out; not a failure. Unfinished work is reported."""

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({PilotState.DONE, PilotState.FAILED, PilotState.CANCELLED, PilotState.WALLTIME_EXPIRED})


class TaskStatus(enum.StrEnum):
    """Where a task is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    """Failed its last allowed attempt."""
    CANCELLED = "cancelled"
    """Never ran to the end because the pilot drained or was cancelled."""
