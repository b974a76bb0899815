"""Lifecycle events: typed, timestamped, JSON-serialisable.

Every change a pilot goes through is one of these. Observers get them through the
``pilotkit_event`` hook and through :class:`EventBus` subscriptions; ``pilotkit run
--json`` prints them as JSON lines (``{"type": "task-finished", ...}``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Union

import msgspec

from .types import Allocation, NodeInfo


class Event(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True, gc=False):
    """Base of every event."""

    pilot: str
    t: float = msgspec.field(default_factory=time.time)


class PilotStateChanged(Event, tag="pilot-state"):
    state: str
    previous: str | None = None
    reason: str | None = None


class AllocationClaimed(Event, tag="allocation"):
    allocation: Allocation


class NodeReady(Event, tag="node-ready"):
    node: NodeInfo


class NodeLost(Event, tag="node-lost"):
    node: str
    reason: str


class GroupAdded(Event, tag="group-added"):
    """A task group was expanded; ``total`` tasks are queued in it (negative: an
    adaptive search that ended early takes back the trials it never asked for)."""

    group: str
    total: int


class TaskStarted(Event, tag="task-started"):
    task: str
    group: str
    attempt: int
    node: str
    gpus: list[str] = []


class TaskFinished(Event, tag="task-finished"):
    task: str
    group: str
    attempt: int
    node: str
    status: str
    """``ok``, ``failed``, ``timeout``, ``killed``, ``lost``, ``spawn-error``."""
    exit_code: int | None = None
    duration: float = 0.0
    final: bool = True
    """False when the task will be retried."""


class TaskReport(Event, tag="task-report"):
    """An intermediate report (a line with ``step``) a running trial of an adaptive
    search appended to its metrics file."""

    task: str
    group: str
    attempt: int
    step: int | float | None = None
    metrics: dict[str, Any] = {}
    pruned: bool = False
    """The search's pruner stops the trial on this report."""


class TaskCancelled(Event, tag="task-cancelled"):
    """Queued tasks that will never start (drain, cancel, walltime)."""

    group: str
    count: int


class StageProgress(Event, tag="stage-progress"):
    image: str
    done: int
    total: int | None = None
    message: str | None = None


class AppProgress(Event, tag="app-progress"):
    """Task counts of one kind of work inside an app's own cluster (a Dask task prefix, a
    Ray remote function or actor class), emitted by the app when they change.

    ``pending + running + done + failed == total``; counts are cumulative since the
    cluster started. The dashboard shows them on the pilot's page, one bar per ``name``.
    """

    app: str
    """The app that counts them: ``dask``, ``ray``..."""
    name: str
    """What is counted: a Dask task prefix (``sum``), a Ray function or actor class."""
    total: int
    pending: int
    """Not running yet (waiting for inputs, a worker, a node or memory)."""
    running: int
    done: int
    """Finished; for Dask: its result reached a worker's memory."""
    failed: int
    kind: str = ""
    """The app's word for the kind of task, where it has one (Ray: ``NORMAL_TASK``,
    ``ACTOR_TASK``...)."""


class Log(Event, tag="log"):
    level: str
    message: str
    source: str | None = None


class Metrics(Event, tag="metrics"):
    node: str
    cpu_percent: float
    memory_used: int
    gpus: list[dict[str, float | int | None]] = []
    core_percent: list[float] = []
    """The load of each logical CPU of the node, in percent (psutil's per-CPU figures)."""


AnyEvent = Union[  # noqa: UP007 - a runtime alias msgspec decodes
    PilotStateChanged,
    AllocationClaimed,
    NodeReady,
    NodeLost,
    GroupAdded,
    TaskStarted,
    TaskFinished,
    TaskReport,
    TaskCancelled,
    StageProgress,
    AppProgress,
    Log,
    Metrics,
]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes | str) -> AnyEvent:
    event: AnyEvent = _decoder.decode(data)
    return event


Listener = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out of events to listeners, in the order they subscribed.

    A listener that raises is removed and reported once; it never stops the pilot.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception as exc:
                self._listeners.remove(listener)
                import logging

                logging.getLogger("pilotkit").warning(
                    "event listener %r raised %r and was removed", listener, exc
                )
