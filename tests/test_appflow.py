"""``pilotkit.api.unless_draining`` and ``watched``: how a cluster app waits."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from pilotkit.api import unless_draining, watched


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
