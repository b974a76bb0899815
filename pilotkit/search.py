"""Adaptive search: a task group whose trials a sampler plugin proposes as slots come
free (``[app.groups.search]``).

:class:`SearchRun` feeds the task pool like any group, through an iterator that gives
None while no trial is ready; the pool calls :meth:`SearchRun.ended` with each trial's
final result (on disk by then) and the sampler is told. Running trials' intermediate
reports are read every ``report_interval`` and given to the sampler, whose pruner may
stop a trial (SIGTERM; outcome ``pruned``). The sampler's calls block, so they run in
one worker thread, one at a time, in the order they were made: a tell is always made
before the ask it should inform.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import shlex
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .errors import PilotkitError
from .events import Event, GroupAdded, Log, TaskReport
from .interfaces import SearchSampler, SearchTrial
from .interfaces import TaskPool as PoolView
from .scan import TaskGroup, TasksOptions, render
from .task import Task
from .taskmetrics import Tail
from .types import NodeInfo
from .units import parse_duration
from .vocab import SEARCH_DIR, TASKS_DIR, Outcome, TaskStatus, metrics_file

if TYPE_CHECKING:
    from .scan import SearchSpec
    from .scheduler import TaskPool

T = TypeVar("T")


class SearchRun:
    """One search group of one run: its sampler, its trials, the reports poller."""

    def __init__(
        self,
        group: TaskGroup,
        options: TasksOptions,
        sampler_cls: type[SearchSampler],
        *,
        pool: PoolView,
        nodes: list[NodeInfo],
        workdir: Path,
        spec_dir: Path,
        base_env: dict[str, str],
        emit: Callable[[Event], None],
        pilot_id: str,
        make: Callable[[int, dict[str, Any]], Task] | None = None,
        slots: int | None = None,
    ) -> None:
        """``make`` and ``slots`` are for an app whose trials are not plain tasks (the
        mpi app's trials take ``k`` whole nodes): ``make(number, params)`` builds trial
        ``number``'s task and ``slots`` says how many run at once. Without them each
        trial is the group's command on ``group.cores`` cores (``group.gpus`` GPUs)."""
        assert group.search is not None and group.command is not None
        self.group = group
        self.search: SearchSpec = group.search
        self.name = group.name
        self.pool = cast("TaskPool", pool)  # the pilot's own pool: its group counts, wake, resume
        self.emit = emit
        self.pilot_id = pilot_id
        self.sampler = sampler_cls(self.search, workdir / SEARCH_DIR, group.name)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"pilotkit-search-{group.name}")
        self.budget = self.search.trials
        self._width = max(1, len(str(self.budget - 1)))
        self._retries = options.retries if group.retries is None else group.retries
        self._time_limit = parse_duration(group.time_limit) if group.time_limit is not None else None
        self._env = {**base_env, **group.env}
        self._task_root = workdir / TASKS_DIR
        self._fixed = {"group": group.name, "spec_dir": str(spec_dir), "workdir": str(workdir)}
        command = group.command
        self._command = command if group.shell or not isinstance(command, str) else shlex.split(command)
        self._make = make
        self.slots = slots if slots is not None else _slots(nodes, group, options.gpu_share)
        """How many trials run at once: as many as the nodes hold."""
        self._pending: collections.deque[Task] = collections.deque()
        """Trials of an earlier run, handed to the pool first (it skips the finished)."""
        self._ready: collections.deque[Task] = collections.deque()
        self._asking = 0
        self._made = 0
        self._outstanding = 0
        """Trials asked for (or to run again) that have not ended."""
        self._failed_before = 0
        self._exhausted = False
        self._trials: dict[str, tuple[Task, int]] = {}
        self._tails: dict[tuple[str, int], Tail] = {}
        self._pruned: set[str] = set()
        self._poller: asyncio.Task[None] | None = None
        self._read_failed = False
        self.ask_seconds = 0.0
        self.tell_seconds = 0.0
        self.asks = 0
        self.tells = 0

    # ------------------------------------------------------------ start, stop

    async def start(self) -> None:
        """Open the sampler's state; an earlier run's trials are continued: the finished
        counted, the ones it left running run again (same number, same parameters)."""
        try:
            earlier = await self._call(self.sampler.open)
        except Exception as exc:
            raise PilotkitError(
                f"search {self.name}: sampler '{self.search.sampler}' cannot open its state in "
                f"{self.sampler.directory}: {type(exc).__name__}: {exc}"
            ) from None
        results = self.pool.resume.results if self.pool.resume is not None else {}
        for trial in sorted(earlier, key=lambda t: t.number):
            task = self._task(trial)
            prior = results.get(task.id)
            if trial.state == "running" and prior is not None:  # on disk, not told yet
                state, values = self._judge(task.id, prior.outcome, prior.metrics)
                await self._call(self._tell, trial.number, state, values)
            elif trial.state == "running":
                self._outstanding += 1
            elif prior is None:  # ended failed: not run again (its results line went)
                self._failed_before += 1
                continue
            self._pending.append(task)
        self._poller = asyncio.ensure_future(self._poll())

    async def close(self) -> None:
        """After the pool is done: the last tells, then the sampler closed."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        try:
            await self._call(self.sampler.close)
        finally:
            self._executor.shutdown(wait=False)
        if self.asks:
            self.emit(Log(pilot=self.pilot_id, level="info", source="search", message=(
                f"search {self.name}: {self.asks} trial(s) asked, {self.tells} told; "
                f"ask {1000 * self.ask_seconds / self.asks:.1f} ms, "
                f"tell {1000 * self.tell_seconds / max(1, self.tells):.1f} ms per trial")))  # fmt: skip

    # ------------------------------------------------------------ the pool's source

    def tasks(self) -> Iterator[Task | None]:
        """The trials, for :meth:`TaskPool.add_group` (``total = trials``): None while
        none is ready (the pool is woken when one is)."""
        counts = self.pool.groups[self.name]
        if self._failed_before:
            counts.queued -= self._failed_before
            counts.failed += self._failed_before
            self._made = self._failed_before
        while self._pending:
            self._made += 1
            yield self._pending.popleft()
        while self._made < self.budget:
            if self._ready:
                self._made += 1
                yield self._ready.popleft()
                continue
            if self.pool.draining or (self._exhausted and not self._asking):
                left = self.budget - self._made  # never asked for: not tasks at all
                counts.total -= left
                counts.queued -= left
                self.emit(GroupAdded(pilot=self.pilot_id, group=self.name, total=-left))
                return
            self._ask_more()
            yield None

    def _ask_more(self) -> None:
        loop = asyncio.get_running_loop()
        while (
            self._outstanding < self.slots
            and self._made + len(self._ready) + self._asking < self.budget
            and not self._exhausted
        ):
            self._outstanding += 1
            self._asking += 1
            future = loop.run_in_executor(self._executor, self._ask)
            future.add_done_callback(self._asked)

    def _ask(self) -> SearchTrial | None:
        t0 = time.perf_counter()
        trial = self.sampler.ask()
        self.ask_seconds += time.perf_counter() - t0
        self.asks += 1
        return trial

    def _asked(self, future: asyncio.Future[SearchTrial | None]) -> None:
        self._asking -= 1
        error = future.exception()
        trial = None if error is not None else future.result()
        if error is not None:
            self.emit(Log(pilot=self.pilot_id, level="error", source="search",
                          message=f"search {self.name}: the sampler failed to propose a trial: {error}"))  # fmt: skip
        if trial is None:
            self._outstanding -= 1
            self._exhausted = True
        else:
            self._ready.append(self._task(trial))
        self.pool.wake()

    def _task(self, trial: SearchTrial) -> Task:
        if self._make is not None:
            task = self._make(trial.number, dict(trial.params))
            task.on_end = self.ended
            self._trials[task.id] = (task, trial.number)
            return task
        task_id = f"{self.name}-{trial.number:0{self._width}d}"
        values = {"task_id": task_id, "task_dir": str(self._task_root / task_id), "index": trial.number,
                  **self._fixed, **trial.params}  # fmt: skip
        task = Task(
            id=task_id,
            group=self.name,
            argv=render(self._command, values, shell=self.group.shell),
            params=dict(trial.params),
            cores=self.group.cores,
            gpus=self.group.gpus,
            time_limit=self._time_limit,
            retries=self._retries,
            env=self._env,
            on_end=self.ended,
        )
        self._trials[task_id] = (task, trial.number)
        return task

    # ------------------------------------------------------------ tell

    def ended(self, task: Task) -> None:
        """The pool's word that a trial has its final result (on disk)."""
        entry = self._trials.get(task.id)
        if entry is None:
            return
        self._outstanding -= 1
        if task.status is TaskStatus.CANCELLED:
            return  # never told: ``--resume`` runs it again
        state, values = self._judge(task.id, task.outcome, task.metrics)
        last = (task.id, entry[1], task.attempts)
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._tell_ended, last, state, values)
        future.add_done_callback(lambda f: self._failed("tell the sampler how a trial ended", f))

    def _failed(self, what: str, future: asyncio.Future[Any]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is not None:
            self.emit(Log(pilot=self.pilot_id, level="error", source="search",
                          message=f"search {self.name}: could not {what}: {type(error).__name__}: {error}"))  # fmt: skip

    def _tell_ended(self, trial: tuple[str, int, int], state: str, values: list[float] | None) -> None:
        """The reports the poller had not read yet (a trial quicker than
        ``report_interval`` leaves all of them), then the tell."""
        with contextlib.suppress(Exception):  # the tell matters more than the curve
            self._read([trial])
        self._tails.pop((trial[0], trial[2]), None)
        self._tell(trial[1], state, values)

    def _tell(self, number: int, state: str, values: list[float] | None) -> None:
        t0 = time.perf_counter()
        self.sampler.tell(number, state, values)
        self.tell_seconds += time.perf_counter() - t0
        self.tells += 1

    def _judge(self, task_id: str, outcome: str | None, metrics: dict[str, Any] | None) -> tuple[str, list[float] | None]:
        if outcome == Outcome.PRUNED:
            return "pruned", None
        if outcome != Outcome.OK:
            return "failed", None
        values = [_number((metrics or {}).get(key)) for key in self.search.objectives]
        if any(v is None for v in values):
            missing = ", ".join(k for k, v in zip(self.search.objectives, values, strict=True) if v is None)
            self.emit(Log(pilot=self.pilot_id, level="warning", source="search",
                          message=f"search {self.name}: trial {task_id} reported no number for {missing}: "
                                  "told as failed"))  # fmt: skip
            return "failed", None
        return "complete", [v for v in values if v is not None]

    # ------------------------------------------------------------ intermediate reports

    async def _poll(self) -> None:
        interval = parse_duration(self.search.report_interval)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            running = [
                (task.id, number, task.attempts)
                for task, number in self._trials.values()
                if task.status is TaskStatus.RUNNING and task.id not in self._pruned
            ]
            if not running:
                continue
            future = loop.run_in_executor(self._executor, self._read, running)
            try:
                found = await future
            except Exception:
                if not self._read_failed:  # said once
                    self._failed("read the running trials' reports", future)
                self._read_failed = True
                continue
            for task_id, attempt, reports, prune in found:
                task = self._trials[task_id][0]
                for i, report in enumerate(reports):
                    self.emit(TaskReport(
                        pilot=self.pilot_id, task=task_id, group=self.name, attempt=attempt,
                        step=report.get("step"), metrics=report, pruned=prune and i == len(reports) - 1,
                    ))  # fmt: skip
                if prune and task.status is TaskStatus.RUNNING and task.attempts == attempt:
                    self._pruned.add(task_id)
                    self.pool.terminate(task_id, outcome=Outcome.PRUNED)

    def _read(self, running: list[tuple[str, int, int]]) -> list[tuple[str, int, list[dict[str, Any]], bool]]:
        """New intermediate reports of running trials, each given to the sampler (a
        worker thread)."""
        out = []
        single = len(self.search.objectives) == 1
        key = self.search.objectives[0]
        for task_id, number, attempt in running:
            tail = self._tails.get((task_id, attempt))
            if tail is None:
                path = self._task_root / task_id / metrics_file(attempt)
                tail = self._tails[(task_id, attempt)] = Tail(path)
            reports = tail.read().intermediate()
            prune = False
            for report in reports:
                step, value = _number(report.get("step")), _number(report.get(key))
                if single and step is not None and value is not None and not prune:
                    prune = self.sampler.report(number, int(step), value)
            if reports:
                out.append((task_id, attempt, reports, prune))
        return out

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _slots(nodes: list[NodeInfo], group: TaskGroup, gpu_share: int) -> int:
    total = 0
    for node in nodes:
        n = node.cores // group.cores
        if group.gpus:
            n = min(n, len(node.gpus) * gpu_share // group.gpus)
        total += n
    return max(1, total)
