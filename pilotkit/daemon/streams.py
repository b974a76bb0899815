"""Bounded subscriptions: fan-out that never waits for a slow reader.

A producer :meth:`Subscription.offer` s items; when the subscription's queue is full
the item is dropped and counted, and a :class:`Dropped` marker with the count is queued
ahead of the next item that fits (or handed out when the reader catches up). The daemon
never blocks on a subscriber, and a subscriber always learns what it missed.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Dropped:
    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count

    def __repr__(self) -> str:
        return f"Dropped({self.count})"


class Subscription(Generic[T]):
    """One subscriber's bounded queue (see the module docstring)."""

    __slots__ = ("_dropped", "_event", "_items", "accept", "capacity", "closed", "total_dropped")

    def __init__(self, capacity: int = 4096, accept: Callable[[T], bool] | None = None) -> None:
        self.capacity = capacity
        self.accept = accept
        """Only items for which this is true are queued (a filter)."""
        self._items: collections.deque[T | Dropped] = collections.deque()
        self._dropped = 0
        self._event = asyncio.Event()
        self.closed = False
        self.total_dropped = 0

    def offer(self, item: T) -> bool:
        """Queue ``item`` unless full (then it is counted as dropped); never blocks."""
        if self.closed or (self.accept is not None and not self.accept(item)):
            return False
        if len(self._items) >= self.capacity:
            self._dropped += 1
            self.total_dropped += 1
            return False
        if self._dropped:
            self._items.append(Dropped(self._dropped))
            self._dropped = 0
        self._items.append(item)
        self._event.set()
        return True

    def __len__(self) -> int:
        return len(self._items)

    async def take(self, limit: int = 256) -> list[T | Dropped]:
        """The next items (at least one), or [] once closed and empty."""
        while not self._items and not self._dropped:
            if self.closed:
                return []
            self._event.clear()
            await self._event.wait()
        out: list[T | Dropped] = []
        items = self._items
        while items and len(out) < limit:
            out.append(items.popleft())
        if not items and self._dropped and len(out) < limit:
            out.append(Dropped(self._dropped))
            self._dropped = 0
        return out

    def close(self) -> None:
        self.closed = True
        self._event.set()


class Hub(Generic[T]):
    """Subscriptions by key (a pilot id); key None receives every item."""

    def __init__(self) -> None:
        self._subs: dict[str | None, set[Subscription[T]]] = {}

    def add(self, key: str | None, sub: Subscription[T]) -> None:
        self._subs.setdefault(key, set()).add(sub)

    def remove(self, key: str | None, sub: Subscription[T]) -> None:
        subs = self._subs.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[key]

    def publish(self, key: str, item: T) -> None:
        subs = self._subs
        if not subs:
            return
        for sub in subs.get(key, ()):
            sub.offer(item)
        for sub in subs.get(None, ()):
            sub.offer(item)

    def subscribers(self, key: str | None = None) -> Iterable[Subscription[T]]:
        return tuple(self._subs.get(key, ()))

    def __len__(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def close_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.close()
