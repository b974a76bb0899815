"""The agent path every batch provider shares: one batch job per pilot, one node agent
per node.

The job script runs the head agent (``pilotkit agent --head``) on the first node; it
connects back to the pilot's agent server and runs the *launch* command, which starts
one node agent on every node of the job. Node agents connect back with the pilot's token
(a 0600 file in the pilot's working directory, which must be on a filesystem the nodes
share). The head agent relays the batch system's signals: USR1 (a warning before the
walltime, where the system sends one) drains, TERM (cancelled from outside) stops. The
pilot also drains by itself at ``drain_margin`` before the walltime, so systems that send
no warning drain in time too.

A batch system supplies only what differs (:class:`BatchProvider`'s abstract methods):
its job script, how the script starts one agent per node, and its submit, status and
cancel commands.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import ipaddress
import os
import socket
import time
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from pilotkit.api import (
    Agent,
    Allocation,
    Log,
    PilotContext,
    PilotkitError,
    Provider,
    Rendezvous,
    ResolvedSpec,
    SpecProblem,
)

from .job import BatchJob
from .jobstate import JobInfo, JobState


class BatchOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Options every batch provider takes."""

    callback_host: str | None = None
    """Address the nodes reach this process on (default: $PILOTKIT_CALLBACK_HOST, else
    the address of this host's interface that routes to the batch system's controller,
    else this host's name if it is not a loopback address)."""
    callback_timeout: float = 60.0
    """Seconds from the job starting to its first agent calling back; past them, or when
    the job ends first, the pilot fails with the job's stderr tail and the address it
    waited on."""
    python: str | None = None
    """Python interpreter with pilotkit on the nodes (default: this one)."""
    agent_timeout: float = 300.0
    """Seconds from the job starting to every node agent connected."""
    queue_timeout: float | None = None
    """Give up when the job has not started after this many seconds (default: wait)."""
    poll_interval: float = 5.0
    replace_lost_nodes: bool = False
    """When a node is lost, ask the batch system for a replacement allocation of one
    node (for the rest of the walltime), whose agent joins the pilot."""


def callback_host(options: BatchOptions, controller: str | None = None) -> str:
    """Where the nodes reach this process: ``callback_host``, $PILOTKIT_CALLBACK_HOST, the
    address of the interface that routes to ``controller`` (the batch system's
    controller, which the nodes reach too), or this host's name. Blocking (name lookups).

    :raises PilotkitError: only a loopback address was found (one line naming the option).
    """
    explicit = options.callback_host or os.environ.get("PILOTKIT_CALLBACK_HOST")
    if explicit:
        return explicit
    if controller:
        routed = route_address(controller)
        if routed is not None and not ipaddress.ip_address(routed).is_loopback:
            return routed
    name = socket.getfqdn()
    try:
        loopback = all(
            ipaddress.ip_address(info[4][0]).is_loopback
            for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        )
    except (OSError, ValueError):
        loopback = True
    if not loopback:
        return name
    raise PilotkitError(
        f"cannot tell which address the nodes reach this host on (its name '{name}' is a loopback "
        "address); set [provider] callback_host",
        title="no callback address",
    )


def route_address(target: str) -> str | None:
    """This host's address on the interface that routes to ``target`` (no packet is
    sent: a UDP socket is only connected); None when ``target`` cannot be resolved."""
    try:
        family, _, _, _, address = socket.getaddrinfo(target, 9, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            return str(sock.getsockname()[0])
    except OSError:
        return None


_OUTSIDE_END: dict[JobState, tuple[str, str]] = {
    JobState.CANCELLED: ("cancelled", "cancelled from outside the pilot (scancel)"),
    JobState.PREEMPTED: ("cancelled", "preempted by the batch system"),
    JobState.WALLTIME_EXPIRED: ("walltime-expired", "its walltime ran out"),
    JobState.NODE_FAIL: ("failed", "ended by a node failure"),
    JobState.OUT_OF_MEMORY: ("failed", "killed for using more memory than it was given"),
    JobState.FAILED: ("failed", "failed"),
    JobState.DONE: ("failed", "ended under the pilot (the allocation vanished)"),
}
"""How a job that ended while its pilot ran ended: the pilot's final state word and who
or what ended it."""


def outside_end(system: str, job_id: str, info: JobInfo) -> str:
    """``<pilot state>: <system> job <id> <what happened> (<detail>)``, for :meth:`poll`."""
    word, what = _OUTSIDE_END.get(info.state, ("failed", f"ended ({info.state.value})"))
    detail = f" ({info.reason})" if info.reason else ""
    return f"{word}: {system} job {job_id} {what}{detail}"


class BatchProvider(Provider):
    """Claims ``resources.nodes`` nodes as one batch job whose script starts the agents."""

    system: ClassVar[str]
    """The batch system's name in messages: ``Slurm``, ``PBS``..."""
    unsupported: ClassVar[tuple[str, ...]] = ()
    """``[resources]`` keys this system has no way to ask for (refused when checked)."""
    max_nodes: ClassVar[int | None] = None
    """The most nodes one job of this provider can take (None: no limit)."""
    RELEASE_WAIT = 10.0
    """Seconds the job gets to end by itself after its agents stopped."""
    END_WAIT = 60.0
    """Seconds :meth:`end_job` waits for a cancelled job to end."""

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        problems = []
        if spec.walltime is None:
            problems.append(SpecProblem("resources.walltime", f"a {cls.system} pilot needs a walltime"))
        resources = spec.spec.resources
        for key in cls.unsupported:
            if getattr(resources, key):
                problems.append(SpecProblem(f"resources.{key}", f"{cls.system} has no equivalent; remove it"))
        if cls.max_nodes is not None and resources.nodes > cls.max_nodes:
            problems.append(
                SpecProblem(
                    "resources.nodes",
                    f"a {cls.system} pilot takes at most {cls.max_nodes} node(s); run more pilots instead",
                )
            )
        return problems

    def __init__(self, spec: ResolvedSpec, options: Any) -> None:
        super().__init__(spec, options)
        self.rdv: Rendezvous | None = None
        self.job_id: str | None = None
        self.replacements: list[str] = []
        """Job ids of the replacement allocations asked for lost nodes."""
        self._replacing: set[asyncio.Future[None]] = set()
        self._walltime_end: float | None = None

    def replacement_argv(self, rdv: Rendezvous, nodes: int) -> list[str] | None:
        """The command a replacement job of ``nodes`` nodes runs (one node agent per
        node); None: this system cannot replace lost nodes."""
        return None

    def _replace_lost(self, ctx: PilotContext) -> None:
        options: BatchOptions = self.options
        if options.replace_lost_nodes and self.rdv is not None:
            self.rdv.on_node_lost.append(
                lambda node: self._replacing.add(asyncio.ensure_future(self._submit_replacement(ctx, node)))
            )

    async def _submit_replacement(self, ctx: PilotContext, node: str) -> None:
        if ctx.draining.is_set() or self.rdv is None:
            return
        argv = self.replacement_argv(self.rdv, 1)
        if argv is None:
            self._log(ctx, f"{node} lost: {self.system} pilots cannot replace lost nodes", "warn")
            return
        left = (self._walltime_end or time.time()) - time.time()
        if left < 60:
            return  # not worth a job
        _, output, error = self.job_files(ctx.workdir)
        job = BatchJob.from_spec(self.spec, command=argv, workdir=str(ctx.workdir), output=output, error=error)
        job = dataclasses.replace(
            job, nodes=1, walltime=float(int(left)), comment=f"pilotkit pilot {ctx.pilot_id} (replaces {node})"
        )
        try:
            job_id = await self.submit(self.render(job), ctx.workdir)
        except (PilotkitError, ValueError) as exc:
            self._log(ctx, f"{node} lost: asking {self.system} for a replacement failed: {exc}", "error")
            return
        self.replacements.append(job_id)
        self._log(ctx, f"{node} lost: asked {self.system} for a replacement node (job {job_id})")

    # ---------------------------------------------------------------- what a system supplies

    @abc.abstractmethod
    def launch_argv(self, rdv: Rendezvous, workdir: Path) -> list[str]:
        """The command the head agent runs to start one node agent per node
        (``rdv.node_agent_argv()`` is a node agent's command line)."""

    @abc.abstractmethod
    def render(self, job: BatchJob) -> str:
        """The job script (or submit description) for ``job``."""

    @abc.abstractmethod
    def job_files(self, workdir: Path) -> tuple[str, str, str]:
        """(job script name, stdout path, stderr path) for a job run in ``workdir``."""

    @abc.abstractmethod
    async def submit(self, script: str, workdir: Path) -> str:
        """Submit ``script``; the job id. Raises PilotkitError with one line on refusal."""

    @abc.abstractmethod
    async def job_state(self, job_id: str) -> JobInfo:
        """Where the job is. Raises PilotkitError when the system cannot be asked."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> None:
        """End the job; an already finished job is not an error."""

    @classmethod
    async def controller(cls) -> str | None:
        """The batch system's controller host, which the nodes reach (the callback
        address is the one that routes to it); None when unknown."""
        return None

    @classmethod
    async def callback_address(cls, options: BatchOptions) -> str:
        explicit = options.callback_host or os.environ.get("PILOTKIT_CALLBACK_HOST")
        controller = None if explicit else await cls.controller()
        return await asyncio.to_thread(callback_host, options, controller)

    async def before_submit(self, walltime: float) -> None:
        """Checks that need the batch system (Slurm: the partition's time limit)."""

    def nodes_of(self, info: JobInfo) -> list[str]:
        """The job's host names, from what its status said."""
        return list(info.nodes)

    def time_left(self, info: JobInfo, walltime: float) -> float:
        """Seconds the job has left, from its status just after it started."""
        return info.time_left if info.time_left is not None else walltime

    def allocation_data(self) -> dict[str, str]:
        return {"queue": self.spec.spec.resources.partition or ""}

    async def finish(self, info: JobInfo | None) -> None:
        """Called by :meth:`release` once the job is terminal (HTCondor removes a job that
        is held at its walltime, which would otherwise stay in the queue)."""

    # ---------------------------------------------------------------- the shared path

    def _log(self, ctx: PilotContext, message: str, level: str = "info") -> None:
        ctx.emit(Log(pilot=ctx.pilot_id, level=level, message=message, source=self.id))

    async def claim(self, ctx: PilotContext) -> Allocation:
        options: BatchOptions = self.options
        walltime = self.spec.walltime
        assert walltime is not None
        await self.before_submit(walltime)
        host = await self.callback_address(options)
        self.rdv = Rendezvous(ctx, self.spec, host=host, python=options.python)
        await self.rdv.start()
        self._replace_lost(ctx)
        name, output, error = self.job_files(ctx.workdir)
        job = BatchJob.from_spec(
            self.spec,
            command=self.rdv.head_agent_argv(self.launch_argv(self.rdv, ctx.workdir)),
            workdir=str(ctx.workdir),
            output=output,
            error=error,
        )
        job = dataclasses.replace(job, comment=f"pilotkit pilot {ctx.pilot_id}")
        try:
            script = self.render(job)
        except ValueError as exc:
            raise PilotkitError(f"{self.system} job: {exc}", title="job refused") from None
        (ctx.workdir / name).write_text(script)
        try:
            self.job_id = await self.submit(script, ctx.workdir)
        except BaseException:
            await asyncio.shield(self.rdv.close())  # no job: nothing will call back
            raise
        self._log(ctx, f"submitted {self.system} job {self.job_id}")
        self.rdv.job_label = f"{self.system} job {self.job_id}"
        try:
            info = await self._wait_running(ctx)
        except BaseException:
            # Ctrl-C, cancel or a failed start while the job is queued: nothing may
            # start later. Shielded, so that the cancellation that got us here cannot
            # stop the cancel itself.
            await asyncio.shield(self._cancel_queued(ctx))
            raise
        left = self.time_left(info, walltime)
        self._walltime_end = time.time() + left
        return Allocation(
            provider=self.id,
            nodes=self.nodes_of(info),
            job_id=self.job_id,
            walltime_end=time.time() + left,
            data=self.allocation_data(),
        )

    async def reattach(self, job_id: str, ctx: PilotContext) -> Allocation | None:
        """Come back to the running job ``job_id`` of a pilot that outlived its client:
        its node agents, which kept their tasks and results, connect to this process
        again with the token in the run directory (None when the job is no longer running)."""
        options: BatchOptions = self.options
        info = await self.job_state(job_id)
        if info.state is not JobState.RUNNING or not info.nodes:
            return None
        host = await self.callback_address(options)
        self.job_id = job_id
        self.rdv = Rendezvous(ctx, self.spec, host=host, python=options.python, rejoin=True)
        await self.rdv.start()
        self._replace_lost(ctx)
        self.rdv.job_label = f"{self.system} job {job_id}"
        self._log(ctx, f"re-attaching to {self.system} job {job_id}: its agents connect to {self.rdv.server.address}")
        walltime = self.spec.walltime
        assert walltime is not None
        self._walltime_end = time.time() + self.time_left(info, walltime)
        return Allocation(
            provider=self.id,
            nodes=self.nodes_of(info),
            job_id=job_id,
            walltime_end=self._walltime_end,
            data=self.allocation_data(),
        )

    async def _cancel_queued(self, ctx: PilotContext) -> None:
        assert self.job_id is not None
        try:
            await self.cancel(self.job_id)
        except PilotkitError as exc:
            self._log(ctx, f"cancelling queued {self.system} job {self.job_id} failed: {exc}", "error")
        else:
            self._log(ctx, f"cancelled queued {self.system} job {self.job_id}")
        if self.rdv is not None:
            await self.rdv.close()

    async def _wait_running(self, ctx: PilotContext) -> JobInfo:
        assert self.job_id is not None
        options: BatchOptions = self.options
        started = time.monotonic()
        delay = 0.2
        said: str | None = None
        while True:
            info = await self.job_state(self.job_id)
            if info.state is JobState.PENDING and info.reason and info.reason != said:
                said = info.reason  # each new reason once: Priority, Resources, ...
                self._log(ctx, f"job {self.job_id} pending ({info.reason})")
            if info.state is JobState.RUNNING and info.nodes:
                self._log(ctx, f"job {self.job_id} running on {','.join(info.nodes)}")
                return info
            if info.state.terminal:
                reason = f" ({info.reason})" if info.reason else ""
                said = await asyncio.to_thread(self._stderr_tail, ctx)
                raise PilotkitError(
                    f"{self.system} job {self.job_id} ended before it started: {info.state.value}{reason}"
                    + (f"; the job said: {said}" if said else "")
                )
            if options.queue_timeout is not None and time.monotonic() - started > options.queue_timeout:
                raise PilotkitError(
                    f"{self.system} job {self.job_id} did not start within {options.queue_timeout:g}s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, options.poll_interval)

    async def agents(self, allocation: Allocation, ctx: PilotContext) -> list[Agent]:
        assert self.rdv is not None
        waiting = asyncio.ensure_future(self.rdv.wait(len(allocation.nodes), self.options.agent_timeout))
        watching = asyncio.ensure_future(self._watch_callbacks(ctx))
        try:
            await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                return list(waiting.result())
            watching.result()  # raises why no agent came
            return list(await waiting)
        finally:
            for task in (waiting, watching):
                task.cancel()

    async def _watch_callbacks(self, ctx: PilotContext) -> None:
        """Raise with one line as soon as it is clear no agent will call back: the job
        ended, or none called back within ``callback_timeout``."""
        assert self.rdv is not None and self.job_id is not None
        options: BatchOptions = self.options
        server = self.rdv.server
        started = time.monotonic()
        while not server.agents and not server.heads:
            await asyncio.sleep(min(1.0, options.poll_interval))
            try:
                info: JobInfo | None = await self.job_state(self.job_id)
            except PilotkitError:
                info = None
            ended = info is not None and info.state.terminal
            late = time.monotonic() - started > options.callback_timeout
            if ended or late:
                what = "ended" if ended else f"is running but none called back within {options.callback_timeout:g}s"
                said = self._stderr_tail(ctx)
                raise PilotkitError(
                    f"no agent of {self.system} job {self.job_id} reached the pilot at {server.address} "
                    f"(the job {what}){f'; the job said: {said}' if said else ''}; "
                    "check [provider] callback_host"
                )

    def _stderr_tail(self, ctx: PilotContext) -> str:
        """The last line the job wrote to its stderr ('' when none)."""
        _, _, error = self.job_files(ctx.workdir)
        path = Path(error.replace("%j", self.job_id or ""))
        try:
            lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return lines[-1][-300:] if lines else ""

    def _log_release(self, message: str) -> None:
        if self.rdv is not None:
            self._log(self.rdv.ctx, message, "warn")

    async def poll(self, allocation: Allocation) -> str | None:
        assert self.job_id is not None
        try:
            info = await self.job_state(self.job_id)
        except PilotkitError:
            return None  # the batch system is unreachable for now; try again later
        if not info.state.terminal:
            return None
        return outside_end(self.system, self.job_id, info)

    async def end_job(self, job_id: str) -> None:
        """Its agents stop by themselves once their pilot is gone, and the job ends; a
        job still running after :attr:`RELEASE_WAIT` is cancelled, and waited for up to
        :attr:`END_WAIT`."""
        deadline = time.monotonic() + self.RELEASE_WAIT
        cancelled = False
        while True:
            try:
                info: JobInfo | None = await self.job_state(job_id)
            except PilotkitError:
                info = None
            if info is not None and info.state.terminal:
                return
            if time.monotonic() > deadline:
                if cancelled:
                    return
                await self.cancel(job_id)
                cancelled, deadline = True, time.monotonic() + self.END_WAIT
            await asyncio.sleep(0.3)

    async def release(self, allocation: Allocation) -> None:
        """The agents have stopped, so the job ends by itself; cancel what has not."""
        for task in self._replacing:
            task.cancel()
        for replacement in self.replacements:
            try:
                await self.cancel(replacement)
            except PilotkitError as exc:
                self._log_release(f"cancelling replacement job {replacement} failed: {exc}")
        if self.job_id is not None:
            deadline = time.monotonic() + self.RELEASE_WAIT
            while True:
                try:
                    info: JobInfo | None = await self.job_state(self.job_id)
                except PilotkitError:
                    info = None
                if info is not None and info.state.terminal:
                    await self.finish(info)
                    break
                if time.monotonic() > deadline:
                    await self.cancel(self.job_id)
                    break
                await asyncio.sleep(0.3)
        if self.rdv is not None:
            await self.rdv.close()
