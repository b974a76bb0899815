"""``[app] type = "dask"``: a Dask cluster across the pilot's nodes.

- **batch** (``script`` or ``module``): the user's program runs on the head node with
  ``DASK_SCHEDULER_ADDRESS`` set; when it exits the workers are retired and the pilot
  ends done or failed by its exit code.
- **interactive**: the cluster stays up for clients from outside the allocation (the
  address is in ``<workdir>/dask.json`` and in a ``Log`` event) until the pilot drains,
  reaches its walltime or is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotkit.api import App, AppContext, Service, SpecProblem, Task, TaskStatus

from .commands import CONNECTION_FILE, SCRIPT_GROUP, SCRIPT_TASK, python_for, script_argv
from .options import DaskOptions, check_options

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

    from .cluster import DaskCluster


class DaskApp(App):
    """Deploys a Dask scheduler on the head node and workers on every node."""

    id = "dask"
    Options = DaskOptions
    description = "a Dask cluster across the nodes: run a script on it, or serve clients"

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        options: DaskOptions = spec.app_options
        return check_options(options, spec)

    @classmethod
    def services(cls, workdir: Path) -> list[Service]:
        """What the pilot serves now, from its connection file in ``workdir``."""
        from .connection import services

        return services(workdir)

    async def run(self, ctx: AppContext) -> None:
        from .cluster import DaskCluster

        options: DaskOptions = self.options
        cluster = DaskCluster(ctx, self.spec, options)
        try:
            if not await _unless_draining(ctx, cluster.start()):
                return
            ctx.running()
            supervisor = asyncio.ensure_future(cluster.supervise())
            try:
                if options.mode == "batch":
                    await self._run_script(ctx, cluster, supervisor)
                else:
                    cluster.say(
                        "info",
                        f"Dask scheduler at {cluster.address}; connect with: pilotkit dask connect {ctx.pilot.workdir}",
                    )
                    await _first(ctx.draining.wait(), supervisor)
            finally:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
        finally:
            await cluster.shutdown()

    async def _run_script(
        self, ctx: AppContext, cluster: DaskCluster, supervisor: asyncio.Future[None]
    ) -> None:
        """Run the user's program on the head node to its end."""
        options: DaskOptions = self.options
        assert cluster.address is not None
        containerised = self.spec.runtime_cls is not None and self.spec.spec.image is not None
        env = {
            **cluster.env,
            "DASK_SCHEDULER_ADDRESS": cluster.address,
            "PILOTKIT_DASK_INFO": str(ctx.pilot.workdir / CONNECTION_FILE),
        }
        task = Task(
            id=SCRIPT_TASK,
            group=SCRIPT_GROUP,
            argv=script_argv(python_for(options, containerised), options, self.spec.base_dir),
            cores=0,
            pin=cluster.head,
            env=env,
        )
        started = time.monotonic()
        ctx.pool.add_group(SCRIPT_GROUP, [task])
        try:
            await _first(_until_finished(task), supervisor)
        except BaseException:
            ctx.pool.terminate(SCRIPT_TASK)
            raise
        code = "" if task.exit_code is None else f" with exit code {task.exit_code}"
        level = "info" if task.status is TaskStatus.DONE else "error"
        cluster.say(
            level, f"the Dask script {task.outcome or 'ended'}{code} after {time.monotonic() - started:.1f}s"
        )


async def _until_finished(task: Task, poll: float = 0.1) -> None:
    """Until ``task`` has its final status (the pool offers no per-task signal)."""
    while task.status in (TaskStatus.QUEUED, TaskStatus.RUNNING):
        await asyncio.sleep(poll)


async def _first(main: Awaitable[object], watcher: asyncio.Future[None]) -> None:
    """Wait for ``main``; if ``watcher`` ends first (it raised), raise its error."""
    work: asyncio.Future[object] = asyncio.ensure_future(main)
    pending: set[asyncio.Future[Any]] = {work, watcher}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            watcher.result()  # raises what stopped the supervisor
        work.result()
    finally:
        work.cancel()


async def _unless_draining(ctx: AppContext, start: Awaitable[None]) -> bool:
    """Run ``start``; False (and ``start`` cancelled) if the pilot drains first."""
    work = asyncio.ensure_future(start)
    drained = asyncio.ensure_future(ctx.draining.wait())
    try:
        await asyncio.wait({work, drained}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            work.result()
            return True
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return False
    finally:
        drained.cancel()
