"""The pilots a daemon runs: their durable records, their live runs, their events.

Every pilot has a :class:`PilotRecord`, mirrored in the ``pilots`` table; a running one
also has a :class:`LivePilot` (the :class:`~pilotkit.pilot.Pilot` object and its
asyncio task). Each event a pilot emits is given a sequence number, appended to the
``events`` table, published to subscribers and folded into the record (state, nodes,
allocation) and the ``attempts`` table (one row per task attempt).

After a restart (:meth:`PilotManager.recover`), a local pilot that had not finished is
run again in the same workdir with the same id, resuming from its results file and the
recorded attempts; attempts that were running are recorded as ``lost`` and their tasks
run again with the next attempt number. A batch pilot is handed to
:func:`pilotkit.daemon.reattach.reattach`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..errors import PilotkitError
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
from ..pilot import Pilot, new_pilot_id
from ..plugins import Plugins
from ..protocol import (
    ControlResult,
    Counts,
    ErrorCode,
    GpuMetric,
    MetricSample,
    NodeStatus,
    PilotDetail,
    PilotSummary,
    RetryResult,
    SubmitParams,
    SubmitResult,
    TaskInfo,
    TasksParams,
    TasksResult,
)
from ..scheduler import Resume
from ..spec import ResolvedSpec, parse_spec
from ..states import TaskStatus
from ..types import Allocation, NodeInfo
from ..vocab import PILOT_LOG, RESULTS_FILE, TERMINAL_STATES, final_status
from .metrics import MetricsBuffer
from .reattach import DetachFlag, detachable, reattach
from .recovery import kill_orphans, latest_results, launched_attempts, read_results_quietly, repair_results
from .store import Store
from .streams import Hub

log = logging.getLogger("pilotkit.daemon.pilots")

TERMINAL = TERMINAL_STATES
FAILED_OUTCOMES = frozenset({"failed", "timeout", "spawn-error", "lost", "killed"})

EventItem = tuple[int, str, bytes]
"""(sequence number, event type, the event's JSON)."""


class ApiError(Exception):
    """An error with a protocol error code, returned to the client as it is."""

    def __init__(self, code: ErrorCode, message: str, data: Any = None, *, close: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.close = close
        """Close the connection after the reply (authentication failures)."""


_COLUMNS = (
    "id", "name", "provider", "state", "reason", "spec", "spec_path", "workdir", "created", "updated",
    "ended", "job_id", "allocation", "walltime_end", "nodes", "cores", "gpus", "progress", "run",
    "crashes", "desired", "attached",
)
_nodes_decoder = msgspec.json.Decoder(list[NodeInfo])
_progress_decoder = msgspec.json.Decoder(dict[str, Counts])


@dataclass
class PilotRecord:
    """What the daemon keeps about one pilot (a row of ``pilots``)."""

    id: str
    name: str
    provider: str
    state: str
    spec: str
    spec_path: str | None
    workdir: str
    created: float
    updated: float
    reason: str | None = None
    ended: float | None = None
    job_id: str | None = None
    allocation: str | None = None
    walltime_end: float | None = None
    nodes: list[NodeInfo] = field(default_factory=list)
    cores: int = 0
    gpus: int = 0
    progress: dict[str, Counts] = field(default_factory=dict)
    run: int = 1
    crashes: int = 0
    desired: str | None = None
    """``drain`` or ``cancel`` once asked (durable: honoured after a restart)."""
    attached: bool = True

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> PilotRecord:
        values = dict(zip(_COLUMNS, row, strict=True))
        values["nodes"] = _nodes_decoder.decode(values["nodes"] or "[]")
        values["progress"] = _progress_decoder.decode(values["progress"]) if values["progress"] else {}
        values["attached"] = bool(values["attached"])
        return cls(**values)

    def row(self) -> tuple[Any, ...]:
        values = dict(self.__dict__)
        values["nodes"] = msgspec.json.encode(self.nodes).decode()
        values["progress"] = msgspec.json.encode(self.progress).decode()
        values["attached"] = int(self.attached)
        return tuple(values[c] for c in _COLUMNS)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def results_path(self) -> Path:
        return Path(self.workdir) / RESULTS_FILE

    @property
    def log_path(self) -> Path:
        return Path(self.workdir) / PILOT_LOG


_INSERT_PILOT = f"INSERT OR REPLACE INTO pilots ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_INSERT_EVENT = "INSERT INTO events (seq, pilot, t, type, data) VALUES (?, ?, ?, ?, ?)"
_TASK_STARTED = (
    "INSERT OR REPLACE INTO attempts (pilot, task, attempt, grp, run, node, started, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, 'running')"
)
_TASK_FINISHED = (
    "UPDATE attempts SET ended = ?, status = ?, exit_code = ?, duration = ?, final = ? "
    "WHERE pilot = ? AND task = ? AND attempt = ?"
)


class LivePilot:
    """A pilot the daemon is running now."""

    def __init__(self, record: PilotRecord, pilot: Pilot, detach: DetachFlag | None) -> None:
        self.record = record
        self.pilot = pilot
        self.detach = detach
        self.task: asyncio.Task[None] | None = None
        self.suspended = False
        """The daemon is stopping: the pilot winds down but has not *finished*."""
        self.done = asyncio.Event()

    @property
    def local(self) -> bool:
        return self.detach is None


class PilotManager:
    """Every pilot of this daemon (see the module docstring)."""

    PROGRESS_EVERY = 2.0
    """Seconds between progress snapshots of running pilots in the database."""

    def __init__(self, store: Store, plugins: Plugins, metrics: MetricsBuffer, state_dir: Path) -> None:
        self.store = store
        self.plugins = plugins
        self.metrics = metrics
        self.state_dir = state_dir
        self.records: dict[str, PilotRecord] = {}
        self.live: dict[str, LivePilot] = {}
        self.events: Hub[EventItem] = Hub()
        self.seq = 0
        self.recorded = 0
        self.stopping = False
        self.heartbeats: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        rows = await self.store.query(f"SELECT {', '.join(_COLUMNS)} FROM pilots ORDER BY created")
        for row in rows:
            record = PilotRecord.from_row(row)
            self.records[record.id] = record
        ((seq,),) = await self.store.query("SELECT coalesce(max(seq), 0) FROM events")
        self.seq = int(seq)

    async def recover(self, crashed: bool) -> None:
        """Resume or re-attach every pilot that had not finished."""
        for record in list(self.records.values()):
            if record.terminal:
                continue
            try:
                if record.provider == "local":
                    await self._recover_local(record, crashed)
                else:
                    await self._reattach(record, crashed)
            except Exception as exc:
                log.exception("recovering pilot %s failed", record.id)
                await self._finish(record, "failed", f"could not be resumed: {exc}")

    async def _recover_local(self, record: PilotRecord, crashed: bool) -> None:
        results = await asyncio.to_thread(repair_results, record.results_path, record.log_path)
        killed = await asyncio.to_thread(kill_orphans, Path(record.workdir))
        if killed:
            self.pilot_log(record, "warn", f"killed {killed} process(es) left running by the previous daemon")
        latest = latest_results(results)
        open_attempts = await self.store.query(
            "SELECT task, attempt, grp, node FROM attempts WHERE pilot = ? AND ended IS NULL", (record.id,)
        )
        lost = 0
        for task, attempt, group, node in open_attempts:
            result = latest.get(task)
            if result is not None and result.attempts == attempt and result.status != "cancelled":
                # It finished; the daemon died before recording that.
                self.store.write(_TASK_FINISHED, (
                    result.end, result.status, result.exit_code, result.duration, 1, record.id, task, attempt,
                ))
                continue
            lost += 1
            self.record_event(record, TaskFinished(
                pilot=record.id, task=task, group=group, attempt=attempt, node=node or "?",
                status="lost", final=False,
            ))
        if crashed:
            record.crashes += 1
        why = "crashed" if crashed else "stopped"
        if record.desired == "cancel":
            await self._finish(record, "cancelled", f"cancelled (the daemon {why} while it was stopping)")
            return
        if record.desired == "drain":
            failed = sum(1 for r in latest.values() if r.status in FAILED_OUTCOMES)
            state = "failed" if failed else "done"
            await self._finish(record, state, f"drained (the daemon {why} while it was draining)")
            return
        attempts = await self._attempts(record.id)
        # Task events reach the database in groups every few milliseconds, so a crash can
        # lose the start of an attempt; its files in the task dir cannot be lost.
        done = {t for t, r in latest.items() if r.status != "cancelled"}
        launched = await asyncio.to_thread(launched_attempts, Path(record.workdir), done)
        unrecorded = sorted(f"{t} #{n}" for t, n in launched.items() if n > attempts.get(t, 0))
        for task, n in launched.items():
            attempts[task] = max(n, attempts.get(task, 0))
        if unrecorded:
            lost += len(unrecorded)
            self.pilot_log(record, "warn", f"attempts started but not recorded before the crash, lost: "
                           f"{', '.join(unrecorded)}")
        finished = len(done)
        self.pilot_log(
            record, "info",
            f"resuming after the daemon {why}: {finished} task(s) finished, {lost} lost and re-queued",
        )
        await self._start(record, Resume(results=latest, attempts=attempts), new_run=True)

    async def _reattach(self, record: PilotRecord, crashed: bool) -> None:
        if crashed:
            record.crashes += 1
        try:
            provider_cls = self.plugins.provider(record.provider)
        except PilotkitError:
            provider_cls = None
        pilot, reason = await reattach(record, provider_cls, self.plugins)
        record.reason = reason
        record.attached = pilot is not None
        await self.store.commit(_INSERT_PILOT, record.row())
        if pilot is not None:
            live = LivePilot(record, pilot, None)
            self._launch(live)
        else:
            log.info("pilot %s: %s", record.id, reason)

    async def _attempts(self, pilot_id: str) -> dict[str, int]:
        rows = await self.store.query(
            "SELECT task, max(attempt) FROM attempts WHERE pilot = ? GROUP BY task", (pilot_id,)
        )
        return {task: int(attempt) for task, attempt in rows}

    # ------------------------------------------------------------------ running

    async def submit(self, params: SubmitParams) -> SubmitResult:
        if self.stopping:
            raise ApiError(ErrorCode.SHUTTING_DOWN, "the daemon is shutting down")
        resolved = await asyncio.to_thread(parse_spec, params.spec, params.path, self.plugins)
        pilot_id = new_pilot_id(resolved.name)
        while pilot_id in self.records:
            pilot_id = new_pilot_id(resolved.name)
        workdir = self._workdir(resolved, pilot_id, params.workdir)
        now = time.time()
        record = PilotRecord(
            id=pilot_id, name=resolved.name, provider=resolved.provider_cls.id, state="new",
            spec=params.spec, spec_path=params.path, workdir=str(workdir), created=now, updated=now,
        )
        await self.store.commit(_INSERT_PILOT, record.row())
        self.records[pilot_id] = record
        await self._start(record, None, new_run=False, resolved=resolved)
        return SubmitResult(pilot=pilot_id, name=record.name, workdir=record.workdir)

    def _workdir(self, resolved: ResolvedSpec, pilot_id: str, given: str | None) -> Path:
        if given:
            path = Path(given)
            if not path.is_absolute():
                raise ApiError(ErrorCode.INVALID_PARAMS, f"workdir must be an absolute path, got '{given}'")
            return path
        configured = resolved.spec.pilot.workdir
        if configured:
            path = Path(configured)
            return path if path.is_absolute() else resolved.base_dir / path
        return self.state_dir / "runs" / pilot_id

    async def _start(
        self,
        record: PilotRecord,
        resume: Resume | None,
        *,
        new_run: bool,
        resolved: ResolvedSpec | None = None,
    ) -> None:
        if resolved is None:
            try:
                resolved = await asyncio.to_thread(parse_spec, record.spec, record.spec_path, self.plugins)
            except PilotkitError as exc:
                await self._finish(record, "failed", f"the spec is no longer valid: {exc}")
                return
        detach: DetachFlag | None = None
        if record.provider != "local":
            resolved, detach = detachable(resolved)
        if new_run:
            record.run += 1
            record.state, record.reason, record.ended, record.desired = "new", None, None, None
            record.nodes, record.cores, record.gpus = [], 0, 0
            record.attached = True
            record.updated = time.time()
            await self.store.commit(_INSERT_PILOT, record.row())
        pilot = Pilot(resolved, self.plugins, pilot_id=record.id, workdir=Path(record.workdir), resume=resume)
        self._launch(LivePilot(record, pilot, detach))

    def _launch(self, live: LivePilot) -> None:
        self.live[live.record.id] = live
        live.pilot.bus.subscribe(lambda event: self._on_event(live, event))
        live.task = asyncio.ensure_future(self._run(live))

    async def _run(self, live: LivePilot) -> None:
        record = live.record
        try:
            await live.pilot.run()
        except asyncio.CancelledError:
            if not live.suspended:
                raise
        except Exception as exc:
            log.exception("pilot %s crashed", record.id)
            record.state, record.reason = "failed", f"internal error: {exc}"
        finally:
            self.live.pop(record.id, None)
            if live.detach is None or not live.detach.detached:
                record.progress = self.groups(record, live)
            record.updated = time.time()
            if live.suspended:
                if live.local:
                    record.reason = "suspended: the daemon stopped; the pilot resumes when it starts again"
                self.pilot_log(record, "info", record.reason or "suspended")
            elif not record.terminal:
                record.state = "failed"
                record.reason = record.reason or "the pilot stopped without a final state"
                record.ended = record.updated
            with contextlib.suppress(Exception):
                await self.store.commit(_INSERT_PILOT, record.row())
            self.metrics.forget(record.id)
            for key in [k for k in self.heartbeats if k[0] == record.id]:
                del self.heartbeats[key]
            live.done.set()

    async def _finish(self, record: PilotRecord, state: str, reason: str) -> None:
        """End a pilot that is not running, with a state change event."""
        previous = record.state
        self.record_event(record, PilotStateChanged(pilot=record.id, state=state, previous=previous, reason=reason))
        await self.store.commit(_INSERT_PILOT, record.row())

    # ------------------------------------------------------------------ events

    def _on_event(self, live: LivePilot, event: Event) -> None:
        if live.detach is not None and live.detach.detached:
            return  # only the daemon's side winds down; the allocation carries on
        if live.suspended and isinstance(event, PilotStateChanged) and event.state in TERMINAL:
            return  # winding down for a daemon stop: suspended, not finished
        self.record_event(live.record, event)

    def record_event(self, record: PilotRecord, event: Event) -> None:
        """Number, store, publish and fold one event."""
        if isinstance(event, Metrics):
            self.metrics.add(MetricSample(
                pilot=record.id, node=event.node, t=event.t, cpu_percent=event.cpu_percent,
                memory_used=event.memory_used,
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
        store = self.store
        store.write(_INSERT_EVENT, (seq, record.id, event.t, etype, data))
        self.recorded += 1
        self.events.publish(record.id, (seq, etype, data))
        if isinstance(event, TaskStarted):
            store.write(_TASK_STARTED, (
                record.id, event.task, event.attempt, event.group, record.run, event.node, event.t,
            ))
        elif isinstance(event, TaskFinished):
            store.write(_TASK_FINISHED, (
                event.t, event.status, event.exit_code, event.duration, int(event.final),
                record.id, event.task, event.attempt,
            ))
        elif isinstance(event, PilotStateChanged):
            record.state, record.reason, record.updated = event.state, event.reason, event.t
            if event.state in TERMINAL:
                record.ended = event.t
            store.write(
                "UPDATE pilots SET state = ?, reason = ?, updated = ?, ended = ? WHERE id = ?",
                (record.state, record.reason, record.updated, record.ended, record.id),
                urgent=True,
            )
            because = f" ({event.reason})" if event.reason else ""
            self.pilot_log(record, "info", f"state {event.previous} -> {event.state}{because}", t=event.t)
        elif isinstance(event, AllocationClaimed):
            self._allocation(record, event.allocation)
        elif isinstance(event, NodeReady):
            record.nodes.append(event.node)
            record.cores += event.node.cores
            record.gpus += len(event.node.gpus)
            store.write(
                "UPDATE pilots SET nodes = ?, cores = ?, gpus = ? WHERE id = ?",
                (msgspec.json.encode(record.nodes).decode(), record.cores, record.gpus, record.id),
            )
        elif isinstance(event, Log):
            self.pilot_log(record, event.level, event.message, t=event.t)

    def _allocation(self, record: PilotRecord, allocation: Allocation) -> None:
        record.job_id = allocation.job_id
        record.walltime_end = allocation.walltime_end
        record.allocation = msgspec.json.encode(allocation).decode()
        self.store.write(
            "UPDATE pilots SET job_id = ?, walltime_end = ?, allocation = ? WHERE id = ?",
            (record.job_id, record.walltime_end, record.allocation, record.id),
            urgent=True,
        )

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

    # ------------------------------------------------------------------ control

    def get(self, pilot_id: str) -> PilotRecord:
        record = self.records.get(pilot_id)
        if record is None:
            matches = [r for r in self.records.values() if r.id.startswith(pilot_id)] if pilot_id else []
            if len(matches) == 1:
                return matches[0]
            hint = f" ({len(matches)} pilots start with that)" if matches else ""
            raise ApiError(ErrorCode.NOT_FOUND, f"no pilot '{pilot_id}'{hint}")
        return record

    def _live_for_control(self, record: PilotRecord, what: str) -> LivePilot:
        if record.terminal:
            raise ApiError(
                ErrorCode.INVALID_STATE, f"cannot {what} pilot {record.id}: it has finished ({record.state})"
            )
        live = self.live.get(record.id)
        if live is None:
            job = f" (job {record.job_id})" if record.job_id else ""
            raise ApiError(
                ErrorCode.INVALID_STATE,
                f"cannot {what} pilot {record.id}: the daemon is not attached to it{job}",
            )
        return live

    async def drain(self, pilot_id: str) -> ControlResult:
        record = self.get(pilot_id)
        live = self._live_for_control(record, "drain")
        record.desired = record.desired or "drain"
        await self.store.commit("UPDATE pilots SET desired = ? WHERE id = ?", (record.desired, record.id))
        live.pilot.drain("drain requested")
        return ControlResult(pilot=record.id, state=record.state)

    async def cancel(self, pilot_id: str) -> ControlResult:
        record = self.get(pilot_id)
        live = self._live_for_control(record, "cancel")
        record.desired = "cancel"
        await self.store.commit("UPDATE pilots SET desired = ? WHERE id = ?", (record.desired, record.id))
        live.pilot.cancel("cancelled by the user")
        return ControlResult(pilot=record.id, state=record.state)

    async def retry(self, pilot_id: str, failed: bool) -> RetryResult:
        if self.stopping:
            raise ApiError(ErrorCode.SHUTTING_DOWN, "the daemon is shutting down")
        record = self.get(pilot_id)
        if not record.terminal or record.id in self.live:
            raise ApiError(ErrorCode.INVALID_STATE, f"pilot {record.id} is still {record.state}: retry it once it ends")
        results = await asyncio.to_thread(repair_results, record.results_path, record.log_path)
        latest = latest_results(results)
        again = [t for t, r in latest.items() if r.status in FAILED_OUTCOMES] if failed else []
        for task in again:
            del latest[task]
        unfinished = sum(1 for r in latest.values() if r.status == "cancelled")
        requeued = len(again) + unfinished
        if requeued == 0 and record.state == "done":
            raise ApiError(ErrorCode.INVALID_STATE, f"nothing to retry: every task of {record.id} succeeded")
        attempts = await self._attempts(record.id)
        self.pilot_log(record, "info", f"retry: {len(again)} failed and {unfinished} unfinished task(s) re-queued")
        await self._start(record, Resume(results=latest, attempts=attempts), new_run=True)
        return RetryResult(pilot=record.id, requeued=requeued, run=record.run)

    def heartbeat(self, sample: MetricSample) -> None:
        record = self.records.get(sample.pilot)
        if record is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no pilot '{sample.pilot}'")
        if record.terminal:
            raise ApiError(ErrorCode.INVALID_STATE, f"pilot {record.id} has finished ({record.state})")
        self.heartbeats[(sample.pilot, sample.node)] = time.time()
        self.metrics.add(sample)

    # ------------------------------------------------------------------ views

    def groups(self, record: PilotRecord, live: LivePilot | None = None) -> dict[str, Counts]:
        live = live or self.live.get(record.id)
        pool = live.pilot.pool if live is not None else None
        if pool is None:
            return record.progress
        return {
            name: Counts(total=c.total, queued=c.queued, running=c.running, done=c.done, failed=c.failed,
                         cancelled=c.cancelled)
            for name, c in pool.groups.items()
        }

    def summary(self, record: PilotRecord, now: float | None = None) -> PilotSummary:
        now = now or time.time()
        groups = self.groups(record)
        total = Counts()
        for c in groups.values():
            total.total += c.total
            total.queued += c.queued
            total.running += c.running
            total.done += c.done
            total.failed += c.failed
            total.cancelled += c.cancelled
        left = None
        if record.walltime_end is not None and not record.terminal:
            left = max(0.0, record.walltime_end - now)
        return PilotSummary(
            id=record.id, name=record.name, provider=record.provider, state=record.state,
            reason=record.reason, workdir=record.workdir, created=record.created, updated=record.updated,
            ended=record.ended, nodes=len(record.nodes), cores=record.cores, gpus=record.gpus,
            job_id=record.job_id, walltime_end=record.walltime_end, walltime_left=left, progress=total,
            groups=groups, run=record.run, crashes=record.crashes, attached=record.attached,
        )

    def status(self, pilot_id: str | None) -> list[PilotSummary]:
        now = time.time()
        if pilot_id is not None:
            return [self.summary(self.get(pilot_id), now)]
        return [self.summary(r, now) for r in self.records.values()]

    async def detail(self, pilot_id: str) -> PilotDetail:
        record = self.get(pilot_id)
        rows = await self.store.query(
            "SELECT task, grp, attempt, node, started, ended, status, exit_code FROM attempts "
            "WHERE pilot = ? ORDER BY started DESC LIMIT 20",
            (record.id,),
        )
        recent = [
            TaskInfo(task=task, group=group, status=_attempt_status(status, ended), attempts=attempt,
                     node=node, start=started, end=ended, exit_code=code,
                     outcome=None if status == "running" else status)
            for task, group, attempt, node, started, ended, status, code in rows
        ]
        nodes = []
        for info in record.nodes:
            latest = self.metrics.latest(record.id, info.name)
            seen = self.heartbeats.get((record.id, info.name)) or (latest.t if latest else None)
            nodes.append(NodeStatus(info=info, last_seen=seen, latest=latest))
        return PilotDetail(summary=self.summary(record), spec_path=record.spec_path, nodes=nodes, recent_tasks=recent)

    async def tasks(self, params: TasksParams) -> TasksResult:
        record = self.get(params.pilot)
        live = self.live.get(record.id)
        pool = live.pilot.pool if live is not None else None
        infos: list[TaskInfo]
        if pool is not None:
            infos = [
                TaskInfo(task=t.id, group=t.group, status=t.status.value, attempts=t.attempts, node=t.node,
                         exit_code=t.exit_code, outcome=t.outcome, start=t.start, end=t.end)
                for t in pool.tasks.values()
            ]
        else:
            infos = await self._stored_tasks(record)
        if params.status:
            wanted = set(params.status)
            infos = [t for t in infos if t.status in wanted or (t.outcome is not None and t.outcome in wanted)]
        if params.group:
            infos = [t for t in infos if t.group == params.group]
        infos.sort(key=lambda t: t.task)
        offset = max(0, params.offset)
        limit = max(0, min(params.limit, 10_000))
        return TasksResult(total=len(infos), offset=offset, tasks=infos[offset:offset + limit])

    async def _stored_tasks(self, record: PilotRecord) -> list[TaskInfo]:
        results = await asyncio.to_thread(read_results_quietly, record.results_path)
        latest = latest_results(results)
        out: dict[str, TaskInfo] = {}
        for r in latest.values():
            status = final_status(r.outcome or r.status).value
            out[r.task] = TaskInfo(
                task=r.task, group=r.group, status=status, attempts=r.attempts, node=r.node,
                exit_code=r.exit_code, outcome=r.outcome, start=r.start, end=r.end,
            )
        rows = await self.store.query(
            "SELECT task, grp, max(attempt), node, started, ended, status, exit_code FROM attempts "
            "WHERE pilot = ? GROUP BY task",
            (record.id,),
        )
        for task, group, attempt, node, started, ended, status, code in rows:
            known = out.get(task)
            if known is not None and known.attempts >= attempt:
                continue
            out[task] = TaskInfo(
                task=task, group=group, status=_attempt_status(status, ended), attempts=attempt, node=node,
                exit_code=code, outcome=None if status == "running" else status, start=started, end=ended,
            )
        return list(out.values())

    def live_local(self) -> list[str]:
        return [pid for pid, live in self.live.items() if live.local]

    async def snapshot_progress(self) -> None:
        """Write the progress of running pilots to the database (a crash loses little)."""
        for live in list(self.live.values()):
            record = live.record
            groups = self.groups(record, live)
            if groups != record.progress:
                record.progress = groups
                self.store.write(
                    "UPDATE pilots SET progress = ? WHERE id = ?",
                    (msgspec.json.encode(groups).decode(), record.id),
                )

    # ------------------------------------------------------------------ stopping

    async def shutdown(self, timeout: float, force: asyncio.Event) -> None:
        """Local pilots drain (for ``timeout`` seconds, then their tasks are stopped);
        batch pilots are detached and keep their allocations. ``force`` set: kill."""
        self.stopping = True
        lives = list(self.live.values())
        if not lives:
            return
        for live in lives:
            record = live.record
            live.suspended = True
            if live.detach is not None:
                record.progress = self.groups(record, live)
                live.detach.detached = True
                record.attached = False
                job = f"job {record.job_id}" if record.job_id else "its allocation"
                record.reason = f"detached: the daemon stopped; {job} keeps running"
                await self.store.commit(_INSERT_PILOT, record.row())
                if live.task is not None:
                    live.task.cancel()
            else:
                log.info("draining pilot %s (up to %gs)", record.id, timeout)
                live.pilot.drain("the daemon is stopping")
        waits = [live.done.wait() for live in lives]
        if await _wait_or(waits, timeout, force):
            return
        if not force.is_set():
            log.warning("shutdown timeout: stopping the tasks still running")
            grace = 0.0
            for live in lives:
                if not live.done.is_set():
                    live.pilot.cancel("the daemon is stopping (shutdown timeout)")
                    grace = max(grace, live.pilot.grace)
            if await _wait_or([live.done.wait() for live in lives], grace + 5.0, force):
                return
        log.warning("forced shutdown: killing running tasks")
        for live in lives:
            if not live.done.is_set():
                live.pilot.kill()
        if await _wait_or([live.done.wait() for live in lives], 5.0, None):
            return
        for live in lives:
            if live.task is not None and not live.task.done():
                live.task.cancel()
        await _wait_or([live.done.wait() for live in lives], 5.0, None)


async def _wait_or(waits: list[Any], timeout: float, force: asyncio.Event | None) -> bool:
    """Wait for every awaitable; False on timeout or when ``force`` gets set first."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    everything = asyncio.ensure_future(asyncio.gather(*tasks))
    racers: set[asyncio.Future[Any]] = {everything}
    forced: asyncio.Future[Any] | None = None
    if force is not None:
        forced = asyncio.ensure_future(force.wait())
        racers.add(forced)
    try:
        done, _ = await asyncio.wait(racers, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return everything in done
    finally:
        for fut in (everything, forced, *tasks):
            if fut is not None and not fut.done():
                fut.cancel()
        with contextlib.suppress(BaseException):
            await everything


def _attempt_status(status: str, ended: float | None) -> str:
    if ended is None:
        return TaskStatus.RUNNING.value
    if status == "ok":
        return TaskStatus.DONE.value
    if status == "lost":
        return "lost"
    return TaskStatus.FAILED.value


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None
