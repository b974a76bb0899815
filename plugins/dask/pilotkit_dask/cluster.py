"""A Dask cluster made of pilot tasks: a scheduler service pinned to the head node and a
worker service pinned to every node (one per GPU on GPU nodes).

The pilot process watches it through a ``distributed.Client`` on its own event loop
(``asynchronous=True``): readiness, per-prefix progress, lost workers; and at the end it
saves published datasets, retires the workers gracefully and stops the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotkit.api import (
    AppContext,
    Log,
    PilotkitError,
    Task,
    TaskStatus,
    parse_duration,
    parse_size,
    python_for,
    task_dir,
    task_exit_report,
)

from .commands import (
    SCHEDULER_FILE,
    SCHEDULER_TASK,
    SERVICE_GROUP,
    WorkerPlan,
    plan_workers,
    scheduler_argv,
    worker_argv,
)
from .connection import ConnectionInfo, WorkerInfo, dashboard_url, workers_from_identity, write_info
from .options import DaskOptions
from .progress import ProgressTracker

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

log = logging.getLogger("pilotkit.dask")
ACTIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)
POLL = 0.05
"""Seconds between looks at a file or a task's state while waiting for it."""


@dataclass
class WorkerSlot:
    """One planned worker and the pool task that currently serves it."""

    plan: WorkerPlan
    task_id: str
    attempts: int = 0
    """Attempts of ``task_id`` seen so far (the pool re-runs a worker that failed)."""
    restarts: int = 0
    generation: int = 0
    gone: str | None = None
    """Why the slot has no worker any more (gave up, node lost); None while it has one."""


class _QuietCancelledReconnect(logging.Filter):
    """Drops the traceback ``distributed.client`` logs when a client's attempt to
    reconnect to a scheduler that was stopped is cancelled by closing the client: the
    pilot's own client sees exactly that whenever a pilot is cancelled."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


_QUIET = _QuietCancelledReconnect()


def load_distributed() -> Any:
    """Import ``distributed`` and ship :mod:`.scheduler_side` by value (run in a thread:
    the import takes a second)."""
    import cloudpickle

    module = importlib.import_module("distributed")
    from . import scheduler_side

    if scheduler_side.__name__ not in cloudpickle.list_registry_pickle_by_value():
        cloudpickle.register_pickle_by_value(scheduler_side)
    client_log = logging.getLogger("distributed.client")
    if _QUIET not in client_log.filters:
        client_log.addFilter(_QUIET)
    return module


class DaskCluster:
    """Deploys, watches and stops the Dask services of one pilot."""

    def __init__(self, ctx: AppContext, spec: ResolvedSpec, options: DaskOptions) -> None:
        self.ctx = ctx
        self.options = options
        self.pilot = ctx.pilot.pilot_id
        self.workdir = ctx.pilot.workdir
        self.scheduler_file = self.workdir / SCHEDULER_FILE
        containerised = spec.runtime_cls is not None and spec.spec.image is not None
        self.python = python_for(options, containerised)
        self.env = {**spec.spec.env, **options.env}
        self.head = ctx.nodes[0].name
        self.slots = [WorkerSlot(plan, plan.task_id) for plan in plan_workers(ctx.nodes, options.threads)]
        self.ready_timeout = parse_duration(options.ready_timeout)
        self.interval = parse_duration(options.progress_interval)
        self.client: Any = None
        """A ``distributed.Client`` in asynchronous mode (its annotations describe the
        synchronous API, so it is handled as ``Any``)."""
        self.address: str | None = None
        self.dashboard: str | None = None
        self.stopping = False
        self.progress = ProgressTracker(self.pilot)
        self._published: tuple[str, ...] | None = None
        self._progress_failed = False

    # ------------------------------------------------------------------ reporting

    def say(self, level: str, message: str) -> None:
        """A ``Log`` event from this app (and a line in pilotkit's log)."""
        log.log(logging.WARNING if level == "warn" else logging.getLevelName(level.upper()), message)
        self.ctx.emit(Log(pilot=self.pilot, level=level, message=message, source="dask"))

    @property
    def pool_tasks(self) -> dict[str, Task]:
        return self.ctx.pool.tasks

    def task_dir(self, task_id: str) -> Path:
        return task_dir(self.workdir, task_id)

    async def exit_report(self, task_id: str, attempt: int | None = None) -> str:
        """How a task's attempt (default: the latest) ended, with the tail of its stderr."""
        return await task_exit_report(self.workdir, self.pool_tasks[task_id], attempt)

    # ------------------------------------------------------------------ start

    def _scheduler_task(self) -> Task:
        argv = scheduler_argv(self.python, self.scheduler_file, self.options, self.head)
        return Task(id=SCHEDULER_TASK, group=SERVICE_GROUP, argv=argv, cores=0, pin=self.head, env=self.env)

    def _worker_task(self, slot: WorkerSlot) -> Task:
        plan = slot.plan
        return Task(
            id=slot.task_id,
            group=SERVICE_GROUP,
            argv=worker_argv(self.python, self.scheduler_file, plan, self.options),
            cores=plan.cores,
            gpus=plan.gpus,
            pin=plan.node,
            env=self.env,
            retries=max(0, self.options.worker_restarts - slot.restarts),
        )

    async def start(self) -> None:
        """Start the scheduler and the workers; return once every worker is connected.

        Raises :class:`PilotkitError` naming what did not come up, and its log."""
        started = time.monotonic()
        deadline = started + self.ready_timeout
        await asyncio.to_thread(_remove, self.scheduler_file, self.workdir / "dask.json")
        # Workers wait for the scheduler file themselves: start everything at once.
        self.ctx.pool.add_group(
            SERVICE_GROUP, [self._scheduler_task(), *(self._worker_task(s) for s in self.slots)]
        )
        for slot in self.slots:
            slot.attempts = self.pool_tasks[slot.task_id].attempts
        distributed = await asyncio.to_thread(load_distributed)
        self.address, services = await self._wait_for_scheduler_file(deadline)
        self.dashboard = dashboard_url(self.address, services)
        try:
            self.client = await distributed.Client(
                self.address,
                asynchronous=True,
                set_as_default=False,
                timeout=max(1.0, deadline - time.monotonic()),
                name=f"pilotkit-{self.pilot}",
            )
        except (OSError, TimeoutError) as exc:
            raise PilotkitError(
                f"cannot reach the Dask scheduler at {self.address} from the pilot: {exc}"
            ) from None
        await self._wait_for_workers(deadline)
        from .scheduler_side import PLUGIN_NAME, PrefixProgress

        await self.client.register_plugin(PrefixProgress(), name=PLUGIN_NAME)
        path = await self.publish()
        names = ", ".join(s.plan.name for s in self.slots)
        self.say(
            "info",
            f"Dask cluster ready in {time.monotonic() - started:.1f}s: scheduler {self.address}, "
            f"{len(self.slots)} worker(s) ({names})"
            + (f", dashboard {self.dashboard}" if self.dashboard else "")
            + f"; connection details in {path}",
        )

    async def _wait_for_scheduler_file(self, deadline: float) -> tuple[str, dict[str, Any]]:
        while True:
            info = await asyncio.to_thread(_read_json, self.scheduler_file)
            if info is not None and isinstance(info.get("address"), str):
                return info["address"], dict(info.get("services") or {})
            await self._raise_if_dead()
            if time.monotonic() > deadline:
                raise PilotkitError(
                    f"the Dask scheduler did not start within {self.ready_timeout:g}s "
                    f"(no {self.scheduler_file}); see {self.task_dir(SCHEDULER_TASK)}"
                )
            await asyncio.sleep(POLL)

    async def _wait_for_workers(self, deadline: float) -> None:
        assert self.client is not None
        waiter = asyncio.ensure_future(self.client.wait_for_workers(len(self.slots)))
        try:
            while not waiter.done():
                await asyncio.wait({waiter}, timeout=0.1)
                if waiter.done():
                    break
                await self._raise_if_dead()
                if time.monotonic() > deadline:
                    have = {w.name for w in await self.workers()}
                    missing = [s for s in self.slots if s.plan.name not in have]
                    logs = ", ".join(str(self.task_dir(s.task_id)) for s in missing)
                    raise PilotkitError(
                        f"only {len(self.slots) - len(missing)} of {len(self.slots)} Dask workers connected "
                        f"within {self.ready_timeout:g}s; missing {', '.join(s.plan.name for s in missing)} "
                        f"(see {logs})"
                    )
            waiter.result()
        finally:
            waiter.cancel()  # a no-op once it is done

    async def _raise_if_dead(self) -> None:
        """During start-up: the scheduler or a worker has stopped for good."""
        if self.pool_tasks[SCHEDULER_TASK].status not in ACTIVE:
            raise PilotkitError(
                f"the Dask scheduler stopped before it was ready ({await self.exit_report(SCHEDULER_TASK)})"
            )
        for slot in self.slots:
            if self.pool_tasks[slot.task_id].status not in ACTIVE:
                raise PilotkitError(
                    f"the Dask worker {slot.plan.name} stopped before it connected "
                    f"({await self.exit_report(slot.task_id)})"
                )

    # ------------------------------------------------------------------ publish

    async def workers(self) -> list[WorkerInfo]:
        """The workers the scheduler has now."""
        assert self.client is not None
        identity = await self.client.scheduler.identity(n_workers=-1)
        return workers_from_identity(identity)

    async def publish(self, state: str = "running", workers: list[WorkerInfo] | None = None) -> Path:
        """Write ``dask.json`` with the scheduler's address and the current workers."""
        assert self.address is not None
        if workers is None:
            workers = await self.workers() if state == "running" else []
        self._published = tuple(w.address for w in workers)
        info = ConnectionInfo(
            pilot=self.pilot,
            scheduler=self.address,
            mode=self.options.mode,
            state=state,
            dashboard=self.dashboard,
            workers=workers,
            scheduler_file=str(self.scheduler_file),
        )
        return await asyncio.to_thread(write_info, self.workdir, info)

    # ------------------------------------------------------------------ supervise

    async def supervise(self) -> None:
        """Until cancelled: stream progress, restart lost workers, keep ``dask.json``
        current. Raises :class:`PilotkitError` when the scheduler dies."""
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    async def check(self) -> None:
        """One round of :meth:`supervise`."""
        if self.stopping or self.ctx.draining.is_set():
            return  # what stops now is being stopped
        if self.pool_tasks[SCHEDULER_TASK].status not in ACTIVE:
            raise PilotkitError(f"the Dask scheduler stopped ({await self.exit_report(SCHEDULER_TASK)})")
        for slot in self.slots:
            await self._check_worker(slot)
        try:
            await self.poll_progress()
        except (OSError, TimeoutError):
            return  # the scheduler is going away; the next round says so
        except Exception as exc:
            if not self._progress_failed:
                self._progress_failed = True
                self.say("warn", f"no task progress from the scheduler: {type(exc).__name__}: {exc}")
        try:
            workers = await self.workers()
        except (OSError, TimeoutError):
            return
        if tuple(w.address for w in workers) != self._published:
            await self.publish(workers=workers)

    async def poll_progress(self) -> None:
        """Read the per-prefix counts once and emit what changed."""
        if self.client is None:
            return
        from .scheduler_side import progress_snapshot

        snapshot = await self.client.run_on_scheduler(progress_snapshot)
        if snapshot:
            for event in self.progress.changes(snapshot):
                self.ctx.emit(event)

    async def _check_worker(self, slot: WorkerSlot) -> None:
        if slot.gone is not None:
            return
        plan = slot.plan
        task = self.pool_tasks[slot.task_id]
        limit = self.options.worker_restarts
        if task.attempts > slot.attempts:  # the pool re-ran it after a failure
            slot.restarts += task.attempts - slot.attempts
            slot.attempts = task.attempts
            report = await self.exit_report(slot.task_id, task.attempts - 1)
            self.say(
                "warn",
                f"Dask worker {plan.name} on {plan.node} exited ({report}); "
                f"restarted it ({slot.restarts} of {limit})",
            )
            return
        if task.status in ACTIVE:
            if task.outcome == "lost":
                slot.gone = f"node {plan.node} was lost"
                self.say("warn", f"Dask worker {plan.name} is gone: its node {plan.node} was lost")
            return
        if task.status is TaskStatus.FAILED:
            slot.gone = "kept failing"
            self.say(
                "error",
                f"Dask worker {plan.name} on {plan.node} kept failing; gave up after {slot.restarts} restart(s) "
                f"({await self.exit_report(slot.task_id)})",
            )
            return
        if self.ctx.draining.is_set():
            return
        # It exited cleanly (closed from outside the pilot): start a new one on its node.
        report = await self.exit_report(slot.task_id)
        if slot.restarts >= limit:
            slot.gone = "exited"
            self.say("error", f"Dask worker {plan.name} on {plan.node} exited ({report}); no restarts left")
            return
        slot.restarts += 1
        slot.generation += 1
        slot.task_id = f"{plan.task_id}-{slot.generation}"
        slot.attempts = 0
        self.ctx.pool.add_group(SERVICE_GROUP, [self._worker_task(slot)])
        slot.attempts = self.pool_tasks[slot.task_id].attempts
        self.say(
            "warn",
            f"Dask worker {plan.name} on {plan.node} exited ({report}); started it again ({slot.restarts} of {limit})",
        )

    # ------------------------------------------------------------------ stop

    def scheduler_running(self) -> bool:
        return (
            SCHEDULER_TASK in self.pool_tasks and self.pool_tasks[SCHEDULER_TASK].status is TaskStatus.RUNNING
        )

    async def shutdown(self) -> None:
        """Save published datasets, retire the workers gracefully, stop every service.
        Never raises: problems are reported as ``Log`` events."""
        self.stopping = True
        options = self.options
        if self.client is not None and self.scheduler_running():
            try:
                async with asyncio.timeout(parse_duration(options.retire_timeout)):
                    await self.poll_progress()
                    if options.save_datasets:
                        from .datasets import DATASETS_DIR, save_published

                        limit = parse_size(options.save_datasets_limit)
                        await save_published(self.client, self.workdir / DATASETS_DIR, limit, self.say)
                    await self._retire()
            except TimeoutError:
                self.say(
                    "warn", f"retiring the Dask workers took over {options.retire_timeout}: stopping them"
                )
            except OSError:
                self.say("warn", "the Dask workers were not retired gracefully: the scheduler stopped first")
            except Exception as exc:
                self.say("warn", f"retiring the Dask workers failed: {type(exc).__name__}: {exc}")
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), 10.0)
        await self._stop_services()
        if self.address is not None:
            with contextlib.suppress(OSError):
                await self.publish(state="stopped", workers=[])

    async def _retire(self) -> None:
        assert self.client is not None
        addresses = [w.address for w in await self.workers()]
        if not addresses:
            return
        retired = await self.client.retire_workers(workers=addresses, close_workers=True)
        kept = len(addresses) - len(retired or {})
        self.say(
            "info",
            f"retired {len(retired or {})} of {len(addresses)} Dask worker(s)"
            + (f"; {kept} held data that could not move elsewhere and will be stopped" if kept else ""),
        )

    async def _stop_services(self) -> None:
        pool = self.ctx.pool
        services = [s.task_id for s in self.slots]
        for task_id in services:
            pool.terminate(task_id)
        await self._wait_stopped(services)
        pool.terminate(SCHEDULER_TASK)
        await self._wait_stopped([SCHEDULER_TASK])

    async def _wait_stopped(self, task_ids: list[str]) -> None:
        """Until none of ``task_ids`` runs (the pool SIGKILLs after its grace period)."""
        deadline = time.monotonic() + self.ctx.pool.grace + 5.0
        while time.monotonic() < deadline:
            if all(
                t not in self.pool_tasks or self.pool_tasks[t].status is not TaskStatus.RUNNING
                for t in task_ids
            ):
                return
            await asyncio.sleep(POLL)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None  # absent, or being written
    return data if isinstance(data, dict) else None


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
