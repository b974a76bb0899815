"""The task pool: places task attempts on free slots of the pilot's node agents.

Event-driven: a slot is filled from the exit callback of the attempt that freed it; no
polling anywhere in the dispatch path. Cores and GPUs are slots; a task asking for
``gpus = N`` gets N distinct GPUs (UUIDs in ``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import json
import os
import random
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import msgspec

from . import taskmetrics
from .events import Event, GroupAdded, Log, TaskCancelled, TaskFinished, TaskStarted
from .interfaces import Agent
from .results import ResultsWriter, TaskResult
from .task import Task as Task  # re-exported: its home before 0.2
from .types import CarriedAttempt, NodeInfo, TaskExit, TaskLaunch
from .vocab import (
    PIDS_DIR,
    TASKS_DIR,
    Counts,
    Outcome,
    TaskStatus,
    attempt_file,
    final_status,
    metrics_file,
    pid_file,
)

Wrap = Callable[[list[str], "Task", tuple[str, ...]], list[str]]
"""Turns a task's argv into what the agent runs (a container runtime's wrap)."""


@dataclass
class Resume:
    """What an earlier run of the same pilot finished, for a restart (daemon crash).

    Tasks with a final result are not run again; a task that was running when the
    earlier run died gets a new attempt number after the ones recorded."""

    results: dict[str, TaskResult] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    carried: dict[str, CarriedAttempt] = field(default_factory=dict)
    """Attempts the node agents of a re-attached batch pilot kept while it was away:
    taken over (still running) or recorded (ended), not run again."""


class CampaignLink(Protocol):
    """The campaign (:mod:`pilotkit.campaign`) that lends a pool its tasks."""

    allocation: str
    """The allocation's name, recorded with each result."""

    def take_back(self, task: Task) -> bool:
        """An attempt of ``task`` was stopped by its allocation's end or lost with it:
        True when the campaign queued the task again (nothing is recorded here)."""
        ...


GroupCounts = Counts
"""The counts of one task group (the shared :class:`pilotkit.vocab.Counts`)."""


class _Node:
    __slots__ = ("agent", "free_cores", "gpu_free", "info", "leased", "name", "revoking")

    def __init__(self, agent: Agent, info: NodeInfo, gpu_share: int) -> None:
        self.agent = agent
        self.info = info
        self.name = info.name
        self.free_cores = info.cores
        self.gpu_free: dict[str, int] = {g.uuid: gpu_share for g in info.gpus}
        self.leased: dict[str, Task] = {}
        """Queued tasks leased to this node's agent (see :meth:`TaskPool._top_up`)."""
        self.revoking: dict[str, Task] = {}
        """Leased tasks asked back, until the agent says it dropped them."""

    @classmethod
    def gone(cls, name: str) -> _Node:
        """A node of an earlier allocation, not in this pool: an attempt that ended there
        is recorded against it; nothing is ever placed on it."""
        return cls(cast(Agent, None), NodeInfo(name=name, cores=0, memory=0), 1)

    def fits(self, task: Task) -> bool:
        if task.cores > self.free_cores or self.agent.lost is not None:
            return False
        if task.pin is not None and task.pin != self.name:
            return False
        if task.gpus:
            return sum(1 for n in self.gpu_free.values() if n > 0) >= task.gpus
        return True

    def take(self, task: Task) -> tuple[str, ...]:
        self.free_cores -= task.cores
        if not task.gpus:
            return ()
        ranked = sorted((uuid for uuid, n in self.gpu_free.items() if n > 0), key=lambda u: -self.gpu_free[u])
        chosen = tuple(ranked[: task.gpus])
        for uuid in chosen:
            self.gpu_free[uuid] -= 1
        return chosen

    def give(self, task: Task, gpus: tuple[str, ...]) -> None:
        self.free_cores += task.cores
        for uuid in gpus:
            self.gpu_free[uuid] += 1

    def idle(self, share: int) -> bool:
        return (
            self.agent.lost is None
            and self.free_cores == self.info.cores
            and all(n == share for n in self.gpu_free.values())
        )

    def take_all(self) -> tuple[int, dict[str, int]]:
        taken = (self.free_cores, dict(self.gpu_free))
        self.free_cores = 0
        self.gpu_free = dict.fromkeys(self.gpu_free, 0)
        return taken

    def give_all(self, taken: tuple[int, dict[str, int]]) -> None:
        self.free_cores += taken[0]
        for uuid, n in taken[1].items():
            self.gpu_free[uuid] += n


class TaskPool:
    """Queues tasks and runs them on the agents' free slots until all are finished."""

    PREPARE_AHEAD = 256
    """How many queued tasks get their directories and log files made ahead of time,
    in a worker thread, so the dispatcher does not wait on the filesystem."""
    BACKFILL_WINDOW = 64
    """How far past a head task that fits nowhere the dispatcher looks for one that fits."""
    CRASH_LIMIT = 2
    """A task whose attempts were lost with their node this many times is not run again:
    it may be what kills the nodes."""

    def __init__(
        self,
        pilot_id: str,
        agents: Sequence[Agent],
        workdir: Path,
        emit: Callable[[Event], None],
        results: ResultsWriter,
        *,
        grace: float = 10.0,
        deadline: float | None = None,
        gpu_share: int = 1,
        wrap: Wrap | None = None,
        resume: Resume | None = None,
    ) -> None:
        self.pilot_id = pilot_id
        self.workdir = workdir
        self.emit = emit
        self.results = results
        self.grace = grace
        self.deadline = deadline
        """Epoch seconds after which no task may still be running (walltime - margin)."""
        self.wrap = wrap
        self.nodes = [_Node(a, a.node, gpu_share) for a in agents]
        self._leasing = any(a.leasing for a in agents)
        self._leased = 0
        """Tasks leased to the agents (or being asked back): queued, not in :attr:`queue`."""
        self.queue: collections.deque[Task] = collections.deque()
        self.tasks: dict[str, Task] = {}
        self.groups: dict[str, Counts] = {}
        self._running: dict[str, tuple[Task, _Node, tuple[str, ...]]] = {}
        self._gangs: dict[str, list[tuple[_Node, tuple[int, dict[str, int]]]]] = {}
        self._gpu_share = gpu_share
        self._stopped: dict[str, Outcome] = {}
        """Tasks their app stopped, and the outcome they end with."""
        self._backoff: dict[str, asyncio.TimerHandle] = {}
        self._sources: collections.deque[tuple[Counts, Iterator[Task | None]]] = collections.deque()
        """Groups' tasks not made yet (an iterator each, with its group's counts); an
        iterator may give None for "none yet, call :meth:`wake` when there are"."""
        """Failed tasks waiting out their retry delay."""
        self._to_prepare: collections.deque[Task] = collections.deque()
        self._prepared: set[str] = set()
        self._preparing: asyncio.Future[None] | None = None
        self._draining = False
        self._cancelling: asyncio.Future[None] | None = None
        self._detached = False
        self._done = asyncio.get_running_loop().create_future()
        self._task_root = workdir / TASKS_DIR
        self.resume = resume
        self.fatal: str | None = None
        """Why the pool cannot go on (every node lost)."""
        self.storage: str | None = None
        """Why results could not be written (a full disk): no task started since."""
        self.campaign: CampaignLink | None = None
        self._preempting: set[str] = set()

    # ---------------------------------------------------------------- adding work

    def add_node(self, agent: Agent) -> None:
        """A node that joined the pilot while it runs (a replacement for a lost one)."""
        self.nodes.append(_Node(agent, agent.node, self._gpu_share))
        self._leasing = self._leasing or (agent.leasing and self.campaign is None)
        self._dispatch()
        self._check_done()

    def set_gpu_share(self, share: int) -> None:
        """Let ``share`` tasks use one GPU at once (before any task runs)."""
        self._gpu_share = share
        for node in self.nodes:
            node.gpu_free = dict.fromkeys(node.gpu_free, share)

    FILL_AHEAD = 4096
    """How many tasks of a group added as an iterator are made ahead of the dispatcher."""

    def add_group(self, group: str, tasks: Iterable[Task | None], total: int | None = None) -> None:
        """Queue ``tasks``: a sequence, or an iterator of ``total`` tasks that are made
        as slots come free (a huge scan is never in memory at once; an adaptive search
        gives None while it has no task ready)."""
        counts = self.groups.setdefault(group, Counts())
        if total is None:
            tasks = list(tasks)
            total = len(tasks)
        counts.total += total
        counts.queued += total
        self._sources.append((counts, iter(tasks)))
        self.emit(GroupAdded(pilot=self.pilot_id, group=group, total=total))
        if self._done.done():  # more work after an idle moment
            self._done = asyncio.get_running_loop().create_future()
        self._dispatch()
        self._prepare_ahead()

    def _fill(self) -> None:
        """Make tasks of the groups' iterators until FILL_AHEAD are queued."""
        if self._draining:
            return  # what is not made yet is cancelled by _cancel_unmade
        resume = self.resume
        waiting = 0  # sources in a row with nothing to give yet
        while (
            self._sources
            and waiting < len(self._sources)
            and (len(self.queue) < self.FILL_AHEAD or (resume is not None and resume.carried))
        ):  # a re-attached pilot finds every attempt it takes over before it places others
            counts, source = self._sources[0]
            item = next(source, _END)
            if item is _END:
                self._sources.popleft()
                continue
            if item is None:  # nothing yet (an adaptive search waiting on its sampler)
                self._sources.rotate(-1)
                waiting += 1
                continue
            waiting = 0
            task = cast(Task, item)
            self.tasks[task.id] = task
            if resume is not None and resume.carried and self._adopt(task, counts, resume.carried):
                continue
            if resume is not None and self._ended_before(task, counts, resume):
                continue
            self.queue.append(task)
            self._to_prepare.append(task)

    @staticmethod
    def _ended_before(task: Task, counts: Counts, resume: Resume) -> bool:
        """Whether ``task`` ended in the run being resumed (then it takes that end, in
        ``counts`` too, and does not run again)."""
        prior = resume.results.get(task.id)
        task.attempts = max(resume.attempts.get(task.id, 0), prior.attempts if prior else 0)
        if prior is None or prior.outcome == Outcome.CANCELLED:
            return False
        task.status = final_status(prior.outcome or Outcome.FAILED)
        task.exit_code, task.node, task.outcome = prior.exit_code, prior.node, prior.outcome
        task.metrics = prior.metrics
        counts.queued -= 1
        if task.status is TaskStatus.DONE:
            counts.done += 1
        else:
            counts.failed += 1
        return True

    def _adopt(self, task: Task, counts: Counts, carried: dict[str, CarriedAttempt]) -> bool:
        """Take over ``task``'s attempt that an agent kept while the pilot was away."""
        kept = carried.pop(task.id, None)
        if kept is None:
            return False
        node = next((n for n in self.nodes if n.name == kept.node), None)
        if node is None and kept.exit is not None:  # ended on a node that did not come back
            node = _Node.gone(kept.node)  # only to record it
        if node is None:
            return False  # it ran on a node that is gone, and went with it: run again
        task.attempts = kept.attempt
        task.status = TaskStatus.RUNNING
        task.node = kept.node
        task.start = kept.start or time.time()
        counts.queued -= 1
        counts.running += 1
        gpus: tuple[str, ...] = ()
        if task.whole_nodes:
            # Its other nodes are not known here: they may take other tasks meanwhile.
            self._gangs[task.id] = [(node, node.take_all())]
        else:
            gpus = node.take(task)
        self._running[task.id] = (task, node, gpus)
        self.emit(TaskStarted(pilot=self.pilot_id, task=task.id, group=task.group, attempt=task.attempts,
                              node=node.name, gpus=list(gpus)))  # fmt: skip
        if kept.exit is not None:
            asyncio.get_running_loop().call_soon(self._exited, kept.exit)
        else:
            node.agent.adopt(task.id, kept.attempt, self._exited)
        return True

    def _launch_of(self, task: Task, env: dict[str, str], gpus: tuple[str, ...]) -> TaskLaunch:
        """What an agent runs for ``task``'s attempt ``task.attempts``."""
        tdir = self._task_root / task.id
        return TaskLaunch(
            task_id=task.id,
            attempt=task.attempts,
            argv=task.argv if self.wrap is None else self.wrap(task.argv, task, gpus),
            cwd=str(tdir),
            stdout=str(tdir / attempt_file(task.attempts, "out")),
            stderr=str(tdir / attempt_file(task.attempts, "err")),
            env=task_env(env, task, tdir),
            cores=task.cores,
            gpus=list(gpus),
            time_limit=task.time_limit,
            pid_file=str(pid_file(self.workdir, task.id, task.attempts)),
        )

    HAND_OVER_LIMIT = 4096
    """The most queued tasks handed over to the agents when the pilot lets go of them."""

    def hand_over(self) -> int:
        """Before the pilot lets go of its agents (:meth:`detach`): hand each agent that
        can take them the next queued tasks, spread over the nodes by cores, for it to
        start on its own while no pilot is attached, so the allocation stays busy. Only
        plain tasks go (no GPU, no gang of nodes; at most :attr:`HAND_OVER_LIMIT`); the
        pilot that comes back learns from the agents and their journals which ones ran.
        Returns how many the agents hold now (their standing leases too)."""
        nodes = [n for n in self.nodes if n.agent.lost is None and n.info.cores > 0]
        if not nodes or self._detached:
            return 0
        load = {n.name: float(n.info.cores - n.free_cores + len(n.leased)) for n in nodes}
        plan: dict[str, list[Task]] = {}
        for task in itertools.islice(self.queue, self.HAND_OVER_LIMIT):
            if task.gpus or task.whole_nodes or task.status is not TaskStatus.QUEUED:
                continue
            fits = [n for n in nodes if n.info.cores >= task.cores and task.pin in (None, n.name)]
            if not fits:
                continue
            node = min(fits, key=lambda n: load[n.name] / n.info.cores)
            load[node.name] += task.cores
            plan.setdefault(node.name, []).append(task)
        handed = sum(len(n.leased) for n in nodes)  # their standing leases go on too
        for node in nodes:
            tasks = plan.get(node.name, [])
            if not tasks:
                continue
            launches = [self._next_launch(task) for task in tasks]
            if node.agent.hand_over(launches):
                handed += len(launches)
                for task in tasks:
                    task.attempts += 1  # the attempt the agent starts it as is made
        return handed

    def _next_launch(self, task: Task) -> TaskLaunch:
        """The launch of ``task``'s next attempt (numbered one more than those made so far)
        for an agent to start on its own, without counting it as made."""
        task.attempts += 1
        try:
            return self._launch_of(task, task.env, ())
        finally:
            task.attempts -= 1

    # ---------------------------------------------------------------- leases

    LEASE_MAX = 64
    """The most queued tasks leased to one node agent at a time (up to its cores)."""

    def _top_up(self) -> None:
        """Keep each node agent that can take one supplied with a standing lease of the
        next queued plain tasks (no GPU, no gang of nodes; up to its cores): reserved for
        it, started by the pilot there (:meth:`_launch_leased`), by the agent itself only
        once no pilot is attached (the pilot's process was killed, with no chance to
        :meth:`hand_over`). A leased task is placed elsewhere only after its agent gave it
        back (:meth:`_steal`, :meth:`drain`), or the agent was lost."""
        queue = self.queue
        for node in self.nodes:
            if not queue:
                return
            want = min(node.info.cores, self.LEASE_MAX) - len(node.leased)
            if want <= 0 or not node.agent.leasing or node.agent.lost is not None:
                continue
            taken: list[Task] = []
            kept: list[Task] = []
            for _ in range(min(len(queue), self.BACKFILL_WINDOW)):
                task = queue.popleft()
                plain = not task.gpus and not task.whole_nodes and task.status is TaskStatus.QUEUED
                if plain and task.cores <= node.info.cores and task.pin in (None, node.name) and self._in_time(task):
                    taken.append(task)
                    if len(taken) == want:
                        break
                else:
                    kept.append(task)
            queue.extendleft(reversed(kept))
            if not taken:
                continue
            launches = [self._next_launch(task) for task in taken]  # the number it starts as, wherever
            if node.agent.lease(launches, functools.partial(self._lease_back, node)):
                node.leased.update((task.id, task) for task in taken)
                self._leased += len(taken)
            else:
                queue.extendleft(reversed(taken))

    def _launch_leased(self) -> None:
        """Nodes with free cores start their own leased tasks first (in order)."""
        for node in self.nodes:
            if not node.leased or node.free_cores <= 0 or node.agent.lost is not None:
                continue
            for task in list(node.leased.values()):
                if node.free_cores <= 0:
                    break
                if node.fits(task) and self._in_time(task):
                    del node.leased[task.id]
                    self._leased -= 1
                    self._launch(task, node)  # the agent takes it off its lease

    def _steal(self) -> None:
        """Nothing queued, yet a node has free cores that another node's leased task
        fits: ask that agent for it back; it is placed once the agent says it dropped it
        (:meth:`_lease_back`)."""
        free = {n.name: n.free_cores for n in self.nodes if n.free_cores > 0 and n.agent.lost is None}
        if not free:
            return
        budget = sum(free.values()) - sum(t.cores for n in self.nodes for t in n.revoking.values())
        for node in sorted((n for n in self.nodes if n.leased), key=lambda n: -len(n.leased)):
            if budget <= 0:
                return
            asked = []
            for task in reversed(list(node.leased.values())):  # its last ones: it starts the first ones
                fits = any(f >= task.cores and name != node.name and task.pin in (None, name) for name, f in free.items())
                if fits and task.cores <= budget:
                    asked.append(task)
                    budget -= max(1, task.cores)
                    if budget <= 0:
                        break
            if asked:
                for task in asked:
                    del node.leased[task.id]
                    node.revoking[task.id] = task
                node.agent.revoke([task.id for task in asked])

    def _lease_back(self, node: _Node, task_ids: list[str]) -> None:
        """``node``'s agent dropped these leased tasks (it was asked, or it was lost):
        queued again, first, or cancelled if the pool drains. Not an attempt: no retry
        is used."""
        if self._detached:
            return
        back: collections.deque[Task] = collections.deque()
        for task_id in task_ids:
            task = node.revoking.pop(task_id, None) or node.leased.pop(task_id, None)
            if task is not None:
                back.append(task)
        if not back:
            return
        self._leased -= len(back)
        if self._draining:
            self._cancel_waiting(back)
        else:
            self.queue.extendleft(reversed(back))
        self._dispatch()
        self._check_done()

    def _prepare_ahead(self) -> None:
        """Make the next queued tasks' directories and first log files in a thread."""
        if self._preparing is not None or not self._to_prepare or self._draining:
            return
        if len(self._prepared) >= self.PREPARE_AHEAD:
            return
        batch: list[Task] = []
        while self._to_prepare and len(batch) < self.PREPARE_AHEAD:
            task = self._to_prepare.popleft()
            if task.status is TaskStatus.QUEUED and task.attempts == 0:
                batch.append(task)
        if not batch:
            return
        ids = [t.id for t in batch]
        self._prepared.update(ids)
        self._preparing = asyncio.ensure_future(asyncio.to_thread(_make_task_dirs, self._task_root, ids))
        self._preparing.add_done_callback(self._prepared_batch)

    def _prepared_batch(self, future: asyncio.Future[None]) -> None:
        self._preparing = None
        self._prepare_ahead()

    # ---------------------------------------------------------------- state

    @property
    def running(self) -> int:
        return len(self._running)

    def waiting(self) -> list[Task]:
        """The queued tasks: the queue, then those leased to the agents."""
        return [*self.queue, *(t for n in self.nodes for t in (*n.leased.values(), *n.revoking.values()))]

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.groups.values())

    @property
    def unfinished(self) -> int:
        return sum(c.cancelled for c in self.groups.values())

    async def wait(self) -> None:
        """Until nothing is queued or running."""
        self._check_done()
        while not self._done.done():
            await asyncio.shield(self._done)

    # ---------------------------------------------------------------- dispatch

    def _dispatch(self) -> None:
        if self._draining:
            return
        if len(self.queue) < self.FILL_AHEAD // 2:
            self._fill()
        if self._leased:
            self._launch_leased()
        queue = self.queue
        nodes = self.nodes
        while queue or self._sources:
            if not queue:
                self._fill()
                if not queue:
                    break
                continue
            task = queue[0]
            node = self._fit(task)
            if node is not None:
                queue.popleft()
                self._launch(task, node)
                continue
            if not any(n.free_cores for n in nodes):
                break
            # Backfill: a later task may fit where the head does not.
            for i in range(1, min(len(queue), self.BACKFILL_WINDOW)):
                candidate = queue[i]
                node = self._fit(candidate)
                if node is not None:
                    del queue[i]
                    self._launch(candidate, node)
                    break
            else:
                break
            if not any(n.free_cores for n in nodes):
                break
        if self._leasing:
            self._top_up()
            if self._leased and not queue:
                self._steal()

    def _in_time(self, task: Task) -> bool:
        """Whether ``task`` may start now and end before the pool's deadline."""
        return self.deadline is None or task.time_limit is None or time.time() + task.time_limit <= self.deadline

    def _fit(self, task: Task) -> _Node | None:
        if not self._in_time(task):
            return None
        if task.whole_nodes:
            idle = [n for n in self.nodes if n.idle(self._gpu_share)]
            return idle[0] if len(idle) >= task.whole_nodes else None
        for node in self.nodes:
            if node.fits(task):
                return node
        return None

    def _launch(self, task: Task, node: _Node) -> None:
        self._prepared.discard(task.id)
        if len(self._prepared) < self.PREPARE_AHEAD // 2:
            self._prepare_ahead()
        env = task.env
        if task.whole_nodes:
            members = [n for n in self.nodes if n.idle(self._gpu_share)][: task.whole_nodes]
            self._gangs[task.id] = [(n, n.take_all()) for n in members]
            env = {**env, "PILOTKIT_NODES": ",".join(n.name for n in members),
                   "PILOTKIT_NODES_COUNT": str(len(members))}  # fmt: skip
            gpus: tuple[str, ...] = ()
        else:
            gpus = node.take(task)
        task.attempts += 1
        task.status = TaskStatus.RUNNING
        task.node = node.name
        counts = self.groups[task.group]
        counts.queued -= 1
        counts.running += 1
        launch = self._launch_of(task, env, gpus)
        self._running[task.id] = (task, node, gpus)
        if task.start is None:
            task.start = time.time()
        node.agent.launch(launch, self._exited)
        self.emit(
            TaskStarted(
                pilot=self.pilot_id,
                task=task.id,
                group=task.group,
                attempt=task.attempts,
                node=node.name,
                gpus=list(gpus),
            )
        )

    def detach(self) -> None:
        """The pilot lets go of its agents, which keep their tasks (a batch pilot whose
        client goes away): from now on nothing is recorded, started or cancelled here;
        the agents' journals keep what ends for the pilot that comes back."""
        self._detached = True
        self._draining = True

    def _exited(self, result: TaskExit) -> None:
        if self._detached:
            return
        entry = self._running.get(result.task_id)
        if entry is None or entry[0].attempts != result.attempt:
            return  # an earlier attempt's (fenced): the task ends once
        del self._running[result.task_id]
        task, node, gpus = entry
        if self.campaign is not None and self._given_back(task, node, gpus, result):
            return
        gang = self._gangs.pop(task.id, None)
        if gang is not None:
            for member, taken in gang:
                member.give_all(taken)
        else:
            node.give(task, gpus)
        counts = self.groups[task.group]
        counts.running -= 1
        if task.id in self._stopped and result.status in (Outcome.KILLED, Outcome.OK, Outcome.FAILED):
            outcome = self._stopped.pop(task.id)
            if not (outcome is Outcome.PRUNED and result.status == Outcome.OK):  # done before pruned: ok
                result = msgspec.structs.replace(result, status=outcome.value)
        task.exit_code = result.exit_code
        task.outcome = result.status
        task.end = result.end
        tdir = self._task_root / task.id
        task.metrics = taskmetrics.read_final(
            tdir / metrics_file(result.attempt), tdir / attempt_file(result.attempt, "err")
        )
        if result.status == Outcome.LOST:
            task.lost += 1
            retry = task.lost < self.CRASH_LIMIT and not self._draining
        elif result.status not in (Outcome.OK, Outcome.KILLED, Outcome.STOPPED, Outcome.PRUNED):
            task.failures += 1
            retry = task.failures <= task.retries and not self._draining
        else:
            retry = False
        if retry:
            task.status = TaskStatus.QUEUED
            counts.queued += 1
            if result.status == Outcome.LOST:
                self.queue.appendleft(task)  # it was running: let it go first
            else:
                self._retry_later(task)
        else:
            task.status = final_status(result.status, self._draining)
            if task.status is TaskStatus.DONE:
                counts.done += 1
            elif task.status is TaskStatus.CANCELLED:
                counts.cancelled += 1
            else:
                counts.failed += 1
        # On disk before anyone hears of it: a kill -9 after the event loses nothing.
        if not retry:
            self._record(task, result.status if task.status is not TaskStatus.CANCELLED else Outcome.CANCELLED)
            if task.on_end is not None:
                task.on_end(task)
        self.emit(
            TaskFinished(
                pilot=self.pilot_id,
                task=task.id,
                group=task.group,
                attempt=result.attempt,
                node=result.node,
                status=result.status,
                exit_code=result.exit_code,
                duration=result.end - result.start,
                final=not retry,
            )
        )
        if result.status == Outcome.LOST and all(n.agent.lost is not None for n in self.nodes):
            self.fatal = "every node of the allocation was lost"
            self.cancel()
        self._dispatch()
        self._check_done()

    RETRY_BACKOFF = 1.0
    """Seconds before a failed task's first retry; doubled for each further one."""
    RETRY_BACKOFF_MAX = 60.0

    def retry_delay(self, failures: int) -> float:
        """How long a task that failed ``failures`` times waits before its next attempt:
        exponential, capped, with jitter (half to all of it) so retries do not bunch."""
        base: float = min(self.RETRY_BACKOFF_MAX, self.RETRY_BACKOFF * 2.0 ** max(0, failures - 1))
        return base * random.uniform(0.5, 1.0)

    def _retry_later(self, task: Task) -> None:
        def requeue() -> None:
            if self._backoff.pop(task.id, None) is None:
                return
            self.queue.append(task)
            self._dispatch()
            self._check_done()

        delay = self.retry_delay(task.failures)
        self._backoff[task.id] = asyncio.get_running_loop().call_later(delay, requeue)

    def _record(self, task: Task, outcome: str) -> None:
        if not self.results.write(self._result(task, outcome)) and self.storage is None:
            self._storage_failed()

    def _result(self, task: Task, outcome: str) -> TaskResult:
        tdir = self._task_root / task.id
        ran = task.attempts > 0
        return TaskResult(
            task=task.id,
            group=task.group,
            params=task.params,
            status=outcome,
            outcome=outcome,
            exit_code=task.exit_code,
            attempts=task.attempts - task.preempted,
            node=task.node,
            start=task.start,
            end=task.end,
            duration=(task.end - task.start) if (task.end and task.start) else None,
            stdout=str(tdir / attempt_file(task.attempts, "out")) if ran else None,
            stderr=str(tdir / attempt_file(task.attempts, "err")) if ran else None,
            metrics=task.metrics,
            allocation=self.campaign.allocation if self.campaign is not None else None,
        )

    STORAGE_RETRY = 2.0
    """Seconds between tries to write results kept in memory."""

    def _storage_failed(self) -> None:
        """The results file cannot be written: start no more tasks (the running ones
        finish, their results kept in memory) and try the write again now and then."""
        self.storage = self.results.problem()
        self.emit(Log(pilot=self.pilot_id, level="error", source="pilot",
                      message=f"{self.storage}: starting no more tasks"))  # fmt: skip
        self.drain(terminate=False)
        self._retry_storage()

    def _retry_storage(self) -> None:
        if self.results.flush():
            self.emit(Log(pilot=self.pilot_id, level="info", source="pilot",
                          message=f"{self.results.path}: written again, nothing lost"))  # fmt: skip
            return
        asyncio.get_running_loop().call_later(self.STORAGE_RETRY, self._retry_storage)

    def wake(self) -> None:
        """A source that had nothing to give (an adaptive search) has tasks now."""
        self._dispatch()
        self._check_done()

    def _check_done(self) -> None:
        idle = not self.queue and not self._backoff and not self._sources
        if (
            not self._running
            and not self._leased
            and (idle or (self._draining and not self._sources))
            and not self._done.done()
        ):
            self._done.set_result(None)

    # ---------------------------------------------------------------- drain

    def drain(self, *, terminate: bool, grace: float | None = None) -> None:
        """Start no new task and cancel the queued ones; the running ones finish (drain),
        or with ``terminate`` are stopped too (cancel: SIGTERM, SIGKILL after the grace
        period)."""
        if self._detached:
            return
        if not self._draining:
            self._draining = True
            for timer in self._backoff.values():  # waiting to retry: cancelled like the queued
                timer.cancel()
            waiting = [self.tasks[task_id] for task_id in self._backoff]
            self._backoff.clear()
            self.queue.extend(waiting)
            if self._sources:  # every task not yet made is cancelled too, in chunks
                self._cancelling = asyncio.ensure_future(self._cancel_unmade())
            for node in self.nodes:  # leased tasks are cancelled as their agents give them back
                if node.leased:
                    node.revoking.update(node.leased)
                    node.agent.revoke(list(node.leased))
                    node.leased.clear()
            self._cancel_waiting(self.queue)
        if terminate:
            self.terminate_running(grace)
        self._check_done()

    def _cancel_waiting(self, tasks: collections.deque[Task]) -> None:
        """Cancel the waiting ``tasks`` (emptied) of a pool that drains (or give them back
        to the campaign)."""
        per_group: dict[str, int] = collections.Counter()
        while tasks:
            task = tasks.popleft()
            if self.campaign is not None and self.campaign.take_back(task):
                self.groups[task.group].queued -= 1
                self.groups[task.group].total -= 1
                continue
            task.status = TaskStatus.CANCELLED
            counts = self.groups[task.group]
            counts.queued -= 1
            counts.cancelled += 1
            per_group[task.group] += 1
            self._record(task, Outcome.CANCELLED)
        for group, count in per_group.items():
            self.emit(TaskCancelled(pilot=self.pilot_id, group=group, count=count))

    CANCEL_CHUNK = 2000
    """How many tasks not made yet are cancelled (and their results written) between two
    turns of the event loop when a pool drains."""

    async def _cancel_unmade(self) -> None:
        """Make and cancel the tasks the groups' iterators still hold, a chunk at a time:
        a 2,000,000-task scan drained early keeps neither its memory nor the event loop
        (each cancelled task is written to the results, none kept in :attr:`tasks`)."""
        resume = self.resume
        while self._sources:
            per_group: dict[str, int] = collections.Counter()
            results: list[TaskResult] = []
            while self._sources and len(results) < self.CANCEL_CHUNK:
                counts, source = self._sources[0]
                item = next(source, None)
                if item is None:  # the end, or a search with nothing ready: it asks no more
                    self._sources.popleft()
                    continue
                task = item
                if resume is not None and self._ended_before(task, counts, resume):
                    continue
                task.status = TaskStatus.CANCELLED
                counts.queued -= 1
                counts.cancelled += 1
                per_group[task.group] += 1
                results.append(self._result(task, Outcome.CANCELLED))
            if results and not self.results.write_many(results) and self.storage is None:
                self._storage_failed()
            for group, count in per_group.items():
                self.emit(TaskCancelled(pilot=self.pilot_id, group=group, count=count))
            await asyncio.sleep(0)
        self._check_done()

    def cancel(self, grace: float | None = None) -> None:
        """Start no new task, cancel the queued ones and stop the running ones."""
        self.drain(terminate=True, grace=grace)

    def terminate(self, task_id: str, grace: float | None = None, outcome: Outcome = Outcome.STOPPED) -> None:
        """Stop one running task (a service the app no longer needs: ``stopped``; a trial
        its search pruned: ``pruned``)."""
        entry = self._running.get(task_id)
        if entry is not None:
            self._stopped[task_id] = outcome
            entry[1].agent.terminate(task_id, self.grace if grace is None else grace)

    def terminate_running(self, grace: float | None = None) -> None:
        for task, node, _ in list(self._running.values()):
            if self.campaign is not None:
                self._preempting.add(task.id)
            node.agent.terminate(task.id, self.grace if grace is None else grace)

    # ---------------------------------------------------------------- campaigns

    def lend(self, campaign: CampaignLink, workdir: Path, results: ResultsWriter) -> None:
        """Run a campaign's tasks (before any task runs): their directories and results
        are the campaign's, and an attempt stopped by the allocation's end goes back to
        the campaign (outcome ``preempted``) instead of being recorded."""
        self.campaign = campaign
        self._leasing = False  # a campaign lends what the free cores take, no more
        self.workdir = workdir
        self._task_root = workdir / TASKS_DIR
        self.results = results

    def running_tasks(self) -> list[tuple[Task, NodeInfo]]:
        """The running tasks and their nodes."""
        return [(task, node.info) for task, node, _ in self._running.values()]

    def signal_task(self, task_id: str, sig: int) -> bool:
        """Send ``sig`` to a running task's process group on its node (through its
        agent); False when it does not run or its agent cannot."""
        entry = self._running.get(task_id)
        return entry is not None and entry[1].agent.signal(task_id, sig)

    def preempt(self, task_id: str, grace: float | None = None) -> None:
        """Stop a running task because its allocation ends (SIGTERM, SIGKILL after the
        grace period); a campaign runs it again elsewhere."""
        entry = self._running.get(task_id)
        if entry is not None:
            self._preempting.add(task_id)
            entry[1].agent.terminate(task_id, self.grace if grace is None else grace)

    def _given_back(self, task: Task, node: _Node, gpus: tuple[str, ...], result: TaskExit) -> bool:
        """A campaign's attempt that its allocation ended (preempted), or that was lost
        with its node or killed by a signal it did not ask for (an allocation cancelled
        from outside kills its tasks before the pilot hears of it): back to the campaign,
        True; otherwise False. Attempts lost with their node, or killed by SIGKILL (the
        out-of-memory killer too), count against CRASH_LIMIT."""
        assert self.campaign is not None
        preempted = task.id in self._preempting
        self._preempting.discard(task.id)
        outside = result.status == Outcome.FAILED and result.signal in _OUTSIDE_SIGNALS
        lost = not preempted and (result.status in (Outcome.LOST, Outcome.KILLED) or outside)
        if result.status in (Outcome.OK, Outcome.STOPPED) or not (preempted or lost):
            return False
        crash = lost and (result.status != Outcome.FAILED or result.signal == signal.SIGKILL)
        if crash and task.lost + 1 >= self.CRASH_LIMIT:
            return False  # lost or killed twice: recorded, as outside campaigns
        task.lost += crash
        task.preempted += 1
        task.status = TaskStatus.QUEUED
        task.exit_code, task.end = result.exit_code, result.end
        task.outcome = result.status if lost else Outcome.PREEMPTED
        if not self.campaign.take_back(task):
            task.lost -= crash
            task.preempted -= 1
            return False
        gang = self._gangs.pop(task.id, None)
        if gang is not None:
            for member, taken in gang:
                member.give_all(taken)
        else:
            node.give(task, gpus)
        counts = self.groups[task.group]
        counts.running -= 1
        counts.total -= 1
        self.emit(TaskFinished(pilot=self.pilot_id, task=task.id, group=task.group, attempt=result.attempt,
                               node=result.node, status=task.outcome, exit_code=result.exit_code,
                               duration=result.end - result.start, final=False))  # fmt: skip
        self._dispatch()
        self._check_done()
        return True

    @property
    def draining(self) -> bool:
        return self._draining


_END = object()


def task_env(env: dict[str, str], task: Task, tdir: Path) -> dict[str, str]:
    """What every attempt gets besides the spec's environment: where to report metrics,
    its id, attempt and parameters, and ``OMP_NUM_THREADS`` as its cores (unless set, and
    for a task that takes one or more cores on one node)."""
    out = {
        **env,
        "PILOTKIT_METRICS": str(tdir / metrics_file(task.attempts)),
        "PILOTKIT_TASK_ID": task.id,
        "PILOTKIT_ATTEMPT": str(task.attempts),
        "PILOTKIT_TRIAL_PARAMS": json.dumps(task.params, default=str),
    }
    if "OMP_NUM_THREADS" not in env and task.cores >= 1 and not task.whole_nodes:
        out["OMP_NUM_THREADS"] = str(task.cores)  # not for a service (0) or a gang of nodes
    return out


_OUTSIDE_SIGNALS = frozenset({signal.SIGTERM, signal.SIGKILL, signal.SIGHUP, signal.SIGINT})
"""Signals a batch system stops a job's processes with (``scancel``): in a campaign an
attempt ended by one goes back to the backlog, as a lost one does."""


def _make_task_dirs(root: Path, task_ids: list[str]) -> None:
    """Create each task's directory and its first attempt's log files (a worker thread)."""
    with contextlib.suppress(OSError):
        (root.parent / PIDS_DIR).mkdir(exist_ok=True)
    for task_id in task_ids:
        tdir = root / task_id
        try:
            tdir.mkdir(parents=True, exist_ok=True)
            for name in (attempt_file(1, "out"), attempt_file(1, "err")):
                os.close(os.open(tdir / name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError:
            pass  # the agent makes it (and reports the error) when the task starts
