"""The event this plugin adds to pilotkit's stream."""

from __future__ import annotations

from pilotkit.api import Event


class RayProgress(Event, tag="ray-progress"):
    """Task counts of one remote function (or actor class) on the pilot's Ray cluster,
    as Ray's state API summarises them, emitted when they change (needs ``dashboard =
    true``: the state API is served by the dashboard).

    ``pending + running + finished + failed == total``; counts are cumulative since the
    cluster started, as far as Ray keeps task events.
    """

    name: str
    """``func_or_class_name``: the function, or the actor class for actor tasks."""
    kind: str
    """Ray's task type: ``NORMAL_TASK``, ``ACTOR_CREATION_TASK``, ``ACTOR_TASK``..."""
    total: int
    pending: int
    """Not running yet: waiting for arguments, a node, a worker or object store memory."""
    running: int
    """Running now (blocked in ``ray.get``/``ray.wait`` included)."""
    finished: int
    failed: int
