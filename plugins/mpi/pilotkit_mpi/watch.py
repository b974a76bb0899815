"""Futures that resolve when a task finishes, fed by the ``pilotkit_event`` hook.

An app sees the task pool but not the pilot's event bus; this plugin's
``pilotkit_event`` implementation (in :mod:`pilotkit_mpi`) hands every final
``TaskFinished`` to :func:`finished`, which resolves the future :func:`expect` gave for
that task. The pool stays the authority on a task's outcome: a woken app reads the
task's status from the pool, and also wakes when the pool goes idle, so nothing hangs
should the hook not be called.
"""

from __future__ import annotations

import asyncio

from pilotkit.api import TaskFinished

_waiting: dict[str, dict[str, asyncio.Future[TaskFinished]]] = {}
"""pilot id -> task id -> future."""


def expect(pilot: str, task: str) -> asyncio.Future[TaskFinished]:
    """A future resolved with the task's final ``TaskFinished``."""
    table = _waiting.setdefault(pilot, {})
    future = table.get(task)
    if future is None or future.done():
        future = table[task] = asyncio.get_running_loop().create_future()
    return future


def finished(event: TaskFinished) -> None:
    """Resolve the future for ``event``'s task, if anyone waits for it (cheap otherwise)."""
    if not event.final:
        return
    table = _waiting.get(event.pilot)
    if table is None:
        return
    future = table.pop(event.task, None)
    if future is not None and not future.done():
        future.set_result(event)


def forget(pilot: str) -> None:
    """Drop every future of ``pilot`` (its app has returned)."""
    for future in _waiting.pop(pilot, {}).values():
        future.cancel()
