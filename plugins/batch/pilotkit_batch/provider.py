"""The Slurm provider: one batch job per pilot, one node agent per node.

The job script runs the head agent (``pilotkit agent --head``) on the first node; it
connects back to the pilot, starts a node agent on every node with ``srun
--ntasks-per-node=1`` and relays Slurm's signals (``--signal=B:USR1@<margin>`` before
the walltime ends, TERM on scancel). Node agents connect back to the pilot's agent
server with the pilot's token (a 0600 file in the pilot's working directory, which
must be on a filesystem the nodes share).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import msgspec

from pilotkit.errors import PilotkitError, SpecProblem
from pilotkit.events import Log
from pilotkit.interfaces import Agent, PilotContext, Provider
from pilotkit.rendezvous import Rendezvous
from pilotkit.types import Allocation

from . import commands, hostlist, slurm
from .job import BatchJob
from .jobstate import JobState

if TYPE_CHECKING:
    from pilotkit.spec import ResolvedSpec


class SlurmOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Options of ``[provider] type = "slurm"``."""

    callback_host: str | None = None
    """Address the nodes reach this process on (default: $PILOTKIT_CALLBACK_HOST, else
    this host's name)."""
    python: str | None = None
    """Python interpreter with pilotkit on the nodes (default: this one)."""
    agent_timeout: float = 300.0
    """Seconds from the job starting to every node agent connected."""
    queue_timeout: float | None = None
    """Give up when the job has not started after this many seconds (default: wait)."""
    poll_interval: float = 5.0
    srun_args: list[str] = []
    """Extra arguments for the srun that starts the node agents."""


def callback_host(options: SlurmOptions) -> str:
    return options.callback_host or os.environ.get("PILOTKIT_CALLBACK_HOST") or socket.getfqdn()


_OUTSIDE_END = {
    JobState.CANCELLED: "cancelled",
    JobState.WALLTIME_EXPIRED: "walltime-expired",
    JobState.PREEMPTED: "cancelled",
}


class SlurmProvider(Provider):
    """Claims an allocation of ``resources.nodes`` nodes from Slurm."""

    id = "slurm"
    Options = SlurmOptions
    RELEASE_WAIT = 10.0
    """Seconds the job gets to end by itself after its agents stopped."""
    description = "a Slurm batch job; one node agent per node"

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        problems = []
        if spec.walltime is None:
            problems.append(SpecProblem("resources.walltime", "a Slurm pilot needs a walltime"))
        return problems

    def __init__(self, spec: ResolvedSpec, options: Any) -> None:
        super().__init__(spec, options)
        self.rdv: Rendezvous | None = None
        self.job_id: str | None = None

    def _log(self, ctx: PilotContext, message: str, level: str = "info") -> None:
        ctx.emit(Log(pilot=ctx.pilot_id, level=level, message=message, source="slurm"))

    async def claim(self, ctx: PilotContext) -> Allocation:
        options: SlurmOptions = self.options
        resources = self.spec.spec.resources
        walltime = self.spec.walltime
        assert walltime is not None
        await commands.check_walltime(walltime, resources.partition)
        self.rdv = Rendezvous(ctx, self.spec, host=callback_host(options), python=options.python)
        await self.rdv.start()
        launch = [
            "srun", "--ntasks-per-node=1", f"--nodes={resources.nodes}", "--kill-on-bad-exit=0",
            *options.srun_args, *self.rdv.node_agent_argv(),
        ]  # fmt: skip
        job = BatchJob.from_spec(
            self.spec,
            command=self.rdv.head_agent_argv(launch),
            workdir=str(ctx.workdir),
            output=str(ctx.workdir / "slurm-%j.out"),
            error=str(ctx.workdir / "slurm-%j.err"),
        )
        script = slurm.render_script(job)
        (ctx.workdir / "job.sh").write_text(script)
        self.job_id = await commands.submit(script, ctx.workdir)
        self._log(ctx, f"submitted Slurm job {self.job_id}")
        info = await self._wait_running(ctx)
        nodes = hostlist.expand(",".join(info.nodes)) if info.nodes else []
        left = info.time_left if info.time_left is not None else walltime
        return Allocation(
            provider=self.id,
            nodes=nodes,
            job_id=self.job_id,
            walltime_end=time.time() + left,
            data={"partition": resources.partition or ""},
        )

    async def _wait_running(self, ctx: PilotContext) -> Any:
        assert self.job_id is not None
        options: SlurmOptions = self.options
        started = time.monotonic()
        delay = 0.2
        while True:
            info = await commands.job_state(self.job_id)
            if info.state is JobState.RUNNING and info.nodes:
                self._log(ctx, f"job {self.job_id} running on {','.join(info.nodes)}")
                return info
            if info.state.terminal:
                reason = f" ({info.reason})" if info.reason else ""
                raise PilotkitError(
                    f"Slurm job {self.job_id} ended before it started: {info.state.value}{reason}"
                )
            if options.queue_timeout is not None and time.monotonic() - started > options.queue_timeout:
                raise PilotkitError(
                    f"Slurm job {self.job_id} did not start within {options.queue_timeout:g}s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, options.poll_interval)

    async def agents(self, allocation: Allocation, ctx: PilotContext) -> list[Agent]:
        assert self.rdv is not None
        return list(await self.rdv.wait(len(allocation.nodes), self.options.agent_timeout))

    async def poll(self, allocation: Allocation) -> str | None:
        assert self.job_id is not None
        try:
            info = await commands.job_state(self.job_id)
        except PilotkitError:
            return None  # the controller is unreachable for now; try again later
        if not info.state.terminal:
            return None
        if info.state in _OUTSIDE_END:
            return _OUTSIDE_END[info.state]
        return "failed" if info.state.failure else "ended"

    async def release(self, allocation: Allocation) -> None:
        """The agents have stopped, so the job ends by itself; scancel what has not."""
        if self.job_id is not None:
            deadline = time.monotonic() + self.RELEASE_WAIT
            while True:
                try:
                    info = await commands.job_state(self.job_id)
                except PilotkitError:
                    info = None
                if info is not None and info.state.terminal:
                    break
                if time.monotonic() > deadline:
                    await commands.cancel(self.job_id)
                    break
                await asyncio.sleep(0.3)
        if self.rdv is not None:
            await self.rdv.close()
