"""``pilotkit.api.unless_draining``, ``watched`` and ``task_exit_report``: how a cluster
app waits, and says how one of its tasks ended."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pilotkit.api import Task, attempt_log, task_exit_report, unless_draining, watched


async def test_watched_returns_the_result_or_the_watchers_error() -> None:
    async def supervise() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("the scheduler died")

    async def answer() -> int:
        return 42

    idle = asyncio.ensure_future(asyncio.Event().wait())
    assert await watched(answer(), idle) == 42
    idle.cancel()
    supervisor = asyncio.ensure_future(supervise())
    with pytest.raises(RuntimeError, match="the scheduler died"):
        await watched(asyncio.Event().wait(), supervisor)


async def test_unless_draining_with_a_fake_context_cancels_the_start() -> None:
    ctx: Any = SimpleNamespace(draining=asyncio.Event())
    assert await unless_draining(ctx, asyncio.sleep(0)) is True
    cancelled = asyncio.Event()

    async def start() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.get_running_loop().call_later(0.05, ctx.draining.set)
    assert await unless_draining(ctx, start()) is False and cancelled.is_set()


async def test_task_exit_report_names_the_log_and_its_last_lines(tmp_path: Path) -> None:
    task = Task(id="svc", group="g", argv=["false"])
    task.attempts, task.outcome, task.exit_code = 2, "failed", 3
    log = attempt_log(tmp_path, "svc", 2, "err")
    log.parent.mkdir(parents=True)
    log.write_text("one\n\ntwo\nthree\nfour\n")
    assert await task_exit_report(tmp_path, task) == f"failed, exit code 3; {log}: two | three | four"
    assert await task_exit_report(tmp_path, task, attempt=1) == f"failed, exit code 3; {attempt_log(tmp_path, 'svc', 1, 'err')}"
