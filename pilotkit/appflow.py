"""How an app that runs a cluster on the pilot's nodes waits: for the cluster to start
unless the pilot drains first, for work while a supervisor watches the cluster, for the
script it runs in the pool to end."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from .vocab import TaskStatus

if TYPE_CHECKING:
    from .interfaces import AppContext
    from .task import Task

T = TypeVar("T")


async def unless_draining(ctx: AppContext, start: Awaitable[None]) -> bool:
    """Run ``start``; False (and ``start`` cancelled) if the pilot drains first."""
    work = asyncio.ensure_future(start)
    drained = asyncio.ensure_future(ctx.draining.wait())
    try:
        await asyncio.wait({work, drained}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            work.result()
            return True
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return False
    finally:
        drained.cancel()


async def watched(main: Awaitable[T], watcher: asyncio.Future[Any]) -> T:
    """``main``'s result; if ``watcher`` (a supervisor, which runs until it fails) ends
    first, its error. ``main`` is cancelled when this ends any other way."""
    work: asyncio.Future[T] = asyncio.ensure_future(main)
    pending: set[asyncio.Future[Any]] = {work, watcher}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            watcher.result()  # raises what stopped the supervisor
        return work.result()
    finally:
        work.cancel()


async def run_watched(ctx: AppContext, task: Task, watcher: asyncio.Future[Any], poll: float = 0.1) -> float:
    """Run ``task`` in the pool (as the one task of its group) to its end, while
    ``watcher`` watches (see :func:`watched`); returns the seconds it took. When this
    ends otherwise (the watcher's error, cancelled), the task is terminated."""
    started = time.monotonic()
    ctx.pool.add_group(task.group, [task])
    try:
        await watched(_until_ended(task, poll), watcher)
    except BaseException:
        ctx.pool.terminate(task.id)
        raise
    return time.monotonic() - started


async def _until_ended(task: Task, poll: float) -> None:
    """Until ``task`` has its final status (the pool offers no per-task signal)."""
    while task.status in (TaskStatus.QUEUED, TaskStatus.RUNNING):
        await asyncio.sleep(poll)
