"""A task: one command the task pool runs, with what it needs and where it is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .states import TaskStatus


@dataclass(slots=True, eq=False)
class Task:
    id: str
    group: str
    argv: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    cores: int = 1
    gpus: int = 0
    time_limit: float | None = None
    retries: int = 0
    env: dict[str, str] = field(default_factory=dict)
    status: TaskStatus = TaskStatus.QUEUED
    attempts: int = 0
    node: str | None = None
    start: float | None = None
    end: float | None = None
    exit_code: int | None = None
    outcome: str | None = None
    pin: str | None = None
    """Run only on this node (a service that belongs to one node)."""
    whole_nodes: int = 0
    """A gang task: needs this many entirely free nodes at once; runs on the first, with
    the node names in ``PILOTKIT_NODES`` (an MPI launch across them, say)."""
    failures: int = 0
    """Failed attempts (counted against ``retries``)."""
    lost: int = 0
    """Attempts lost with their node (counted against the pool's crash limit)."""
    metrics: dict[str, Any] | None = None
    """The final metrics its last attempt reported (``PILOTKIT_METRICS``)."""
    on_end: Callable[[Task], None] | None = None
    """Called once the task has its final result (an adaptive search telling its
    sampler); after the result is on disk."""
    checkpoint: bool = False
    """In a campaign: signalled at an allocation's drain point, its directory kept."""
    preempted: int = 0
    """Attempts stopped by the end of their allocation (a campaign): not the task's failures."""
