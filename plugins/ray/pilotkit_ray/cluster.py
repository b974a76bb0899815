"""A Ray cluster made of pilot tasks: the Ray head pinned to the first node and a Ray
worker node pinned to every other node, each offering that node's cores, memory and GPUs.

Each node's task (:mod:`pilotkit_ray.node`) writes ``<workdir>/ray-nodes/<node>.json``
once Ray runs there; the pilot waits for all of them, publishes ``ray.json``, watches
the tasks, and at the end stops the worker nodes, then the head.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotkit.api import (
    AppContext,
    Log,
    PilotkitError,
    Task,
    TaskStatus,
    parse_duration,
    python_for,
    task_dir,
    task_exit_report,
)

from .commands import (
    CONNECTION_FILE,
    HEAD_TASK,
    NODES_DIR,
    PILOT_ENV,
    SERVICE_GROUP,
    NodePlan,
    node_argv,
    plan_nodes,
    temp_dir_for,
)
from .connection import ConnectionInfo, RayNodeInfo, write_info
from .options import RayOptions
from .progress import SUMMARY_PATH, ProgressTracker, get_json, parse_summary

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

log = logging.getLogger("pilotkit.ray")
ACTIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)
POLL = 0.05
"""Seconds between looks at a file or a task's state while waiting for it."""
DEFAULT_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
"""No usage reports from the nodes; and a node stops at once when its task is stopped
(Ray's own drain would outlast the pilot's grace and end in SIGKILL, leaving its files)."""


class RayCluster:
    """Deploys, watches and stops the Ray nodes of one pilot."""

    def __init__(self, ctx: AppContext, spec: ResolvedSpec, options: RayOptions) -> None:
        self.ctx = ctx
        self.options = options
        self.pilot = ctx.pilot.pilot_id
        self.workdir = ctx.pilot.workdir
        self.nodes_dir = self.workdir / NODES_DIR
        containerised = spec.runtime_cls is not None and spec.spec.image is not None
        self.python = python_for(options, containerised)
        self.env = {**DEFAULT_ENV, **spec.spec.env, **options.env, PILOT_ENV: self.pilot}
        self.plans = plan_nodes(ctx.nodes, options)
        self.head = self.plans[0]
        self.temp_dir = temp_dir_for(options, self.workdir)
        self.ready_timeout = parse_duration(options.ready_timeout)
        self.address: str | None = None
        self.client: str | None = None
        self.dashboard: str | None = None
        self._dashboard_at: tuple[str, int] | None = None
        self.interval = parse_duration(options.progress_interval)
        self.progress = ProgressTracker(self.pilot)
        self._progress_failed = False
        self.gone: set[str] = set()
        """Worker nodes whose Ray stopped while the cluster was up (reported once)."""

    def say(self, level: str, message: str) -> None:
        """A ``Log`` event from this app (and a line in pilotkit's log)."""
        log.log(logging.WARNING if level == "warn" else logging.getLevelName(level.upper()), message)
        self.ctx.emit(Log(pilot=self.pilot, level=level, message=message, source="ray"))

    @property
    def pool_tasks(self) -> dict[str, Task]:
        return self.ctx.pool.tasks

    async def exit_report(self, task_id: str) -> str:
        """How a task's latest attempt ended, with the tail of its stderr."""
        return await task_exit_report(self.workdir, self.pool_tasks[task_id])

    # ------------------------------------------------------------------ start

    def _task(self, index: int, plan: NodePlan) -> Task:
        argv = node_argv(self.python, plan, index, self.workdir, self.options, self.temp_dir)
        return Task(
            id=plan.task_id,
            group=SERVICE_GROUP,
            argv=argv,
            cores=plan.cpus,
            gpus=plan.gpus,
            pin=plan.node,
            env=self.env,
        )

    async def start(self) -> None:
        """Start Ray on every node; return once every node has joined the head.

        Raises :class:`PilotkitError` naming what did not come up, and its log."""
        started = time.monotonic()
        deadline = started + self.ready_timeout
        await asyncio.to_thread(_clear, self.nodes_dir, self.workdir / CONNECTION_FILE)
        # Worker nodes wait for the head's file themselves: start everything at once.
        self.ctx.pool.add_group(SERVICE_GROUP, [self._task(i, p) for i, p in enumerate(self.plans)])
        waiting = {p.node: p for p in self.plans}
        while waiting:
            for name in list(waiting):
                info = await asyncio.to_thread(_read_json, self.nodes_dir / f"{name}.json")
                if info is None:
                    continue
                if waiting.pop(name).head:
                    self.address = str(info["address"])
                    host = str(info["ip"])
                    self.client = f"ray://{_bracket(host)}:{info['client_port']}"
                    if isinstance(info.get("dashboard_port"), int):
                        self.dashboard = f"http://{_bracket(host)}:{info['dashboard_port']}"
                        self._dashboard_at = (host, info["dashboard_port"])
            await self._raise_if_dead()
            if waiting and time.monotonic() > deadline:
                logs = ", ".join(str(task_dir(self.workdir, p.task_id)) for p in waiting.values())
                raise PilotkitError(
                    f"only {len(self.plans) - len(waiting)} of {len(self.plans)} Ray nodes started within "
                    f"{self.ready_timeout:g}s; missing {', '.join(waiting)} (see {logs})"
                )
            if waiting:
                await asyncio.sleep(POLL)
        path = await self.publish()
        self.say(
            "info",
            f"Ray cluster ready in {time.monotonic() - started:.1f}s: head {self.address}, "
            f"{len(self.plans)} node(s) ({', '.join(p.node for p in self.plans)})"
            + (f", dashboard {self.dashboard}" if self.dashboard else "")
            + f"; connection details in {path}",
        )

    async def _raise_if_dead(self) -> None:
        """During start-up: Ray on some node has stopped for good."""
        for plan in self.plans:
            if self.pool_tasks[plan.task_id].status not in ACTIVE:
                what = "head" if plan.head else f"worker node on {plan.node}"
                raise PilotkitError(
                    f"the Ray {what} stopped before it started ({await self.exit_report(plan.task_id)})"
                )

    # ------------------------------------------------------------------ publish

    async def publish(self, state: str = "running") -> Path:
        """Write ``ray.json`` with the head's addresses and the nodes."""
        assert self.address is not None and self.client is not None
        nodes = [
            RayNodeInfo(
                name=p.node,
                head=p.head,
                cpus=p.cpus,
                gpus=p.gpus,
                memory=p.memory,
                object_store_memory=p.object_store_memory,
                resources=p.resources,
            )
            for p in self.plans
            if p.node not in self.gone
        ]
        info = ConnectionInfo(
            pilot=self.pilot,
            address=self.address,
            client=self.client,
            mode=self.options.mode,
            state=state,
            dashboard=self.dashboard,
            nodes=nodes if state == "running" else [],
            temp_dir=self.temp_dir,
        )
        return await asyncio.to_thread(write_info, self.workdir, info)

    # ------------------------------------------------------------------ supervise

    async def supervise(self) -> None:
        """Until cancelled: report worker nodes that stopped, keep ``ray.json`` current,
        stream task progress (with the dashboard). Raises :class:`PilotkitError` when the
        head stops."""
        while True:
            await asyncio.sleep(self.interval)
            await self.check()
            await self.poll_progress()

    async def until_idle(self) -> None:
        """After a drain in interactive mode: until no Ray task is pending or running
        (two looks in a row, Ray's task events lag), or the head stops (the walltime's
        kill). Returns at once without the dashboard: only its state API can tell."""
        if self._dashboard_at is None:
            return
        idle = 0
        said = False
        while idle < 2:
            head = self.pool_tasks.get(HEAD_TASK)
            if head is None or head.status is not TaskStatus.RUNNING:
                return
            try:
                snapshot = parse_summary(await get_json(*self._dashboard_at, SUMMARY_PATH))
            except (OSError, TimeoutError, ValueError):
                return
            for event in self.progress.changes(snapshot):
                self.ctx.emit(event)
            busy = sum(counts[2] + counts[3] for counts in snapshot.values())
            idle = 0 if busy else idle + 1
            if busy and not said:
                said = True
                self.say("info", f"draining: Ray stays up until its {busy} pending or running task(s) end")
            await asyncio.sleep(self.interval)

    async def poll_progress(self) -> None:
        """Read the state API's task summary once and emit what changed."""
        head = self.pool_tasks.get(HEAD_TASK)
        if self._dashboard_at is None or head is None or head.status is not TaskStatus.RUNNING:
            return
        try:
            data = await get_json(*self._dashboard_at, SUMMARY_PATH)
        except (OSError, TimeoutError, ValueError) as exc:
            if not self._progress_failed:
                self._progress_failed = True
                self.say("warn", f"no task progress from Ray's dashboard: {type(exc).__name__}: {exc}")
            return
        for event in self.progress.changes(parse_summary(data)):
            self.ctx.emit(event)

    async def check(self) -> None:
        if self.ctx.draining.is_set():
            return  # what stops now is being stopped
        if self.pool_tasks[HEAD_TASK].status not in ACTIVE:
            raise PilotkitError(f"the Ray head stopped ({await self.exit_report(HEAD_TASK)})")
        changed = False
        for plan in self.plans[1:]:
            task = self.pool_tasks[plan.task_id]
            if plan.node in self.gone:
                continue
            if task.status not in ACTIVE or task.outcome == "lost":
                self.gone.add(plan.node)
                changed = True
                self.say("warn", f"Ray on {plan.node} stopped ({await self.exit_report(plan.task_id)})")
        if changed:
            await self.publish()

    # ------------------------------------------------------------------ stop

    async def shutdown(self) -> None:
        """Stop Ray on the worker nodes, then on the head. Never raises."""
        await self.poll_progress()  # the last counts
        pool = self.ctx.pool
        workers = [p.task_id for p in self.plans[1:] if p.task_id in self.pool_tasks]
        for task_id in workers:
            pool.terminate(task_id)
        await self._wait_stopped(workers)
        if HEAD_TASK in self.pool_tasks:
            pool.terminate(HEAD_TASK)
            await self._wait_stopped([HEAD_TASK])
        if self.address is not None:
            try:
                await self.publish(state="stopped")
            except OSError as exc:
                self.say("warn", f"cannot update {CONNECTION_FILE}: {exc}")
        self.say("info", f"stopped Ray on {len(self.plans)} node(s)")

    async def _wait_stopped(self, task_ids: list[str]) -> None:
        """Until none of ``task_ids`` runs (the pool SIGKILLs after its grace period)."""
        deadline = time.monotonic() + self.ctx.pool.grace + 5.0
        while time.monotonic() < deadline:
            if all(self.pool_tasks[t].status is not TaskStatus.RUNNING for t in task_ids):
                return
            await asyncio.sleep(POLL)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None  # absent, or being written
    return data if isinstance(data, dict) else None


def _clear(nodes_dir: Path, connection: Path) -> None:
    shutil.rmtree(nodes_dir, ignore_errors=True)
    nodes_dir.mkdir(parents=True, exist_ok=True)
    connection.unlink(missing_ok=True)
