"""The event this plugin adds to pilotkit's stream (a candidate for core)."""

from __future__ import annotations

from pilotkit.api import Event


class DaskProgress(Event, tag="dask-progress"):
    """Task counts of one task prefix (``sum``, ``histogram``, ``random_sample``...) on
    the pilot's Dask scheduler, emitted when they change.

    ``waiting + processing + memory + erred == total``. Counts are cumulative since the
    cluster started: a task that finished and was since released still counts in
    ``memory``; a task that was cancelled before it ran leaves ``total``.
    """

    prefix: str
    total: int
    waiting: int
    """Not started: waiting for its inputs, queued, or without a worker."""
    processing: int
    """Running (or assigned to a worker) now."""
    memory: int
    """Finished: its result reached a worker's memory."""
    erred: int
    """Failed (or depends on a failed task)."""
