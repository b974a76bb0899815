"""One allocation of a campaign: the app its pilot runs, which borrows tasks from the
campaign's backlog while they fit the time the allocation has left, gives back what
its end interrupts, and releases the allocation once it has been idle long enough."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..events import Log
from ..interfaces import App, AppContext
from ..results import ResultsWriter
from ..scan import TasksOptions
from ..scheduler import TaskPool
from ..spawn import start_time
from ..task import Task
from ..vocab import Outcome, pid_file
from .backlog import Backlog
from .records import AllocationRecord

if TYPE_CHECKING:
    from ..interfaces import SpecView


class Campaign(Protocol):
    """What an allocation uses of its campaign (:class:`.coordinator.Campaign`)."""

    stopping: bool
    backlog: Backlog
    tasks_options: TasksOptions
    workdir: Path
    results: ResultsWriter
    idle_timeout: float
    checkpoint_signal: int

    def give_back(self, task: Task) -> None: ...


class Lender:
    """What one allocation's task pool knows of its campaign (``CampaignLink``)."""

    def __init__(self, campaign: Campaign, record: AllocationRecord) -> None:
        self.campaign = campaign
        self.record = record
        self.allocation = record.name
        self.wake = asyncio.Event()
        self.released: str | None = None
        """Why the app let the allocation go (idle, nothing left)."""
        self.hold_until = 0.0

    HOLD = 6.0
    """Seconds an allocation borrows nothing after an attempt was lost or killed there:
    long enough for its pilot to notice when the whole allocation is going (a job
    cancelled from outside kills its tasks before the pilot hears of it)."""

    def take_back(self, task: Task) -> bool:
        if self.campaign.stopping:
            return False
        self.record.preempted += 1
        if task.outcome != Outcome.PREEMPTED:
            self.hold_until = time.time() + self.HOLD
        self.campaign.give_back(task)
        return True


class AllocationApp(App):
    """Runs the campaign's tasks on one allocation (its options are its :class:`Lender`)."""

    id = "campaign"
    description = "a campaign's allocation"

    POLL = 0.5
    """Seconds between looks at the backlog when nothing woke the app."""

    def __init__(self, spec: SpecView, options: Any) -> None:
        super().__init__(spec, options)
        self.lender: Lender = options

    async def run(self, ctx: AppContext) -> None:
        lender = self.lender
        campaign = lender.campaign
        pool = ctx.pool
        assert isinstance(pool, TaskPool)
        pool.set_gpu_share(campaign.tasks_options.gpu_share)
        pool.lend(lender, campaign.workdir, campaign.results)
        loop = asyncio.get_running_loop()
        timer = None
        if pool.deadline is not None:
            timer = loop.call_later(max(0.0, pool.deadline - time.time()), self._drain_point, ctx)
        ctx.running()
        idle_since: float | None = None
        try:
            while not ctx.draining.is_set():
                self._fill(pool)
                now = time.time()
                if pool.running or pool.queue or now < lender.hold_until:
                    idle_since = None
                elif campaign.backlog.done or campaign.stopping:
                    lender.released = "released: no work left"
                    break
                elif campaign.backlog.waiting and pool.deadline is not None:
                    left = pool.deadline - now
                    lender.released = f"released: no waiting task fits the {left:.0f}s it had left"
                    break
                else:
                    idle_since = idle_since or now
                    if now - idle_since >= campaign.idle_timeout:
                        lender.released = f"released: idle for {campaign.idle_timeout:g}s"
                        break
                lender.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lender.wake.wait(), self.POLL)
            if lender.released is not None:
                ctx.emit(Log(pilot=ctx.pilot.pilot_id, level="info", source="campaign", message=lender.released))
            await pool.wait()
        finally:
            if timer is not None:
                timer.cancel()

    def _fill(self, pool: TaskPool) -> None:
        """Borrow tasks for the free cores; only tasks whose time limit fits before the
        drain point."""
        capacity = sum(node.cores for node in self._nodes(pool))
        used = sum(t.cores for t, _ in pool.running_tasks()) + sum(t.cores for t in pool.queue)
        if used >= capacity or pool.draining or time.time() < self.lender.hold_until:
            return
        deadline = pool.deadline
        largest = max((node.cores for node in self._nodes(pool)), default=0)

        def fits(task: Task) -> bool:
            if task.cores > largest:
                return False
            return deadline is None or task.time_limit is None or time.time() + task.time_limit <= deadline

        tasks = self.lender.campaign.backlog.take(capacity - used, fits)
        by_group: dict[str, list[Task]] = {}
        for task in tasks:
            by_group.setdefault(task.group, []).append(task)
        for group, batch in by_group.items():
            pool.add_group(group, batch)

    @staticmethod
    def _nodes(pool: TaskPool) -> list[Any]:
        return [node.info for node in pool.nodes if node.agent.lost is None]

    def _drain_point(self, ctx: AppContext) -> None:
        """The allocation's drain point: every running task is stopped and goes back to
        the backlog; a task that checkpoints gets the checkpoint signal first and the
        grace period to save its state."""
        pool = ctx.pool
        assert isinstance(pool, TaskPool)
        campaign = self.lender.campaign
        grace = pool.grace
        sig = campaign.checkpoint_signal
        for task, node in pool.running_tasks():
            if task.checkpoint and (pool.signal_task(task.id, sig) or _signal_local(pool, task, node.name, sig)):
                asyncio.get_running_loop().call_later(grace, pool.preempt, task.id, grace)
            else:
                pool.preempt(task.id, grace)


def _signal_local(pool: TaskPool, task: Task, node: str, sig: int) -> bool:
    """Send ``sig`` to a running task's process group when it runs on this machine
    (found by its pid record, checked against the process's start time): for an attempt
    no agent of this process started (one a restarted daemon adopted)."""
    if node not in (socket.gethostname(), os.uname().nodename):
        return False
    try:
        pid_text, started, _ = pid_file(pool.workdir, task.id, task.attempts).read_text().split(" ", 2)
        pid = int(pid_text)
        if str(start_time(pid)) != started:
            return False
        os.killpg(pid, sig)
    except (OSError, ValueError):
        return False
    return True


def signal_number(name: str) -> int:
    """``SIGUSR1`` or ``USR1`` as a signal number."""
    name = name.upper()
    return int(getattr(signal.Signals, name if name.startswith("SIG") else f"SIG{name}"))
