"""The local provider (the default): claims this machine, or a slice of it, as an
allocation of one node served by an in-process node agent."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

import msgspec

import pilotkit

from ..agent import LocalAgent
from ..errors import PilotkitError, SpecProblem
from ..interfaces import Agent, PilotContext, Provider
from ..probe import probe_node
from ..types import Allocation, NodeInfo
from ..units import format_size

if TYPE_CHECKING:
    from ..interfaces import SpecView
    from ..plugins import Register


class LocalOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The local provider takes no options of its own."""


class LocalProvider(Provider):
    """This machine as a one-node allocation."""

    id = "local"
    Options = LocalOptions
    description = "this machine (or a slice of it), no batch system"

    @classmethod
    def check(cls, spec: SpecView) -> list[SpecProblem]:
        node = probe_node(gpus=spec.spec.resources.gpus is not None and spec.spec.resources.gpus > 0)
        return [SpecProblem(key, message) for key, message in _misfits(spec, node)]

    @classmethod
    def node_capacity(cls, spec: SpecView) -> tuple[int | None, int | None]:
        """(cores, gpus) per node known before claiming."""
        res = spec.spec.resources
        cores = res.cores or len(os.sched_getaffinity(0))
        gpus = res.gpus
        wanted = any(getattr(g, "gpus", 0) for g in getattr(spec.app_options, "groups", None) or ())
        if gpus is None and wanted:  # every visible GPU: count them, only when a task wants one
            gpus = len(probe_node(gpus=True).gpus)
        return cores, gpus

    async def claim(self, ctx: PilotContext) -> Allocation:
        node = await asyncio.to_thread(probe_node, gpus=self.spec.spec.resources.gpus != 0)
        misfits = _misfits(self.spec, node)
        if misfits:
            key, message = misfits[0]
            raise PilotkitError(f"resources.{key.split('.', 1)[-1]}: {message}")
        self._node = _slice(self.spec, node)
        walltime = self.spec.walltime
        return Allocation(
            provider=self.id,
            nodes=[self._node.name],
            job_id=str(os.getpid()),
            walltime_end=time.time() + walltime if walltime else None,
        )

    async def agents(self, allocation: Allocation, ctx: PilotContext) -> list[Agent]:
        return [LocalAgent(self._node)]

    async def release(self, allocation: Allocation) -> None:
        return None


def _misfits(spec: SpecView, node: NodeInfo) -> list[tuple[str, str]]:
    res = spec.spec.resources
    problems: list[tuple[str, str]] = []
    if res.nodes != 1:
        problems.append(("resources.nodes", f"the local provider has 1 node, {res.nodes} were asked for"))
    if res.cores is not None and res.cores > node.cores:
        problems.append(("resources.cores", f"{res.cores} cores asked for, this machine has {node.cores}"))
    memory = spec.memory
    if memory is not None and memory > node.memory:
        problems.append(
            (
                "resources.memory",
                f"{format_size(memory)} asked for, this machine has {format_size(node.memory)}",
            )
        )
    if res.gpus and res.gpus > len(node.gpus):
        why = f" ({node.gpu_reason})" if node.gpu_reason else ""
        problems.append(
            ("resources.gpus", f"{res.gpus} GPUs asked for, this machine has {len(node.gpus)}{why}")
        )
    return problems


def _slice(spec: SpecView, node: NodeInfo) -> NodeInfo:
    res = spec.spec.resources
    gpus = node.gpus if res.gpus is None else node.gpus[: res.gpus]
    return msgspec.structs.replace(
        node,
        cores=res.cores or node.cores,
        memory=spec.memory or node.memory,
        gpus=gpus,
    )


@pilotkit.hookimpl
def pilotkit_register_providers(register: Register[Any]) -> None:
    register(LocalProvider)
