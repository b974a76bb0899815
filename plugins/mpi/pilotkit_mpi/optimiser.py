"""Where a scan's trials come from: a fixed list, random search, or an optimiser plugin.

An optimiser is anything with two methods (:class:`Optimiser`)::

    suggest(n) -> list[params]      # up to n new points to try; [] when it has no more
    observe(params, metric) -> None # a trial finished; metric None when it failed

Optimisers are made by a factory, ``factory(settings: OptimiserSettings) -> Optimiser``,
found by name: the built-in ``random``, factories given to :func:`register_optimiser`,
or entry points in the group ``pilotkit.optimisers`` of installed distributions::

    [project.entry-points."pilotkit.optimisers"]
    tpe = "my_package.optuna_bridge:make"
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

from pilotkit.api import Distribution, PilotkitError, RandomSamples, TaskGroup, parameter_points

ENTRY_POINT_GROUP = "pilotkit.optimisers"


class Optimiser(Protocol):
    """Proposes parameter points and learns from their metrics."""

    def suggest(self, n: int) -> list[dict[str, Any]]:
        """Up to ``n`` new points; an empty list means nothing more to try."""
        ...

    def observe(self, params: dict[str, Any], metric: float | None) -> None:
        """The trial run with ``params`` finished with ``metric`` (None: failed or no metric)."""
        ...


@dataclass
class OptimiserSettings:
    """What a factory is given: the search space and the scan's settings."""

    params: dict[str, Distribution]
    goal: str = "min"
    """``min`` or ``max``."""
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """``[app.scan.options]``: the optimiser's own settings."""


OptimiserFactory = Callable[[OptimiserSettings], Optimiser]


@dataclass
class Observation:
    params: dict[str, Any]
    metric: float | None


class _History:
    """Observations and the best one so far."""

    def __init__(self, goal: str) -> None:
        self.goal = goal
        self.observed: list[Observation] = []

    def observe(self, params: dict[str, Any], metric: float | None) -> None:
        self.observed.append(Observation(dict(params), metric))

    @property
    def best(self) -> Observation | None:
        scored = [o for o in self.observed if o.metric is not None]
        if not scored:
            return None
        pick = min if self.goal == "min" else max
        return pick(scored, key=lambda o: o.metric if o.metric is not None else 0.0)


class PointList(_History):
    """Hands out a fixed list of points in order (a grid, pre-drawn random samples)."""

    def __init__(self, points: Sequence[dict[str, Any]], goal: str = "min") -> None:
        super().__init__(goal)
        self._points = [dict(p) for p in points]
        self._next = 0

    def suggest(self, n: int) -> list[dict[str, Any]]:
        out = self._points[self._next : self._next + n]
        self._next += len(out)
        return out

    @property
    def total(self) -> int:
        return len(self._points)


class RandomSearch(_History):
    """Random search: independent draws from the space (no use of the metrics)."""

    def __init__(self, settings: OptimiserSettings) -> None:
        super().__init__(settings.goal)
        self.space = dict(settings.params)
        self._rng = random.Random(settings.seed)

    def suggest(self, n: int) -> list[dict[str, Any]]:
        if n <= 0 or not self.space:
            return []
        draw = RandomSamples(samples=n, params=self.space, seed=self._rng.randrange(2**32))
        group = TaskGroup(name="suggest", command="-", random=draw)
        return [params for _, params in parameter_points(group)]


_factories: dict[str, OptimiserFactory] = {"random": RandomSearch}


def register_optimiser(name: str, factory: OptimiserFactory) -> None:
    """Make ``factory`` available as ``optimiser = "<name>"`` in this process."""
    other = _factories.get(name)
    if other is not None and other is not factory:
        raise PilotkitError(f"optimiser '{name}' is already registered")
    _factories[name] = factory


def unregister_optimiser(name: str) -> None:
    """Forget a factory given to :func:`register_optimiser` (the built-ins stay)."""
    if name != "random":
        _factories.pop(name, None)


def available() -> list[str]:
    """Every optimiser name: built-in, registered and installed (not imported)."""
    names = set(_factories)
    names.update(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def load_optimiser(name: str) -> OptimiserFactory:
    """The factory called ``name``; an error lists what there is."""
    factory = _factories.get(name)
    if factory is not None:
        return factory
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                loaded: OptimiserFactory = ep.load()
            except Exception as exc:
                raise PilotkitError(
                    f"optimiser '{name}' failed to load: {type(exc).__name__}: {exc}"
                ) from None
            return loaded
    raise PilotkitError(f"unknown optimiser '{name}'; available: {', '.join(available())}")
