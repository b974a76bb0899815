"""The LRU eviction policy on its own."""

from __future__ import annotations

from pilotkit_edge_sync.lru import CacheEntry, plan_eviction


def entry(name: str, size: int, used: float, in_use: bool = False) -> CacheEntry:
    return CacheEntry(name, size, used, in_use)


def names(entries: tuple[CacheEntry, ...]) -> list[str]:
    return [e.digest for e in entries]


def test_under_the_limit_evicts_nothing() -> None:
    plan = plan_eviction([entry("a", 10, 1), entry("b", 10, 2)], limit=100, incoming=50)
    assert plan.evict == () and plan.fits and plan.total == plan.after == 20


def test_least_recently_used_first_and_only_as_many_as_needed() -> None:
    entries = [entry("new", 40, 30), entry("old", 40, 10), entry("mid", 40, 20)]
    plan = plan_eviction(entries, limit=100, incoming=20)
    assert names(plan.evict) == ["old"]
    assert (plan.total, plan.after, plan.fits) == (120, 80, True)
    plan = plan_eviction(entries, limit=100, incoming=60)
    assert names(plan.evict) == ["old", "mid"]


def test_never_evicts_an_image_in_use() -> None:
    entries = [entry("oldest-in-use", 50, 1, in_use=True), entry("b", 50, 2), entry("c", 50, 3)]
    plan = plan_eviction(entries, limit=100, incoming=0)
    assert names(plan.evict) == ["b"]


def test_cannot_fit_evicts_all_it_may_and_says_so() -> None:
    entries = [entry("busy", 80, 1, in_use=True), entry("idle", 30, 2)]
    plan = plan_eviction(entries, limit=100, incoming=50)
    assert names(plan.evict) == ["idle"]
    assert (plan.after, plan.fits) == (80, False)


def test_ties_are_broken_by_digest() -> None:
    entries = [entry("b", 10, 5), entry("a", 10, 5), entry("c", 10, 5)]
    assert names(plan_eviction(entries, limit=15).evict) == ["a", "b"]


def test_empty_cache() -> None:
    plan = plan_eviction([], limit=10, incoming=20)
    assert plan.evict == () and not plan.fits
