"""The campaign coordinator: one backlog and one ``results.jsonl`` for many
allocations, each a pilot through the spec's provider.

It starts allocations while work waits (up to ``parallel`` queued or running at once,
``max_allocations`` in all), replaces allocations that end while work remains (walltime,
idle release, a job cancelled from outside or failed), backs off after failed
submissions and pauses after ``pause_after`` of them in a row."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import SpecError, SpecProblem
from ..events import (
    AllocationClaimed,
    Event,
    EventBus,
    Log,
    NodeReady,
    PilotStateChanged,
    TaskFinished,
    TaskStarted,
)
from ..pilot import Pilot, new_pilot_id
from ..plugins import Plugins
from ..protocol import state_dir
from ..results import ResultsWriter, TaskResult
from ..scan import TasksOptions, count_tasks, iter_group
from ..scheduler import Resume
from ..spec import ResolvedSpec
from ..specfile.lines import KeyLines
from ..specfile.parsing import SEARCH_IN_CAMPAIGN
from ..task import Task
from ..types import TaskExit
from ..vocab import (
    RESULTS_FILE,
    SUCCESS_OUTCOMES,
    TASKS_DIR,
    Outcome,
    PilotState,
    TaskStatus,
    attempt_file,
    exit_code,
)
from .allocation import AllocationApp, Lender, signal_number
from .backlog import Backlog
from .local import HeldLocalProvider
from .records import (
    ALLOCATIONS_DIR,
    CAMPAIGN_FILE,
    AllocationRecord,
    CampaignStatus,
    minimum_allocations,
    write_status,
)

Say = Callable[[str], None]
"""Where the campaign's progress lines go (one line each, no newline)."""


def registry_path(name: str) -> Path:
    """Where the last campaign named ``name`` (or the campaign whose id is ``name``) is
    registered: the path of its ``campaign.json`` (so ``pilotkit status NAME`` finds it)."""
    return state_dir() / "campaigns" / name


@dataclasses.dataclass
class CampaignOutcome:
    state: PilotState
    reason: str | None
    status: CampaignStatus

    @property
    def exit_code(self) -> int:
        return exit_code(self.state)


class Campaign:
    """Runs a spec with a ``[campaign]`` table to the end of its backlog."""

    STATUS_INTERVAL = 1.0
    """Seconds between writes of ``campaign.json``."""

    def __init__(
        self,
        spec: ResolvedSpec,
        plugins: Plugins,
        *,
        campaign_id: str | None = None,
        workdir: Path | None = None,
        say: Say | None = None,
        resume: Resume | None = None,
    ) -> None:
        config = spec.spec.campaign
        assert config is not None, "a campaign needs a [campaign] table"
        self.spec = spec
        self.config = config
        self.plugins = plugins
        self.id = campaign_id or new_pilot_id(spec.name)
        if workdir is None:
            configured = spec.spec.pilot.workdir
            root = spec.spec.pilot.workdir_root or "pilotkit-runs"
            workdir = Path(configured) if configured else Path(root) / self.id
            if not workdir.is_absolute():
                workdir = (spec.base_dir if configured else Path.cwd()) / workdir
        self.workdir = workdir
        self.say: Say = say or (lambda line: None)
        self.tasks_options: TasksOptions = spec.app_options
        self.idle_timeout = spec.seconds(config.idle_timeout) or 0.0
        self.backoff = spec.seconds(config.submit_backoff) or 10.0
        self.backoff_max = spec.seconds(config.submit_backoff_max) or 1800.0
        self.checkpoint_signal = signal_number(config.checkpoint_signal)
        self.stopping = False
        """Cancelled: allocations keep no task back; what waits is reported cancelled."""
        self.paused: str | None = None
        self.draining: str | None = None
        """Why the campaign drains (SIGUSR1): no new allocation or task."""
        self.records: list[AllocationRecord] = []
        self._lenders: dict[str, Lender] = {}
        self._pilots: dict[str, Pilot] = {}
        self._runs: set[asyncio.Future[None]] = set()
        self._failures_in_row = 0
        self._next_submit = 0.0
        self._stop_reason: str | None = None
        self._attempt_start: dict[str, float] = {}
        self.done = 0
        self.failed = 0
        self.core_seconds = 0.0
        self.started = time.time()
        self._wake: asyncio.Event | None = None
        self._writing: asyncio.Future[None] | None = None
        self._final = False
        self._dirty = False
        self.resume = resume
        self.closed = False
        """Its loop has ended: no task can be added."""
        self.groups = {group.name for group in self.tasks_options.groups}
        self.backlog = self._backlog()
        self.results = ResultsWriter(self.workdir / RESULTS_FILE)

    def _backlog(self) -> Backlog:
        options = self.tasks_options
        env = dict(self.spec.spec.env)
        sources = [
            (self._resumed(iter_group(group, options, workdir=self.workdir, spec_dir=self.spec.base_dir,
                                      base_env=env)), count_tasks(group))
            for group in options.groups
        ]  # fmt: skip
        backlog = Backlog(sources)
        if self.resume is not None:  # their lines stay in results.jsonl
            backlog.skipped(len(self.resume.results))
        return backlog

    def add_groups(self, more: ResolvedSpec, text: str) -> int:
        """Add the task groups of another spec (``pilotkit submit more.toml --to NAME``)
        to the backlog; their tasks run in this campaign's directory with its options.
        ``text``: ``more``'s TOML text. Returns how many tasks were added. Raises :class:`~pilotkit.errors.SpecError`
        naming the file and line of a group that cannot be added."""
        problems: list[SpecProblem] = []
        lines = KeyLines(text)
        fname = str(more.source) if more.source else "<spec>"
        options = more.app_options
        if more.spec.app.type != "tasks" or not isinstance(options, TasksOptions):
            file, key, line = lines.where("app.type")
            raise SpecError([SpecProblem(key, f"a campaign runs the tasks app, not '{more.spec.app.type}'",
                                         file=file or fname, line=line)])  # fmt: skip
        names: set[str] = set()
        for i, group in enumerate(options.groups):
            if group.name in self.groups or group.name in names:
                file, key, line = lines.where(f"app.groups[{i}].name")
                problems.append(SpecProblem(key, f"campaign {self.id} has a group '{group.name}' already",
                                            file=file or fname, line=line))  # fmt: skip
            names.add(group.name)
            if group.search is not None:
                file, key, line = lines.where(f"app.groups[{i}].search")
                problems.append(SpecProblem(key, SEARCH_IN_CAMPAIGN, file=file or fname, line=line))
        if not options.groups:
            problems.append(SpecProblem("app.groups", "no task group to add", file=fname))
        if problems:
            raise SpecError(problems)
        env = {**self.spec.spec.env, **more.spec.env}
        added = 0
        for group in options.groups:
            count = count_tasks(group)
            tasks = iter_group(group, self.tasks_options, workdir=self.workdir, spec_dir=more.base_dir, base_env=env)
            self.backlog.add(self._resumed(tasks), count)
            self.groups.add(group.name)
            added += count
        self.say(f"campaign {self.id}: {added} task(s) added from {fname}")
        self._poke()
        return added

    def _resumed(self, tasks: Iterator[Task]) -> Iterator[Task]:
        """Without the tasks an earlier run finished ok; the others' new attempts are
        numbered after the earlier ones, which count as interrupted, not failed. A task
        whose attempt ended ok on an allocation of the earlier run after its last word
        (``resume.carried``, from the agents' journals) gets its line now, and does not
        run again."""
        resume = self.resume
        for task in tasks:
            if resume is not None:
                if task.id in resume.results:
                    continue
                kept = resume.carried.pop(task.id, None)
                if kept is not None and kept.exit is not None and kept.exit.status == Outcome.OK:
                    resume.results[task.id] = self._carried_result(task, kept.exit)
                    self.backlog.skipped(1)
                    continue
                task.attempts = task.preempted = resume.attempts.get(task.id, 0)
            yield task

    def _carried_result(self, task: Task, exit: TaskExit) -> TaskResult:
        tdir = self.workdir / TASKS_DIR / task.id
        result = TaskResult(
            task=task.id, group=task.group, params=task.params, status=Outcome.OK, outcome=Outcome.OK,
            exit_code=exit.exit_code, attempts=exit.attempt, node=exit.node, start=exit.start, end=exit.end,
            duration=exit.end - exit.start, stdout=str(tdir / attempt_file(exit.attempt, "out")),
            stderr=str(tdir / attempt_file(exit.attempt, "err")),
        )  # fmt: skip
        self.results.write(result)
        self.say(f"task {task.id} ended ok on {exit.node} after the earlier run's last word: recorded, not run again")
        return result

    # ------------------------------------------------------------------ control

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop every allocation's tasks; what did not run is reported cancelled."""
        if self.stopping:
            for pilot in self._pilots.values():
                pilot.kill()
            return
        self.stopping = True
        self._stop_reason = reason
        for pilot in self._pilots.values():
            pilot.cancel(reason)
        self._poke()

    def drain(self, reason: str = "drain requested") -> None:
        """Start no allocation and no task; running tasks finish, and what did not run is
        reported cancelled (the campaign ends done, as a drained pilot does)."""
        if self.draining is None:
            self.draining = reason
            self.say(f"campaign {self.id}: draining: {reason}")
            for pilot in self._pilots.values():
                pilot.drain(reason)
            self._poke()

    def give_back(self, task: Task) -> None:
        """An allocation's end interrupted ``task``: it runs again in another."""
        self.backlog.give_back(task)
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()
        for lender in self._lenders.values():
            lender.wake.set()
        self._changed()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> CampaignOutcome:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._wake = asyncio.Event()
        self._register()
        self.say(f"campaign {self.id}: {self.backlog.total} task(s), allocations of "
                 f"{self.spec.spec.resources.walltime}, {self.config.parallel} at once, "
                 f"at most {self.config.max_allocations}; results in {self.results.path}")  # fmt: skip
        state, reason = PilotState.DONE, None
        try:
            while True:
                self._submit_more()
                alive = bool(self._runs)
                if not alive and (self.backlog.done or self.stopping):
                    break
                if not alive and self.backlog.waiting and not self._may_submit():
                    break
                if not alive and not self.backlog.waiting:
                    break  # lent tasks whose allocations ended without their result: recorded lost
                self._wake.clear()
                timeout = 1.0
                if self._next_submit > time.time():
                    timeout = min(timeout, self._next_submit - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.05, timeout))
        except asyncio.CancelledError:
            self.cancel("interrupted")
            await asyncio.gather(*self._runs, return_exceptions=True)
            raise
        finally:
            state, reason = self._finish()
        self.say(f"campaign {self.id}: {state.value}" + (f": {reason}" if reason else ""))
        status = self.status(state.value, reason)
        self._final = True  # no periodic write after this one
        if self._writing is not None:
            await asyncio.wait({self._writing})
        await asyncio.to_thread(write_status, self.workdir / CAMPAIGN_FILE, status)
        return CampaignOutcome(state, reason, status)

    def _used(self) -> int:
        return sum(1 for r in self.records if not r.submit_failed)

    def _may_submit(self) -> bool:
        """Whether another allocation may still start (now or after its back-off)."""
        return (not self.stopping and self.paused is None and self.draining is None
                and self._used() < self.config.max_allocations)  # fmt: skip

    def _submit_more(self) -> None:
        waiting = self.backlog.waiting
        if not waiting or not self._may_submit() or time.time() < self._next_submit:
            return
        per = self.config.backlog_per_allocation
        target = min(self.config.parallel, math.ceil(waiting / per) if per else self.config.parallel)
        active = sum(1 for r in self.records if r.active)
        if active < target and self._used() < self.config.max_allocations:
            self._start_allocation()

    def _start_allocation(self) -> None:
        record = AllocationRecord(name=f"{self.id}-a{len(self.records) + 1}", submitted=time.time(),
                                  provider=self.spec.provider_cls.id)  # fmt: skip
        self.records.append(record)
        lender = Lender(self, record)
        provider_cls = HeldLocalProvider if self.spec.provider_cls.id == "local" else self.spec.provider_cls
        spec = dataclasses.replace(self.spec, app_cls=AllocationApp, app_options=lender, provider_cls=provider_cls)
        bus = EventBus()
        pilot = Pilot(spec, self.plugins, pilot_id=record.name, bus=bus,
                      workdir=self.workdir / ALLOCATIONS_DIR / record.name)  # fmt: skip
        if provider_cls is HeldLocalProvider:
            pilot.POLL_INTERVAL = 1.0
        bus.subscribe(lambda event: self._event(record, pilot, event))
        self._lenders[record.name] = lender
        self._pilots[record.name] = pilot
        self.say(f"allocation {record.name}: submitted ({record.provider})")
        run = asyncio.ensure_future(self._allocation(record, pilot, lender))
        self._runs.add(run)
        run.add_done_callback(self._runs.discard)
        self._changed()

    async def _allocation(self, record: AllocationRecord, pilot: Pilot, lender: Lender) -> None:
        try:
            outcome = await pilot.run()
            state, why = outcome.state, lender.released or outcome.reason or outcome.state.value
        except Exception as exc:  # a pilot always returns; this is a bug, kept to this allocation
            state, why = PilotState.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self._lenders.pop(record.name, None)
            self._pilots.pop(record.name, None)
        record.state = "ended"
        record.ended = time.time()
        record.why = why
        job = f" ({record.provider} job {record.job_id})" if record.job_id else ""
        if record.claimed is None and state is PilotState.FAILED and not self.stopping:
            record.submit_failed = True
            self._failures_in_row += 1
            delay = min(self.backoff_max, self.backoff * 2.0 ** (self._failures_in_row - 1))
            self._next_submit = time.time() + delay
            if self._failures_in_row >= self.config.pause_after:
                self.paused = (f"paused: {self._failures_in_row} allocations in a row failed to start; "
                               f"the last: {why}")  # fmt: skip
                self.say(f"campaign {self.id}: {self.paused}")
            else:
                self.say(f"allocation {record.name}: failed to start ({why}); next try in {delay:g}s")
        else:
            self._failures_in_row = 0
            self.say(f"allocation {record.name}{job}: ended: {why}; {record.ok} task(s) ok, "
                     f"{record.preempted} back to the backlog")  # fmt: skip
        self._poke()

    def _event(self, record: AllocationRecord, pilot: Pilot, event: Event) -> None:
        now = time.time()
        if isinstance(event, TaskStarted):
            if record.running is None:
                record.running = now
                self.say(f"allocation {record.name}" + (f" ({record.provider} job {record.job_id})"
                         if record.job_id else "") + ": running tasks")  # fmt: skip
            self._attempt_start[event.task] = now
        elif isinstance(event, TaskFinished):
            task = pilot.pool.tasks.get(event.task) if pilot.pool is not None else None
            cores = task.cores if task is not None else 1
            record.busy += event.duration * cores
            kept = event.status in SUCCESS_OUTCOMES or (
                event.status == Outcome.PREEMPTED and task is not None and task.checkpoint
            )  # a checkpointing task's attempt up to its drain point is work it keeps
            self.core_seconds += event.duration * cores if kept else 0.0
            if event.final:
                self.backlog.ended(event.task)
                if event.status in SUCCESS_OUTCOMES:
                    record.ok += 1
                    self.done += 1
                elif event.status != Outcome.CANCELLED:
                    record.failed += 1
                    self.failed += 1
                    self.say(f"task {event.task} {event.status} (exit {event.exit_code}) on {record.name}")
                lender = self._lenders.get(record.name)
                if lender is not None:
                    lender.wake.set()
            if self._wake is not None:
                self._wake.set()
        elif isinstance(event, AllocationClaimed):
            record.job_id = event.allocation.job_id
            record.claimed = now
            self.say(f"allocation {record.name}: {record.provider} job {record.job_id} started on "
                     f"{','.join(event.allocation.nodes)}")  # fmt: skip
        elif isinstance(event, NodeReady):
            record.cores += event.node.cores
        elif isinstance(event, PilotStateChanged):
            if event.state == PilotState.RUNNING and record.state == "queued":
                record.state = "running"
            elif event.state == PilotState.DRAINING and record.state in ("queued", "running"):
                record.state = "draining"
                record.drained = now
        elif isinstance(event, Log) and event.level in ("error", "warn"):
            self.say(f"allocation {record.name}: {event.message}")
        self._changed()

    def _finish(self) -> tuple[PilotState, str | None]:
        """Report every task that never got a result and close the results file."""
        self.closed = True
        left = self.backlog.drop_all()
        unheard = [t for t in self.backlog.lent.values() if t.status in (TaskStatus.QUEUED, TaskStatus.RUNNING)]
        for task in unheard:  # defensive: an allocation ended without a word on them
            self.results.write(TaskResult(
                task=task.id, group=task.group, params=task.params, status=Outcome.LOST, outcome=Outcome.LOST,
                exit_code=None, attempts=task.attempts - task.preempted, node=task.node, start=task.start,
                end=task.end, duration=None, stdout=None, stderr=None,
            ))  # fmt: skip
        for task in left:
            self.results.write(TaskResult(
                task=task.id, group=task.group, params=task.params, status=Outcome.CANCELLED,
                outcome=Outcome.CANCELLED, exit_code=None, attempts=task.attempts - task.preempted,
                node=task.node, start=task.start, end=task.end, duration=None, stdout=None, stderr=None,
            ))  # fmt: skip
        self.results.close()
        if self.stopping:
            return PilotState.CANCELLED, self._stop_reason
        if left:
            if self.draining is not None:
                return PilotState.DONE, f"drained ({self.draining}): {len(left)} task(s) not run"
            if self.paused is not None:
                return PilotState.FAILED, f"{self.paused}; {len(left)} task(s) not run"
            return PilotState.FAILED, (f"needs more than max_allocations = {self.config.max_allocations}: "
                                       f"{len(left)} task(s) not run")  # fmt: skip
        if unheard:
            return PilotState.FAILED, f"{len(unheard)} task(s) ended with their allocation without a result (lost)"
        if self.failed:
            return PilotState.FAILED, f"{self.failed} task(s) failed"
        return PilotState.DONE, None

    # ------------------------------------------------------------------ status

    def status(self, state: str | None = None, reason: str | None = None) -> CampaignStatus:
        finished = state is not None
        minimum = None
        walltime = self.spec.walltime
        margin = self.spec.seconds(self.spec.spec.pilot.drain_margin) or 0.0
        cores = max((r.cores for r in self.records), default=0)
        if finished and walltime:
            minimum = minimum_allocations(self.core_seconds, cores, walltime - margin)
        running = self.backlog.out
        resumed = len(self.resume.results) if self.resume is not None else 0
        return CampaignStatus(
            name=self.spec.name, id=self.id,
            state=state or ("paused" if self.paused else "running"), reason=reason or self.paused,
            workdir=str(self.workdir), results=str(self.results.path), started=self.started,
            ended=time.time() if finished else None, pid=os.getpid(), total=self.backlog.total + resumed,
            waiting=self.backlog.waiting, running=running, done=self.done + resumed, failed=self.failed,
            resumed=resumed,
            max_allocations=self.config.max_allocations, parallel=self.config.parallel,
            min_allocations=minimum, allocations=list(self.records),
        )  # fmt: skip

    def _changed(self) -> None:
        """Write ``campaign.json`` soon (at most once a STATUS_INTERVAL, off the loop)."""
        self._dirty = True
        if self._writing is not None or self._wake is None or self._final:
            return
        self._dirty = False
        status = self.status()
        self._writing = asyncio.ensure_future(asyncio.to_thread(write_status, self.workdir / CAMPAIGN_FILE, status))

        def written(_: asyncio.Future[None]) -> None:
            def again() -> None:
                self._writing = None
                if self._dirty:
                    self._changed()

            if not self._final:
                asyncio.get_running_loop().call_later(self.STATUS_INTERVAL, again)

        self._writing.add_done_callback(written)

    def _register(self) -> None:
        """Register it under its name (the last campaign of that name) and its id."""
        for key in (self.spec.name, self.id):
            path = registry_path(key)
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(str(self.workdir / CAMPAIGN_FILE) + "\n")
