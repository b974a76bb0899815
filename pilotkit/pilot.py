"""The pilot lifecycle: claim, probe, stage, deploy, run, drain, evict.

One asyncio state machine for every provider. The local pilot is an allocation of one
node served by an in-process agent; a batch pilot has more nodes behind a transport.
Evict always runs. Every transition is a :class:`~pilotkit.events.PilotStateChanged`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .errors import PilotkitError
from .events import AllocationClaimed, Event, EventBus, Log, NodeReady, PilotStateChanged
from .interfaces import (
    Agent,
    AppContext,
    Bind,
    ContainerContext,
    ContainerRuntime,
    PilotContext,
    Provider,
    StagedImage,
)
from .journal import read_journals
from .plugins import Plugins
from .protocol import state_dir
from .results import ResultsWriter
from .scheduler import Resume, Task, TaskPool, task_env
from .spec import ResolvedSpec
from .types import Allocation, CarriedAttempt, NodeInfo
from .vocab import JOURNAL_DIR, RESULTS_FILE, Counts, Outcome, PilotState, task_dir

log = logging.getLogger("pilotkit.pilot")


@dataclass
class PilotOutcome:
    """How a pilot ended."""

    pilot_id: str
    state: PilotState
    reason: str | None
    workdir: Path
    results: Path
    groups: dict[str, Counts] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0
    storage: str | None = None
    """Why results could not be written (a full disk), in one line; None when they were."""

    @property
    def ok(self) -> bool:
        return self.state is PilotState.DONE


def outside_end(ended: str) -> tuple[PilotState, str]:
    """The final state and reason for what :meth:`Provider.poll` said: ``cancelled``,
    ``walltime-expired`` or ``failed``, with ``: <who or what>`` after it or not."""
    word, _, said = ended.partition(":")
    try:
        kind = PilotState(word.strip())
    except ValueError:
        kind = PilotState.FAILED
    if kind not in (PilotState.CANCELLED, PilotState.WALLTIME_EXPIRED):
        kind = PilotState.FAILED
    return kind, f"allocation ended: {said.strip() or ended.strip()}"


def unwritten_results(pilot_id: str) -> Path:
    """Where the results a full workdir could not take are kept."""
    return state_dir() / "unwritten" / f"{pilot_id}-results.jsonl"


def carried_attempts(agents: list[Agent], workdir: Path, resume: Resume) -> dict[str, CarriedAttempt]:
    """What the agents of a re-attached pilot ran while it was away: for each task not
    finished in ``resume``, its latest attempt, running or ended (from the agents that
    rejoined and from their journals in ``workdir``), at least as new as the last one
    recorded. An ended attempt wins over the same attempt still said to run."""
    found: dict[str, CarriedAttempt] = {}

    def consider(attempt: CarriedAttempt) -> None:
        if attempt.exit is not None and attempt.exit.status == Outcome.KILLED:
            # No pilot asked for it: its agent stopped it (the job ended, a signal). It
            # did not end by itself: it runs again, as one lost with its node.
            attempt = msgspec.structs.replace(attempt, exit=msgspec.structs.replace(
                attempt.exit, status=Outcome.LOST.value,
                message="stopped by its node agent while no client was attached (the job ended)"))  # fmt: skip
        prior = resume.results.get(attempt.task_id)
        if prior is not None and prior.outcome != "cancelled":
            return  # recorded already: never twice
        if attempt.attempt < resume.attempts.get(attempt.task_id, 0):
            return
        have = found.get(attempt.task_id)
        if have is None or (attempt.attempt, attempt.exit is not None) > (have.attempt, have.exit is not None):
            found[attempt.task_id] = attempt

    for agent in agents:
        for attempt in agent.carried():
            consider(attempt)
    for result in read_journals(workdir / JOURNAL_DIR):
        consider(CarriedAttempt(task_id=result.task_id, attempt=result.attempt, node=result.node,
                                start=result.start, exit=result))  # fmt: skip
    return found


def new_pilot_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class Pilot:
    """Runs one pilot spec from claim to evict."""

    POLL_INTERVAL = 5.0

    def __init__(
        self,
        spec: ResolvedSpec,
        plugins: Plugins,
        *,
        pilot_id: str | None = None,
        workdir: Path | None = None,
        bus: EventBus | None = None,
        resume: Resume | None = None,
    ) -> None:
        self.spec = spec
        self.resume = resume
        self.plugins = plugins
        self.id = pilot_id or new_pilot_id(spec.name)
        configured = spec.spec.pilot.workdir
        if workdir is None:
            root = spec.spec.pilot.workdir_root or "pilotkit-runs"
            workdir = Path(configured) if configured else Path(root) / self.id
            if not workdir.is_absolute():
                workdir = (spec.base_dir if configured else Path.cwd()) / workdir
        self.workdir = workdir
        self.results_path = workdir / RESULTS_FILE
        self.bus = bus or EventBus()
        self.state = PilotState.NEW
        self.reason: str | None = None
        self.pool: TaskPool | None = None
        self.allocation: Allocation | None = None
        self.nodes: list[NodeInfo] = []
        self._agents: list[Agent] = []
        self._stop_kind: PilotState | None = None
        """Why the pilot is stopping early: CANCELLED or WALLTIME_EXPIRED."""
        self._stop_requested = asyncio.Event()
        self._timers: list[asyncio.TimerHandle] = []
        self._poller: asyncio.Future[None] | None = None
        self._work_failed = False
        self._unwritten: Path | None = None
        """Where results the workdir could not take went (a full disk)."""
        self._detached = False
        self._joining: set[asyncio.Future[None]] = set()
        self.ctx = PilotContext(self.id, spec, workdir, self.emit)
        self.ctx._drain = self._drain_request
        self.ctx._join = self._join
        self.grace = spec.seconds(spec.spec.pilot.grace) or 0.0
        self.margin = spec.seconds(spec.spec.pilot.drain_margin) or 0.0

    # ------------------------------------------------------------------ events

    def emit(self, event: Event) -> None:
        self.bus.emit(event)
        self.plugins.emit(event)

    def _set(self, state: PilotState, reason: str | None = None) -> None:
        if state is self.state:
            return
        previous = self.state
        self.state = state
        self.emit(PilotStateChanged(pilot=self.id, state=state.value, previous=previous.value, reason=reason))

    def _log(self, level: str, message: str) -> None:
        getattr(log, level if level != "warn" else "warning")(message)
        self.emit(Log(pilot=self.id, level=level, message=message, source="pilot"))

    # ------------------------------------------------------------------ control

    def drain(self, reason: str = "drain requested", *, terminate: bool = False) -> None:
        """No new work starts. With ``terminate``, running work is stopped too."""
        self._stop(PilotState.DONE if not terminate else PilotState.CANCELLED, reason, terminate)

    def _drain_request(self, reason: str, terminate: bool) -> None:
        if self.state is PilotState.EVICTING or self.state.terminal:
            # The pilot is releasing its allocation, its end already decided: a signal
            # now is the release's own cancel of a job slow to end (a lost node's step),
            # not a cancel from outside.
            self._log("info", f"ignored while releasing the allocation: {reason}")
            return
        if terminate:
            self.cancel(reason)
        else:
            self._walltime_drain(reason)

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop everything: queued tasks are cancelled, running ones terminated."""
        self._stop(PilotState.CANCELLED, reason, terminate=True)

    def _join(self, agent: Agent) -> None:
        async def start() -> None:
            try:
                node = await agent.start()
            except Exception as exc:
                self._log("warn", f"a node that joined could not start: {exc}")
                return
            if self.state.terminal or self.state is PilotState.EVICTING:
                await agent.stop(self.grace)
                return
            self._agents.append(agent)
            self.nodes.append(node)
            self.emit(NodeReady(pilot=self.id, node=node))
            self._log("info", f"{node.name} joined the pilot")
            if self.pool is not None:
                self.pool.add_node(agent)

        self._joining.add(asyncio.ensure_future(start()))

    def detach(self) -> None:
        """Let go of the allocation without ending it (a batch pilot whose client goes
        away): queued tasks are not cancelled, and the provider (wrapped by the caller)
        keeps the agents and the allocation; cancel the run afterwards."""
        self._detached = True
        if self.pool is not None:
            handed = self.pool.hand_over()
            if handed:
                self._log("info", f"{handed} queued task(s) handed to the node agents, to start while no "
                                  "client is attached")  # fmt: skip
            self.pool.detach()

    async def flush(self) -> None:
        """Until what was sent to the agents (the tasks handed over as the pilot was
        detached) has left this process: await it before exiting."""
        await asyncio.gather(*(agent.flush() for agent in self._agents), return_exceptions=True)

    def kill(self) -> None:
        """SIGKILL every running task now (second Ctrl-C)."""
        for agent in self._agents:
            agent.kill_all()

    def _stop(self, kind: PilotState, reason: str, terminate: bool) -> None:
        if self._stop_kind is None or kind is PilotState.CANCELLED:
            if kind is not PilotState.DONE:
                self._stop_kind = kind
            self.reason = self.reason or reason
        self.ctx.draining.set()
        self._stop_requested.set()
        if self.state in (PilotState.RUNNING, PilotState.DEPLOYING):
            self._set(PilotState.DRAINING, reason)
        if self.pool is not None:
            self.pool.drain(terminate=terminate, grace=self.grace)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> PilotOutcome:
        started = time.time()
        self.workdir.mkdir(parents=True, exist_ok=True)
        results = ResultsWriter(self.results_path)
        provider = self.spec.provider_cls(self.spec, self.spec.provider_options)
        failure: str | None = None
        try:
            await self._until_stopped(self._run(provider, results))
            if self.pool is not None and self.pool.fatal and self.allocation is not None:
                await self._ended_from_outside(provider, self.allocation)
        except PilotkitError as exc:
            failure = str(exc)
        except Exception as exc:
            log.exception("pilot %s failed", self.id)
            failure = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            await self._evict(provider, results)
        if failure is not None:
            self.reason = failure
            final = PilotState.FAILED
            if self._stop_kind is PilotState.CANCELLED:
                final = PilotState.CANCELLED
        elif self._stop_kind is not None:
            final = self._stop_kind
        elif self._stop_kind is None and self.pool is not None and self.pool.fatal:
            final = PilotState.FAILED
            self.reason = self.pool.fatal
        elif self.pool is not None and self.pool.storage:
            final = PilotState.FAILED
            self.reason = self._storage_reason(results)
        elif self._work_failed or (self.pool is not None and self.pool.failed):
            final = PilotState.FAILED
            failed = self.pool.failed if self.pool is not None else 0
            self.reason = self.reason or f"{failed} task(s) failed"
        else:
            final = PilotState.DONE
        self._set(final, self.reason)
        return PilotOutcome(
            pilot_id=self.id,
            state=final,
            reason=self.reason,
            workdir=self.workdir,
            results=self.results_path,
            groups=dict(self.pool.groups) if self.pool is not None else {},
            started=started,
            ended=time.time(),
            storage=self._storage_reason(results) if self.pool is not None and self.pool.storage else None,
        )

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> None:
        """Run the lifecycle; a stop before the app runs (e.g. while queued) cancels it."""
        task = asyncio.ensure_future(work)
        while not task.done():
            stopper = asyncio.ensure_future(self._stop_requested.wait())
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if task.done():
                break
            if self.pool is None:  # stopped before there was work to drain
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return
            await task  # the app sees ctx.draining and winds down
            return
        task.result()

    async def _run(self, provider: Provider, results: ResultsWriter) -> None:
        self._set(PilotState.CLAIMING)
        allocation = await provider.claim(self.ctx)
        self.allocation = allocation
        self.emit(AllocationClaimed(pilot=self.id, allocation=allocation))
        self._arm_walltime(allocation)
        self._watch(provider, allocation)

        self._set(PilotState.PROBING)
        self._agents = await provider.agents(allocation, self.ctx)
        self.nodes = list(await asyncio.gather(*(agent.start() for agent in self._agents)))
        for node in self.nodes:
            self.emit(NodeReady(pilot=self.id, node=node))
            if node.containment:
                self._log("info", f"{node.name}: task processes contained by {node.containment}")

        if self.resume is not None:
            carried = await asyncio.to_thread(carried_attempts, self._agents, self.workdir, self.resume)
            if carried:
                self.resume.carried = carried
                running = sum(1 for c in carried.values() if c.exit is None)
                self._log("info", f"re-attached: {running} task(s) still running and "
                                  f"{len(carried) - running} finished while no client was connected")  # fmt: skip

        wrap = None
        if self.spec.runtime_cls is not None and self.spec.spec.image is not None:
            self._set(PilotState.STAGING)
            wrap = await self._stage()

        self._set(PilotState.DEPLOYING)
        deadline = None
        if allocation.walltime_end is not None:
            deadline = allocation.walltime_end - self.margin
        self.pool = TaskPool(
            self.id,
            self._agents,
            self.workdir,
            self.emit,
            results,
            grace=self.grace,
            deadline=deadline,
            wrap=wrap,
            resume=self.resume,
        )
        if self._stop_requested.is_set():
            return
        app = self.spec.app_cls(self.spec, self.spec.app_options)
        ctx = AppContext(self.ctx, self.nodes, self.pool, lambda: self._set(PilotState.RUNNING))
        await app.run(ctx)

    async def _stage(self) -> Callable[[list[str], Task, tuple[str, ...]], list[str]]:
        spec = self.spec
        assert spec.spec.image is not None and spec.runtime_cls is not None
        image: StagedImage
        if spec.stager_cls is None:
            raise PilotkitError(f"image.ref: no stager for '{spec.spec.image.ref}'")
        stager = spec.stager_cls(spec.stager_options)
        image = await stager.stage(spec.spec.image.ref, self.ctx)
        runtime: ContainerRuntime = spec.runtime_cls()
        info = await runtime.detect()
        self._log("info", f"container runtime {runtime.id}: {info.binary} {info.version}")
        image = await runtime.prepare(image, self.ctx)
        container = spec.spec.container
        assert container is not None
        binds = (*tuple(Bind.parse(b) for b in container.binds), Bind(str(self.workdir), str(self.workdir)))
        env = dict(spec.spec.env)
        options = spec.runtime_options

        def wrap(argv: list[str], task: Task, gpus: tuple[str, ...]) -> list[str]:
            tdir = task_dir(self.workdir, task.id)
            cenv = {**env, **task_env(task.env, task, tdir)}  # PILOTKIT_METRICS... inside too
            cctx = ContainerContext(
                image=image,
                binds=binds,
                env=cenv,
                workdir=str(tdir),
                gpus=gpus,
                options=options,
            )
            return runtime.wrap(argv, cctx)

        return wrap

    def _arm_walltime(self, allocation: Allocation) -> None:
        if allocation.walltime_end is None:
            return
        loop = asyncio.get_running_loop()
        now = time.time()
        drain_at = allocation.walltime_end - self.margin
        kill_at = max(drain_at, allocation.walltime_end - self.grace - 1.0)
        self._timers.append(loop.call_later(max(0.0, drain_at - now), self._walltime_drain))
        self._timers.append(loop.call_later(max(0.0, kill_at - now), self._walltime_kill))

    def _walltime_drain(self, reason: str | None = None) -> None:
        if self.state.terminal or self.state is PilotState.EVICTING:
            return
        self._log("info", reason or f"walltime ends in {self.margin:g}s: draining")
        self._stop(PilotState.WALLTIME_EXPIRED, "walltime reached", terminate=False)

    def _walltime_kill(self) -> None:
        if self.pool is not None and self.pool.running:
            self._log("warn", "walltime about to end: stopping running tasks")
            self.pool.terminate_running(self.grace)

    async def _ended_from_outside(self, provider: Provider, allocation: Allocation) -> None:
        """Every node went: find out whether the allocation was ended from outside
        (scancel, walltime) rather than lost, so the pilot ends in the right state."""
        for _ in range(10):
            ended = await provider.poll(allocation)
            if ended is not None:
                kind, reason = outside_end(ended)
                if kind is not PilotState.FAILED:
                    self._stop_kind = kind
                    self.reason = reason
                elif self.pool is not None and self.pool.fatal:
                    self.pool.fatal = f"{self.pool.fatal}; {reason}"
                return
            await asyncio.sleep(0.5)

    def _watch(self, provider: Provider, allocation: Allocation) -> None:
        async def poll() -> None:
            while True:
                await asyncio.sleep(self.POLL_INTERVAL)
                ended = await provider.poll(allocation)
                if ended is not None:
                    kind, reason = outside_end(ended)
                    if kind is PilotState.FAILED:
                        self._work_failed = True
                    self._stop(kind, reason, terminate=True)
                    return

        if type(provider).poll is not Provider.poll:
            self._poller = asyncio.ensure_future(poll())

    async def _evict(self, provider: Provider, results: ResultsWriter) -> None:
        self._set(PilotState.EVICTING, self.reason)
        for timer in self._timers:
            timer.cancel()
        if self._poller is not None:
            self._poller.cancel()
        if self.pool is not None and not self._detached:
            self.pool.drain(terminate=True, grace=self.grace)
        for agent in self._agents if not self._detached else []:
            try:
                await agent.stop(self.grace)
            except Exception as exc:
                self._log("warn", f"stopping agent on {agent.node.name} failed: {exc}")
        if self.allocation is not None:
            try:
                await provider.release(self.allocation)
            except Exception as exc:
                self._log("error", f"releasing the allocation failed: {exc}")
        self._unwritten = results.close(fallback=unwritten_results(self.id))
        if self._unwritten is not None:
            self._log("error", f"results that could not be written to {results.path} are in {self._unwritten}")

    def _storage_reason(self, results: ResultsWriter) -> str:
        """One line on a results file that could not be written."""
        assert self.pool is not None and self.pool.storage is not None
        if results.pending == 0:
            return f"{self.pool.storage.split(' (')[0]}: no task started since; every result is written now"
        where = f"; they are in {self._unwritten}" if self._unwritten else ""
        return f"{self.pool.storage.split(' (')[0]}: {results.pending} result(s) could not be written{where}"
