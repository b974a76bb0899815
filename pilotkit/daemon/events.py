"""The event recorder: every event a pilot emits is numbered, stored, fanned out to
followers and folded into the pilot's record.

Each event gets the next sequence number, is appended to the ``events`` table and
published on :attr:`EventRecorder.hub` (keyed by pilot) to the ``events`` streams, then
folded into the record: state, nodes, allocation, and the ``attempts`` rows (one per
task attempt). Metrics samples are not events: they go to the metrics buffer. Lines for
the pilot's log file (``logs PILOT``) are written here too, from the store's writer
thread.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec

from ..events import (
    AllocationClaimed,
    Event,
    Log,
    Metrics,
    NodeReady,
    PilotStateChanged,
    TaskFinished,
    TaskStarted,
    encode,
)
from ..protocol import GpuMetric, MetricSample
from .metrics import MetricsBuffer
from .records import TERMINAL, PilotRecord, Records
from .store import Store
from .streams import Hub

log = logging.getLogger("pilotkit.daemon.events")

EventItem = tuple[int, str, bytes]
"""(sequence number, event type, the event's JSON)."""

_INSERT_EVENT = "INSERT INTO events (seq, pilot, t, type, data) VALUES (?, ?, ?, ?, ?)"


class EventRecorder:
    """Numbers, stores, publishes and folds the events of every pilot."""

    REPLAY_PAGE = 1000

    def __init__(self, store: Store, records: Records, metrics: MetricsBuffer) -> None:
        self.store = store
        self.records = records
        self.metrics = metrics
        self.hub: Hub[EventItem] = Hub()
        self.seq = 0
        """The newest sequence number."""
        self.recorded = 0
        """Events recorded since start."""

    async def load(self) -> None:
        ((seq,),) = await self.store.query("SELECT coalesce(max(seq), 0) FROM events")
        self.seq = int(seq)

    def record(self, record: PilotRecord, event: Event) -> None:
        """Number, store, publish and fold one event."""
        if isinstance(event, Metrics):
            self.metrics.add(MetricSample(
                pilot=record.id, node=event.node, t=event.t, cpu_percent=event.cpu_percent,
                memory_used=event.memory_used, core_percent=event.core_percent,
                gpus=[GpuMetric(uuid=str(g.get("uuid", "")), utilization=_int(g.get("utilization")),
                                memory_used=_int(g.get("memory_used")), memory_total=_int(g.get("memory_total")))
                      for g in event.gpus],
            ))
            return
        self.seq += 1
        seq = self.seq
        data = encode(event)
        etype = type(event).__struct_config__.tag
        assert isinstance(etype, str)
        self.store.write(_INSERT_EVENT, (seq, record.id, event.t, etype, data))
        self.recorded += 1
        self.hub.publish(record.id, (seq, etype, data))
        self._fold(record, event)

    def _fold(self, record: PilotRecord, event: Event) -> None:
        records = self.records
        if isinstance(event, TaskStarted):
            records.write_attempt_started(record, event.task, event.attempt, event.group, event.node, event.t)
        elif isinstance(event, TaskFinished):
            records.write_attempt_finished(
                record.id, event.task, event.attempt, t=event.t, status=event.status, exit_code=event.exit_code,
                duration=event.duration, final=event.final,
            )
        elif isinstance(event, PilotStateChanged):
            record.state, record.reason, record.updated = event.state, event.reason, event.t
            if event.state in TERMINAL:
                record.ended = event.t
            records.write_state(record)
            because = f" ({event.reason})" if event.reason else ""
            self.pilot_log(record, "info", f"state {event.previous} -> {event.state}{because}", t=event.t)
        elif isinstance(event, AllocationClaimed):
            allocation = event.allocation
            record.job_id = allocation.job_id
            record.walltime_end = allocation.walltime_end
            record.allocation = msgspec.json.encode(allocation).decode()
            records.write_allocation(record)
        elif isinstance(event, NodeReady):
            record.nodes.append(event.node)
            record.cores += event.node.cores
            record.gpus += len(event.node.gpus)
            records.write_nodes(record)
        elif isinstance(event, Log):
            self.pilot_log(record, event.level, event.message, t=event.t)

    def pilot_log(self, record: PilotRecord, level: str, message: str, *, t: float | None = None) -> None:
        """Append a line to the pilot's log file (``logs PILOT``), from the writer thread."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t or time.time()))
        line = f"{stamp} {level.upper():5} {message}\n".encode()
        path = record.log_path

        def append(_db: Any) -> None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "ab") as f:
                    f.write(line)
            except OSError as exc:
                log.warning("cannot write %s: %s", path, exc)

        self.store.write_fn(append)

    async def stored(self, pilot_id: str | None, after: int, upto: int, *, sync: bool = True) -> list[EventItem]:
        """Stored events with ``after < seq <= upto``: one page, oldest first. ``sync``:
        wait for the writes queued before the call first."""
        if sync:
            await self.store.barrier()
        where = "seq > ? AND seq <= ?" + (" AND pilot = ?" if pilot_id is not None else "")
        args: tuple[Any, ...] = (after, upto) if pilot_id is None else (after, upto, pilot_id)
        rows = await self.store.query(
            f"SELECT seq, type, data FROM events WHERE {where} ORDER BY seq LIMIT {self.REPLAY_PAGE}", args
        )
        return [(seq, etype, data) for seq, etype, data in rows]


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None
