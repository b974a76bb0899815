"""Bounded concurrency for transfers: a semaphore that also records its peak use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Slots:
    """At most ``limit`` transfers at once (an :class:`asyncio.Semaphore`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)
        self.active = 0
        self.peak = 0

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._semaphore:
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                yield
            finally:
                self.active -= 1


async def run_bounded(
    items: Iterable[T],
    work: Callable[[T], Awaitable[R]],
    slots: Slots,
    on_done: Callable[[R], None] | None = None,
) -> None:
    """Run ``work(item)`` for each item, each holding one of ``slots``.

    Tasks are created lazily (a window of twice the limit) so a million small files do
    not become a million tasks; ``on_done`` sees each result in completion order. The
    first failure cancels the rest and is raised.
    """

    async def one(item: T) -> R:
        async with slots.hold():
            return await work(item)

    window = 2 * slots.limit
    iterator = iter(items)
    pending: set[asyncio.Task[R]] = set()
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < window:
                try:
                    item = next(iterator)
                except StopIteration:
                    exhausted = True
                    break
                pending.add(asyncio.ensure_future(one(item)))
            if not pending:
                return
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            failures = [task.exception() for task in done if not task.cancelled() and task.exception()]
            for task in done:
                if not task.cancelled() and task.exception() is None and on_done is not None:
                    on_done(task.result())
            if failures:
                raise failures[0]  # type: ignore[misc]
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
