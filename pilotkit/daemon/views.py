"""Views: what ``status``, ``pilot`` and ``tasks`` return, built from the records, the
live runs and the metrics buffer. Nothing here changes a pilot."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import msgspec

from ..protocol import (
    Counts,
    DescribeResult,
    FailureGroup,
    FailuresParams,
    FailuresResult,
    MetricSample,
    NodeGpu,
    NodeReport,
    NodesResult,
    NodeStatus,
    NodeTask,
    PilotDetail,
    PilotSummary,
    QueuedTask,
    QueueParams,
    QueueResult,
    TaskInfo,
    TasksParams,
    TasksResult,
    TimelineParams,
    TimelineResult,
)
from ..states import TaskStatus
from ..task import Task
from ..timeline import Attempt, lay_out
from ..types import Allocation, Service
from ..vocab import TASKS_DIR, attempt_log, final_status, pid_file
from ..wire import Heartbeat
from .metrics import MetricsBuffer
from .records import PilotRecord, Records
from .runs import Runs, progress
from .workdir import latest_results, read_results_quietly

log = logging.getLogger("pilotkit.daemon.views")


class Views:
    TASKS_LIMIT = 10_000
    """The most tasks one ``tasks`` page holds."""

    def __init__(self, records: Records, runs: Runs, metrics: MetricsBuffer) -> None:
        self.records = records
        self.runs = runs
        self.metrics = metrics
        self.heartbeats: dict[tuple[str, str], float] = {}
        """(pilot, node): when the node agent's last heartbeat came."""

    # ------------------------------------------------------------------ node agents

    def heartbeat(self, sample: MetricSample) -> None:
        self.heartbeats[(sample.pilot, sample.node)] = time.time()
        self.metrics.add(sample)

    def forget(self, pilot_id: str) -> None:
        """The pilot's run is over: its nodes are seen no more."""
        for key in [k for k in self.heartbeats if k[0] == pilot_id]:
            del self.heartbeats[key]

    # ------------------------------------------------------------------ pilots

    def summary(self, record: PilotRecord, now: float | None = None) -> PilotSummary:
        now = now or time.time()
        groups = progress(record, self.runs.get(record.id))
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
            return [self.summary(self.records.lookup(pilot_id), now)]
        return [self.summary(r, now) for r in self.records]

    async def detail(self, pilot_id: str) -> PilotDetail:
        record = self.records.lookup(pilot_id)
        recent = [
            TaskInfo(task=task, group=group, status=_attempt_status(status, ended), attempts=attempt,
                     node=node, start=started, end=ended, exit_code=code,
                     outcome=None if status == "running" else status)
            for task, group, attempt, node, started, ended, status, code in await self.records.recent_attempts(
                record.id
            )
        ]
        nodes = []
        for info in record.nodes:
            latest = self.metrics.latest(record.id, info.name)
            seen = self.heartbeats.get((record.id, info.name)) or (latest.t if latest else None)
            nodes.append(NodeStatus(info=info, last_seen=seen, latest=latest))
        return PilotDetail(summary=self.summary(record), spec_path=record.spec_path, nodes=nodes, recent_tasks=recent,
                           services=await self.services(record))

    async def services(self, record: PilotRecord) -> list[Service]:
        """What a running pilot's app serves now (its URLs and addresses), as the app
        reads them from its working directory; none once the pilot no longer runs here."""
        live = self.runs.get(record.id)
        if live is None or record.terminal:
            return []
        app_cls = live.pilot.spec.app_cls
        try:
            return list(await asyncio.to_thread(app_cls.services, Path(record.workdir)))
        except Exception as exc:  # a plugin's bug must not break the pilot's page
            log.warning("%s: the %s app's services: %s", record.id, app_cls.id, exc)
            return []

    # ------------------------------------------------------------------ tasks

    async def tasks(self, params: TasksParams) -> TasksResult:
        record = self.records.lookup(params.pilot)
        live = self.runs.get(record.id)
        pool = live.pilot.pool if live is not None else None
        infos: list[TaskInfo]
        if pool is not None:
            infos = [
                TaskInfo(task=t.id, group=t.group, status=t.status.value, attempts=t.attempts, node=t.node,
                         exit_code=t.exit_code, outcome=t.outcome, start=t.start, end=t.end,
                         params=t.params or None, metrics=t.metrics)
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
        limit = max(0, min(params.limit, self.TASKS_LIMIT))
        return TasksResult(total=len(infos), offset=offset, tasks=infos[offset:offset + limit])

    # ------------------------------------------------------------------ failures

    async def failures(self, params: FailuresParams) -> FailuresResult:
        """Failed tasks grouped by outcome, exit code and the last line of their stderr."""
        record = self.records.lookup(params.pilot)
        page = await self.tasks(TasksParams(pilot=record.id, status=["failed"], limit=self.TASKS_LIMIT))
        failed = [t for t in page.tasks if t.status == TaskStatus.FAILED.value]
        chosen = failed[: max(0, min(params.limit, self.TASKS_LIMIT))]
        workdir = Path(record.workdir)
        paths = [attempt_log(workdir, t.task, t.attempts, "err") if t.attempts else None for t in chosen]
        lasts = await asyncio.to_thread(lambda: [_last_line(p) if p is not None else "" for p in paths])
        groups: dict[tuple[str, int | None, str], list[str]] = {}
        for t, last in zip(chosen, lasts, strict=True):
            groups.setdefault((t.outcome or "failed", t.exit_code, last), []).append(t.task)
        out = [FailureGroup(outcome=o, exit_code=code, last_line=last, count=len(tasks), tasks=sorted(tasks))
               for (o, code, last), tasks in groups.items()]
        out.sort(key=lambda g: (-g.count, g.outcome, g.exit_code or 0, g.last_line))
        return FailuresResult(pilot=record.id, failed=len(failed), groups=out)

    # ------------------------------------------------------------------ describe

    async def describe(self, pilot_id: str) -> DescribeResult:
        """A pilot's spec, what it was given, and where its files are."""
        record = self.records.lookup(pilot_id)
        allocation = None
        if record.allocation:
            try:
                allocation = msgspec.json.decode(record.allocation, type=Allocation)
            except (msgspec.DecodeError, msgspec.ValidationError):
                allocation = None
        workdir = Path(record.workdir)
        files = {"workdir": str(workdir), "pilot_log": str(record.log_path), "results": str(record.results_path),
                 "tasks": str(workdir / TASKS_DIR)}
        return DescribeResult(summary=self.summary(record), spec=record.spec, spec_path=record.spec_path,
                              allocation=allocation, nodes=list(record.nodes), files=files,
                              services=await self.services(record))

    # ------------------------------------------------------------------ timeline and nodes

    async def timeline(self, params: TimelineParams, now: float | None = None) -> TimelineResult:
        """Which task ran on which node and when (the attempts table), laid out in rows."""
        now = now or time.time()
        record = self.records.lookup(params.pilot)
        total, rows = await self.records.all_attempts(record.id, min(max(0, params.limit), self.TIMELINE_LIMIT))
        attempts = [Attempt(task=task, group=group, attempt=attempt, node=node, start=started,
                            end=ended, outcome=None if ended is None else status)
                    for task, group, attempt, node, started, ended, status, _ in rows if started is not None]
        end = record.ended if record.terminal and record.ended is not None else now
        if record.terminal:  # an attempt with no end recorded ended with its pilot at the latest
            attempts = [a if a.end is not None else Attempt(a.task, a.group, a.attempt, a.node, a.start, end, "lost")
                        for a in attempts]
        cores = {n.name: n.cores for n in record.nodes}
        return lay_out(record.id, record.state, attempts, end=end, cores=cores, min_gap=max(0.0, params.min_gap),
                       total=total)

    TIMELINE_LIMIT = 100_000

    async def nodes(self, pilot_id: str, now: float | None = None) -> NodesResult:
        """Each node now: cores (free), memory, GPUs with the tasks on them, the tasks
        running there, its latest load sample."""
        now = now or time.time()
        record = self.records.lookup(pilot_id)
        live = self.runs.get(record.id)
        pool = live.pilot.pool if live is not None else None
        live_nodes = {n.name: n for n in pool.nodes} if pool is not None else {}
        running: dict[str, list[NodeTask]] = {}
        on_gpu: dict[str, list[str]] = {}
        if pool is not None:
            entries = list(pool._running.values())
            workdir = Path(record.workdir)
            pids = await asyncio.to_thread(
                lambda: [_recorded_pid(pid_file(workdir, t.id, t.attempts)) for t, _, _ in entries])
            for (task, where, given), pid in zip(entries, pids, strict=True):
                running.setdefault(where.name, []).append(
                    NodeTask(task=task.id, group=task.group, cores=task.cores, gpus=list(given), start=task.start,
                             pid=pid))
                for uuid in given:
                    on_gpu.setdefault(uuid, []).append(task.id)
        out = []
        for info in record.nodes:
            latest = self.metrics.latest(record.id, info.name)
            samples = {g.uuid: g for g in latest.gpus} if latest is not None else {}
            gpus: list[NodeGpu] = []
            for g in info.gpus:
                sample = samples.get(g.uuid)
                gpus.append(NodeGpu(uuid=g.uuid, name=g.name, memory_total=g.memory_total,
                                    utilization=sample.utilization if sample is not None else None,
                                    memory_used=sample.memory_used if sample is not None else None,
                                    tasks=sorted(on_gpu.get(g.uuid, []))))
            node = live_nodes.get(info.name)
            cpu, used, cores = (latest.cpu_percent, latest.memory_used, latest.core_percent) if latest else (None, None, [])
            beat = getattr(node.agent, "metrics", None) if node is not None else None
            if latest is None and isinstance(beat, Heartbeat):  # a batch node: its agent's heartbeat
                cpu, used, cores = beat.cpu_percent, beat.memory_used, beat.core_percent
            out.append(NodeReport(
                name=info.name, cores=info.cores, free_cores=node.free_cores if node is not None else None,
                memory=info.memory, total_cores=info.total_cores, total_memory=info.total_memory,
                memory_used=used, cpu_percent=cpu, core_percent=cores,
                last_seen=self.heartbeats.get((record.id, info.name)) or (latest.t if latest else None),
                lost=node.agent.lost if node is not None else None, gpu_reason=info.gpu_reason, gpus=gpus,
                tasks=sorted(running.get(info.name, []), key=lambda t: t.task)))
        return NodesResult(pilot=record.id, state=record.state, t=now, nodes=out)

    # ------------------------------------------------------------------ the queue

    QUEUE_LIMIT = 10_000

    def queue(self, params: QueueParams, now: float | None = None) -> QueueResult:
        """What waits in a pilot and why, and how fast its backlog goes against its walltime.

        Read from the live run's task pool (nothing changes): each waiting task is tried
        against the nodes as the scheduler's own fit does. A pilot not running here has
        nothing waiting and no rate."""
        now = now or time.time()
        record = self.records.lookup(params.pilot)
        summary = self.summary(record, now)
        live = self.runs.get(record.id)
        pool = live.pilot.pool if live is not None else None
        result = QueueResult(pilot=record.id, state=record.state, t=now, queued=summary.progress.queued,
                             running=summary.progress.running, cores=record.cores, gpus=record.gpus,
                             window=params.window, walltime_end=record.walltime_end)
        if record.walltime_end is not None:
            margin = live.pilot.margin if live is not None else 0.0
            result.drain_at = pool.deadline if pool is not None and pool.deadline else record.walltime_end - margin
        if pool is None:
            return result
        nodes = [n for n in pool.nodes if n.agent.lost is None]
        result.free_cores = sum(n.free_cores for n in nodes)
        result.free_gpus = sum(1 for n in nodes for left in n.gpu_free.values() if left > 0)
        since = now - params.window
        finished = 0
        running = 0
        first = now
        for t in pool.tasks.values():
            if t.start is not None and t.start < first:
                first = t.start
            if t.status is TaskStatus.RUNNING:
                running += 1
            elif t.end is not None and t.end >= since and t.status is not TaskStatus.CANCELLED:
                finished += 1
        waiting = pool.waiting()
        queued = len(waiting)
        window = max(1.0, min(params.window, now - first))  # a young run: since its first task
        result.queued, result.running, result.finished_in_window, result.window = queued, running, finished, window
        if finished:
            result.rate = finished * 60.0 / window
            result.eta = (queued + running) * window / finished
            result.finish_at = now + result.eta
            if result.drain_at is not None:
                result.before_drain = result.finish_at <= result.drain_at
        draining = pool.draining
        idle = sum(1 for n in nodes if n.idle(pool._gpu_share))
        reasons: dict[str, int] = {}
        for task in waiting[: max(0, min(params.limit, self.QUEUE_LIMIT))]:
            reason, detail = _why_waiting(task, nodes, idle, draining, pool.deadline, now)
            reasons[reason] = reasons.get(reason, 0) + 1
            result.tasks.append(QueuedTask(task=task.id, group=task.group, cores=task.cores, gpus=task.gpus,
                                           reason=reason, detail=detail))
        result.reasons = reasons
        return result

    async def _stored_tasks(self, record: PilotRecord) -> list[TaskInfo]:
        results = await asyncio.to_thread(read_results_quietly, record.results_path)
        latest = latest_results(results)
        out: dict[str, TaskInfo] = {}
        for r in latest.values():
            status = final_status(r.outcome or r.status).value
            out[r.task] = TaskInfo(
                task=r.task, group=r.group, status=status, attempts=r.attempts, node=r.node,
                exit_code=r.exit_code, outcome=r.outcome, start=r.start, end=r.end,
                params=r.params or None, metrics=r.metrics,
            )
        for task, group, attempt, node, started, ended, status, code in await self.records.last_attempts(record.id):
            known = out.get(task)
            if known is not None and known.attempts >= attempt:
                continue
            out[task] = TaskInfo(
                task=task, group=group, status=_attempt_status(status, ended), attempts=attempt, node=node,
                exit_code=code, outcome=None if status == "running" else status, start=started, end=ended,
                params=known.params if known is not None else None,
            )
        return list(out.values())

    def attempt_running(self, pilot_id: str, task_id: str, attempt: int) -> bool:
        live = self.runs.get(pilot_id)
        pool = live.pilot.pool if live is not None else None
        if pool is None:
            return False
        task = pool.tasks.get(task_id)
        return task is not None and task.status is TaskStatus.RUNNING and task.attempts == attempt

    async def latest_attempt(self, pilot_id: str, task_id: str) -> int | None:
        """The number of the task's latest attempt; None if it has not run."""
        live = self.runs.get(pilot_id)
        pool = live.pilot.pool if live is not None else None
        if pool is not None:
            task = pool.tasks.get(task_id)
            if task is not None and task.attempts:
                return task.attempts
        return await self.records.last_attempt(pilot_id, task_id)

    def finished(self, record: PilotRecord) -> bool:
        """The pilot has ended and is no longer winding down."""
        return record.terminal and self.runs.get(record.id) is None


def _recorded_pid(path: Path) -> int | None:
    """The pid in a running attempt's record (``pid start-time mark``); None if none yet."""
    try:
        with open(path, "rb") as f:
            first = f.read(64).split(maxsplit=1)
    except OSError:
        return None
    try:
        return int(first[0]) if first else None
    except ValueError:
        return None


def _last_line(path: Path, tail: int = 4096) -> str:
    """The last non-empty line of a file ("" for none or no file), read from its end."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - tail))
            data = f.read()
    except OSError:
        return ""
    for line in reversed(data.decode("utf-8", errors="replace").splitlines()):
        if line.strip():
            return line.strip()[:400]
    return ""


def _why_waiting(task: Task, nodes: list[Any], idle: int, draining: bool, deadline: float | None,
                 now: float) -> tuple[str, str]:
    """Why ``task`` has not started: the scheduler's own fit (``TaskPool._fit``), read only."""
    if draining:
        return "draining", "the pilot drains: queued tasks do not start"
    if deadline is not None and task.time_limit is not None and now + task.time_limit > deadline:
        return "drain-point", (f"its time limit ({task.time_limit:.0f}s) would end after the drain point "
                               f"({max(0.0, deadline - now):.0f}s left)")
    if task.whole_nodes:
        if idle < task.whole_nodes:
            return "no-idle-node", f"needs {task.whole_nodes} idle node(s), {idle} idle"
        return "next", "fits: the next dispatch starts it"
    if task.pin is not None and not any(n.name == task.pin for n in nodes if n.fits(task)):
        return "pinned", f"pinned to {task.pin}, which has no room for it"
    if any(n.fits(task) for n in nodes):
        return "next", "fits: the next dispatch starts it"
    cores = max((n.free_cores for n in nodes), default=0)
    if task.gpus and any(n.free_cores >= task.cores for n in nodes):
        gpus = max((sum(1 for v in n.gpu_free.values() if v > 0) for n in nodes), default=0)
        return "no-free-gpu", f"needs {task.gpus} GPU(s) on one node, at most {gpus} free"
    return "no-free-core", f"needs {task.cores} core(s) on one node, at most {cores} free"


def _attempt_status(status: str, ended: float | None) -> str:
    if ended is None:
        return TaskStatus.RUNNING.value
    if status == "ok":
        return TaskStatus.DONE.value
    if status == "lost":
        return "lost"
    return TaskStatus.FAILED.value
