"""``[app] type = "ray"``: a Ray cluster across the pilot's nodes.

- **batch** (``script`` or ``module``): the user's program runs on the head node with
  ``RAY_ADDRESS`` set; when it exits Ray is stopped on every node and the pilot ends
  done or failed by its exit code.
- **interactive**: the cluster stays up for clients from outside the allocation (the
  addresses are in ``<workdir>/ray.json`` and in a ``Log`` event) until the pilot
  drains, reaches its walltime or is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from pilotkit.api import (
    App,
    AppContext,
    Service,
    SpecProblem,
    Task,
    TaskStatus,
    python_for,
    run_watched,
    script_argv,
    unless_draining,
    watched,
)

from .commands import CONNECTION_FILE, SCRIPT_GROUP, SCRIPT_TASK
from .options import RayOptions, check_options

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

    from .cluster import RayCluster


class RayApp(App):
    """Deploys the Ray head on the first node and a Ray worker node on every other."""

    id = "ray"
    Options = RayOptions
    description = "a Ray cluster across the nodes: run a script on it, or serve clients"

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        options: RayOptions = spec.app_options
        return check_options(options, spec)

    @classmethod
    def services(cls, workdir: Path) -> list[Service]:
        """What the pilot serves now, from its connection file in ``workdir``."""
        from .connection import services

        return services(workdir)

    async def run(self, ctx: AppContext) -> None:
        from .cluster import RayCluster

        options: RayOptions = self.options
        cluster = RayCluster(ctx, self.spec, options)
        try:
            if not await unless_draining(ctx, cluster.start()):
                return
            ctx.running()
            supervisor = asyncio.ensure_future(cluster.supervise())
            try:
                if options.mode == "batch":
                    await self._run_script(ctx, cluster, supervisor)
                else:
                    cluster.say(
                        "info",
                        f"Ray head at {cluster.address} (client {cluster.client}); "
                        f"connect with: pilotkit ray connect {ctx.pilot.workdir}",
                    )
                    await watched(ctx.draining.wait(), supervisor)
                    await cluster.until_idle()
            finally:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
        finally:
            await cluster.shutdown()

    async def _run_script(
        self, ctx: AppContext, cluster: RayCluster, supervisor: asyncio.Future[None]
    ) -> None:
        """Run the user's program on the head node to its end."""
        options: RayOptions = self.options
        assert cluster.address is not None
        containerised = self.spec.runtime_cls is not None and self.spec.spec.image is not None
        env = {
            **cluster.env,
            "RAY_ADDRESS": cluster.address,
            "PILOTKIT_RAY_INFO": str(ctx.pilot.workdir / CONNECTION_FILE),
        }
        task = Task(
            id=SCRIPT_TASK,
            group=SCRIPT_GROUP,
            argv=script_argv(python_for(options, containerised), options, self.spec.base_dir),
            cores=0,
            pin=cluster.head.node,
            env=env,
        )
        took = await run_watched(ctx, task, supervisor)
        code = "" if task.exit_code is None else f" with exit code {task.exit_code}"
        level = "info" if task.status is TaskStatus.DONE else "error"
        cluster.say(
            level, f"the Ray script {task.outcome or 'ended'}{code} after {took:.1f}s"
        )

