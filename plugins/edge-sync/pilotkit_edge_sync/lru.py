"""The cache's eviction policy: least recently used first, never an image in use.

A pure function of what the cache holds, so it is tested on its own;
:mod:`pilotkit_edge_sync.cache` applies it to the remote directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CacheEntry:
    """One image in the cache, with everything belonging to it (partial copies too)."""

    digest: str
    size: int
    last_used: float
    """Seconds since the epoch (the remote clock)."""
    in_use: bool
    """A pilot holds a live lease on it: never evicted."""


@dataclass(frozen=True)
class EvictionPlan:
    evict: tuple[CacheEntry, ...]
    total: int
    """Bytes in the cache now."""
    after: int
    """Bytes once the evictions are done."""
    fits: bool
    """Whether ``after`` plus the incoming bytes is within the limit."""


def plan_eviction(entries: Sequence[CacheEntry], limit: int, incoming: int = 0) -> EvictionPlan:
    """Which entries to evict so the cache, with ``incoming`` more bytes, fits in ``limit``.

    Entries not in use go least recently used first (ties by digest, so the plan is
    deterministic), and only as many as needed. When even evicting all of them is not
    enough, they are all evicted and ``fits`` is False.
    """
    total = sum(e.size for e in entries)
    excess = total + incoming - limit
    chosen: list[CacheEntry] = []
    for entry in sorted((e for e in entries if not e.in_use), key=lambda e: (e.last_used, e.digest)):
        if excess <= 0:
            break
        chosen.append(entry)
        excess -= entry.size
    after = total - sum(e.size for e in chosen)
    return EvictionPlan(tuple(chosen), total, after, after + incoming <= limit)
