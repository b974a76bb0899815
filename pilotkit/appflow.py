"""How an app that runs a cluster on the pilot's nodes waits: for the cluster to start
unless the pilot drains first, for work while a supervisor watches the cluster, for the
script it runs in the pool to end; and how it says why one of its tasks ended."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .vocab import TaskStatus, attempt_log

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


async def task_exit_report(workdir: Path, task: Task, attempt: int | None = None) -> str:
    """How ``task``'s attempt (default: the latest) ended, with the tail of its stderr:
    ``failed, exit code 1; <its stderr log>: <its last lines>``."""
    how = task.outcome or "exited"
    if task.exit_code is not None:
        how += f", exit code {task.exit_code}"
    err = attempt_log(workdir, task.id, attempt or max(task.attempts, 1), "err")
    tail = await asyncio.to_thread(_tail, err)
    return f"{how}; {err}" + (f": {tail}" if tail else "")


def _tail(path: Path, lines: int = 3, limit: int = 400) -> str:
    """The last non-empty lines of a log, on one line."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-limit:]
