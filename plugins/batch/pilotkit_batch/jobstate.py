"""The state of a batch job, in one vocabulary for every batch system.

Each batch system's parser maps its own codes onto :class:`JobState` and keeps the
original code in :attr:`JobInfo.raw_state`, so nothing it said is lost.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class JobState(enum.StrEnum):
    """Where a batch job is. Members after ``COMPLETING`` are terminal."""

    PENDING = "pending"
    """Queued, held, or allocated but not yet started."""
    RUNNING = "running"
    """Has its allocation (including suspended jobs, which keep it)."""
    COMPLETING = "completing"
    """Finished; the batch system is still cleaning up on the nodes."""
    DONE = "done"
    """Ended with exit code 0."""
    FAILED = "failed"
    """Ended with a non-zero exit code, or the batch system could not run it."""
    CANCELLED = "cancelled"
    """Cancelled by its owner or an administrator (scancel, qdel, bkill, condor_rm)."""
    WALLTIME_EXPIRED = "walltime-expired"
    """Ran out of its time limit. Not a failure: a pilot expects this."""
    NODE_FAIL = "node-fail"
    """A node of the allocation failed (or could not be booted)."""
    PREEMPTED = "preempted"
    """Stopped to make room for another job."""
    OUT_OF_MEMORY = "out-of-memory"
    """Killed for using more memory than it was given."""
    UNKNOWN = "unknown"
    """The batch system does not know the job (any more), or said something unexpected."""

    @property
    def terminal(self) -> bool:
        """Whether the job has ended for good."""
        return self in _TERMINAL

    @property
    def failure(self) -> bool:
        """Whether the job ended because something went wrong (walltime expiry and
        cancellation are not failures)."""
        return self in _FAILURES


_TERMINAL = frozenset(
    {
        JobState.DONE,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.WALLTIME_EXPIRED,
        JobState.NODE_FAIL,
        JobState.PREEMPTED,
        JobState.OUT_OF_MEMORY,
    }
)
_FAILURES = frozenset({JobState.FAILED, JobState.NODE_FAIL, JobState.OUT_OF_MEMORY})


@dataclass(frozen=True)
class JobInfo:
    """What a batch system says about one job."""

    state: JobState
    reason: str | None = None
    """Why it waits or why it ended, as the batch system puts it; None when it gave none."""
    nodes: list[str] = field(default_factory=list)
    """Host names, expanded; empty while pending."""
    time_left: float | None = None
    """Seconds until the time limit; None when unknown or unlimited."""
    exit_code: int | None = None
    """The job script's exit code, where reported."""
    raw_state: str = ""
    """The batch system's own state code, unmapped."""
