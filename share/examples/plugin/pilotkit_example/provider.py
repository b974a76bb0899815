"""``example-fork``: each node of the allocation is a pilotkit node agent process on this
machine. A batch provider does the same, except that its batch script starts the agents
on the allocation's real nodes."""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec

from pilotkit.api import (
    Agent,
    Allocation,
    Duration,
    PilotContext,
    Provider,
    Rendezvous,
    ResolvedSpec,
    SpecProblem,
    parse_duration,
)

MAX_NODES = 8


class ForkOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[provider]`` keys of ``type = "example-fork"``."""

    connect_timeout: Duration = "30s"
    """How long the node agents may take to connect back."""


class ForkProvider(Provider):
    """Pretend nodes: ``resources.nodes`` node agent processes named node1, node2, ..."""

    id = "example-fork"
    Options = ForkOptions
    description = "pretend nodes: one node agent process per node, on this machine"

    def __init__(self, spec: ResolvedSpec, options: ForkOptions) -> None:
        super().__init__(spec, options)
        self.rdv: Rendezvous | None = None
        self.names: list[str] = []
        self.procs: list[asyncio.subprocess.Process] = []

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        nodes = spec.spec.resources.nodes
        if nodes > MAX_NODES:
            return [SpecProblem("resources.nodes", f"example-fork runs at most {MAX_NODES} nodes, not {nodes}")]
        return []

    async def claim(self, ctx: PilotContext) -> Allocation:
        self.rdv = rdv = Rendezvous(ctx, self.spec, host="127.0.0.1")
        await rdv.start()
        self.names = [f"node{i + 1}" for i in range(self.spec.spec.resources.nodes)]
        for name in self.names:
            argv = rdv.node_agent_argv(name)
            self.procs.append(await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL))
        walltime = self.spec.walltime
        return Allocation(
            provider=self.id,
            nodes=list(self.names),
            job_id=f"fork-{self.procs[0].pid}",
            walltime_end=time.time() + walltime if walltime else None,
        )

    async def agents(self, allocation: Allocation, ctx: PilotContext) -> list[Agent]:
        assert self.rdv is not None, "claim() first"
        timeout = parse_duration(self.options.connect_timeout)
        return list(await self.rdv.wait(len(self.names), timeout))

    async def poll(self, allocation: Allocation) -> str | None:
        if any(proc.returncode not in (None, 0) for proc in self.procs):
            return "failed"
        return None

    async def release(self, allocation: Allocation) -> None:
        """Close the rendezvous (the agents stop) and reap them; safe to call twice."""
        if self.rdv is not None:
            await self.rdv.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
