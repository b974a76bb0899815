"""The seam between the daemon and batch providers, for pilots that outlive the daemon.

A pilot in a batch allocation (any provider but ``local``) keeps its allocation when the
daemon stops: the daemon *detaches* from it instead of draining it, and *re-attaches*
by job id when it starts again.

Detaching is done from outside the pilot: :func:`detachable` wraps the spec's provider
class so that, once :attr:`DetachFlag.detached` is set, releasing the allocation and
stopping or signalling the node agents are skipped; the daemon then cancels the pilot's
run and keeps its record (state, job id, allocation) as it was.

Re-attaching is the provider's part: :meth:`pilotkit.api.Provider.reattach` gets the
job id and returns the allocation if the job still runs. :func:`reattach` builds a Pilot
(same id and workdir, resuming from what was recorded) whose provider's claim does that
instead of submitting a job; the node agents, which kept running their tasks and kept
their results (``linger``), connect to it again and hand over what they carry. The
default :meth:`~pilotkit.api.Provider.reattach` cannot re-attach: the record is kept
waiting, and the reason says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..interfaces import Agent, ExitCallback, PilotContext, Provider
from ..types import Allocation, CarriedAttempt, NodeInfo, TaskLaunch

if TYPE_CHECKING:
    from ..pilot import Pilot
    from ..plugins import Plugins
    from ..scheduler import Resume
    from ..spec import ResolvedSpec
    from .records import PilotRecord

log = logging.getLogger("pilotkit.daemon")


class DetachFlag:
    """Set when the daemon lets go of a batch pilot without ending it."""

    def __init__(self) -> None:
        self.detached = False


class _DetachableAgent(Agent):
    """An agent whose stop/terminate are skipped once the pilot is detached."""

    def __init__(self, inner: Agent, flag: DetachFlag) -> None:
        self._inner = inner
        self._flag = flag

    @property
    def node(self) -> NodeInfo:  # type: ignore[override]
        return self._inner.node

    async def start(self) -> NodeInfo:
        return await self._inner.start()

    def launch(self, launch: TaskLaunch, on_exit: ExitCallback) -> None:
        self._inner.launch(launch, on_exit)

    def terminate(self, task_id: str, grace: float) -> None:
        if not self._flag.detached:
            self._inner.terminate(task_id, grace)

    async def stop(self, grace: float) -> None:
        if not self._flag.detached:
            await self._inner.stop(grace)

    def signal(self, task_id: str, sig: int) -> bool:
        return not self._flag.detached and self._inner.signal(task_id, sig)

    def kill_all(self) -> None:
        if not self._flag.detached:
            self._inner.kill_all()

    def carried(self) -> list[CarriedAttempt]:
        return self._inner.carried()

    def adopt(self, task_id: str, attempt: int, on_exit: ExitCallback) -> None:
        self._inner.adopt(task_id, attempt, on_exit)

    def hand_over(self, launches: list[TaskLaunch]) -> bool:
        return self._inner.hand_over(launches)

    async def flush(self) -> None:
        await self._inner.flush()

    @property
    def leasing(self) -> bool:
        return self._inner.leasing

    def lease(self, launches: list[TaskLaunch], on_back: Callable[[list[str]], None]) -> bool:
        return not self._flag.detached and self._inner.lease(launches, on_back)

    def revoke(self, task_ids: list[str]) -> None:
        self._inner.revoke(task_ids)

    @property
    def lost(self) -> str | None:  # type: ignore[override]
        return self._inner.lost

    @property
    def running(self) -> int:
        return self._inner.running

    @property
    def metrics(self) -> object:
        """The inner agent's latest heartbeat (a remote agent's load), if it has one."""
        return getattr(self._inner, "metrics", None)


def detachable(spec: ResolvedSpec) -> tuple[ResolvedSpec, DetachFlag]:
    """``spec`` with its provider wrapped so the pilot can be detached (see module doc)."""
    import dataclasses

    flag = DetachFlag()
    base = spec.provider_cls

    async def agents(self: Provider, allocation: Allocation, ctx: PilotContext) -> list[Agent]:
        inner = await base.agents(self, allocation, ctx)
        return [_DetachableAgent(agent, flag) for agent in inner]

    async def release(self: Provider, allocation: Allocation) -> None:
        if flag.detached:
            log.info("pilot detached: allocation %s kept", allocation.job_id)
            return
        await base.release(self, allocation)

    wrapped = cast(
        "type[Provider]",
        type(base.__name__, (base,), {"agents": agents, "release": release, "__module__": base.__module__}),
    )
    return dataclasses.replace(spec, provider_cls=wrapped), flag


def bound(spec: ResolvedSpec, job_id: str) -> ResolvedSpec:
    """``spec`` with its provider's claim re-attaching to the job ``job_id`` instead of
    submitting one (on the pilot's own provider, with the pilot's context), or, when that
    job has ended, submitting one for the tasks left. When no task is left, no job is
    submitted: the claim gives an allocation without nodes, and the pilot only records
    what the ended job's agents finished."""
    import dataclasses

    from ..events import Log

    base = spec.provider_cls
    ended: list[Allocation] = []

    async def claim(self: Provider, ctx: PilotContext) -> Allocation:
        allocation = await self.reattach(job_id, ctx)
        if allocation is not None:
            return allocation
        # The job ended while no client was attached (its walltime, a cancel from
        # outside). What its agents finished is in their journals and is recorded from
        # there, once; the tasks left run in a new allocation: nothing is lost.
        if await asyncio.to_thread(nothing_left, spec, ctx.workdir):
            ctx.emit(Log(pilot=ctx.pilot_id, level="info", source="pilot", message=(
                f"job {job_id} ended while no client was attached, and every task has its result: "
                "they are recorded from the agents' journals; no new job is needed"
            )))  # fmt: skip
            ended.append(Allocation(provider=base.id, nodes=[], job_id=job_id, data={"ended": "yes"}))
            return ended[-1]
        ctx.emit(Log(pilot=ctx.pilot_id, level="warn", source="pilot", message=(
            f"job {job_id} ended while no client was attached: its finished tasks are recorded "
            "from the agents' journals, and a new job runs the tasks left"
        )))  # fmt: skip
        return await base.claim(self, ctx)

    async def agents(self: Provider, allocation: Allocation, ctx: PilotContext) -> list[Agent]:
        if allocation in ended:
            return []
        return await base.agents(self, allocation, ctx)

    async def poll(self: Provider, allocation: Allocation) -> str | None:
        if allocation in ended:
            return None
        return await base.poll(self, allocation)

    async def release(self: Provider, allocation: Allocation) -> None:
        if allocation in ended:
            return
        await base.release(self, allocation)

    methods = {"claim": claim, "agents": agents, "poll": poll, "release": release, "__module__": base.__module__}
    wrapped = cast("type[Provider]", type(base.__name__, (base,), methods))
    return dataclasses.replace(spec, provider_cls=wrapped)


def nothing_left(spec: ResolvedSpec, workdir: Path) -> bool:
    """Whether every task of ``spec`` (a tasks app) has an ``ok`` result in ``workdir``,
    recorded or in the agents' journals. False when that cannot be told."""
    from ..journal import read_journals
    from ..scan import TasksOptions, count_tasks
    from ..vocab import JOURNAL_DIR, RESULTS_FILE, Outcome
    from .workdir import read_results_quietly

    options = spec.app_options
    if not isinstance(options, TasksOptions):
        return False
    total = sum(count_tasks(group) for group in options.groups)
    final = (Outcome.OK, Outcome.PRUNED)
    finished = {r.task for r in read_results_quietly(workdir / RESULTS_FILE) if r.outcome in final}
    finished.update(r.task_id for r in read_journals(workdir / JOURNAL_DIR) if r.status in final)
    return len(finished) >= total


def linger(spec: ResolvedSpec) -> float:
    """How long a daemon's batch pilot's agents wait for a restarted daemon: the whole
    walltime (the batch system ends the job then anyway)."""
    return spec.walltime or 0.0


async def reattach(
    record: PilotRecord, provider_cls: type[Provider] | None, plugins: Plugins, resume: Resume | None = None
) -> tuple[Pilot | None, DetachFlag | None, str]:
    """A pilot that re-attaches to ``record``'s job when it runs (its claim does), or
    None and why not: (the pilot, its detach flag, a reason)."""
    from ..errors import PilotkitError
    from ..pilot import Pilot
    from ..spec import parse_spec

    job = f"job {record.job_id}" if record.job_id else "no job id recorded"
    if provider_cls is None:
        return None, None, f"not re-attached: provider '{record.provider}' is not installed ({job})"
    if provider_cls.reattach is Provider.reattach or record.job_id is None:
        return None, None, f"waiting to re-attach: provider '{record.provider}' cannot re-attach yet ({job})"
    try:
        spec = await asyncio.to_thread(parse_spec, record.spec, record.spec_path, plugins, profile=record.profile)
    except PilotkitError as exc:
        return None, None, f"re-attaching failed: {exc}"
    spec, flag = detachable(bound(spec, record.job_id))
    pilot = Pilot(spec, plugins, pilot_id=record.id, workdir=Path(record.workdir), resume=resume)
    pilot.ctx.linger = linger(spec)
    return pilot, flag, f"re-attaching to {job}"
