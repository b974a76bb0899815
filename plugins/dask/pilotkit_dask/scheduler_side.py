"""Code that runs inside the Dask scheduler process.

This module is sent to the scheduler *by value* (``cloudpickle.register_pickle_by_value``),
so the scheduler needs neither pilotkit nor this plugin installed (it may run in a
container image that has only Dask). Keep it free of pilotkit imports: standard library,
``dask`` and ``distributed`` only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from dask.utils import key_split
from distributed.diagnostics.plugin import SchedulerPlugin

PLUGIN_NAME = "pilotkit-prefix-progress"


class PrefixProgress(SchedulerPlugin):
    """Counts tasks per prefix from the scheduler's transitions.

    ``total`` and ``memory``/``erred`` are cumulative since the plugin started, so a
    finished task that was since released still counts as finished; ``processing`` is
    the number running now. A task forgotten before it finished leaves ``total``.
    """

    name = PLUGIN_NAME

    def __init__(self) -> None:
        self.total: defaultdict[str, int] = defaultdict(int)
        self.memory: defaultdict[str, int] = defaultdict(int)
        self.erred: defaultdict[str, int] = defaultdict(int)
        self.processing: defaultdict[str, int] = defaultdict(int)
        self._seen: set[Any] = set()
        self._finished: set[Any] = set()
        self._failed: set[Any] = set()
        self._running: set[Any] = set()

    def _leave_processing(self, key: Any, prefix: str) -> None:
        if key in self._running:
            self._running.discard(key)
            self.processing[prefix] -= 1

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        """Update the counts of the key's prefix for one state change."""
        prefix = key_split(key)
        if finish == "forgotten":
            if key in self._seen and key not in self._finished and key not in self._failed:
                self.total[prefix] -= 1  # cancelled before it ran: no longer wanted
            self._leave_processing(key, prefix)
            self._seen.discard(key)
            self._finished.discard(key)
            self._failed.discard(key)
            return
        if key not in self._seen:
            self._seen.add(key)
            self.total[prefix] += 1
        self._leave_processing(key, prefix)
        if finish == "processing":
            self._running.add(key)
            self.processing[prefix] += 1
        if finish == "memory" and key not in self._finished:
            self._finished.add(key)
            self.memory[prefix] += 1
            if key in self._failed:  # it erred, then was retried and succeeded
                self._failed.discard(key)
                self.erred[prefix] -= 1
        elif finish == "erred" and key not in self._failed and key not in self._finished:
            self._failed.add(key)
            self.erred[prefix] += 1

    def restart(self, scheduler: Any) -> None:
        """``client.restart()`` forgets every task: what had not finished never will."""
        for prefix in self.total:
            self.total[prefix] = self.memory.get(prefix, 0) + self.erred.get(prefix, 0)
        self.processing.clear()
        self._running.clear()
        self._seen.clear()
        self._finished.clear()
        self._failed.clear()

    def snapshot(self) -> dict[str, list[int]]:
        """``{prefix: [total, waiting, processing, memory, erred]}``."""
        out: dict[str, list[int]] = {}
        for prefix, total in self.total.items():
            processing = max(0, self.processing.get(prefix, 0))
            memory = self.memory.get(prefix, 0)
            erred = self.erred.get(prefix, 0)
            waiting = max(0, total - processing - memory - erred)
            out[prefix] = [total, waiting, processing, memory, erred]
        return out


def progress_snapshot(dask_scheduler: Any = None) -> dict[str, list[int]] | None:
    """Run on the scheduler: the counts of :class:`PrefixProgress`, None when absent."""
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    return plugin.snapshot() if plugin is not None else None


def dataset_nbytes(name: str, dask_scheduler: Any = None) -> int | None:
    """Run on the scheduler: bytes in worker memory of a published dataset's keys (None
    when the dataset has no keys the scheduler knows the size of)."""
    publish = dask_scheduler.extensions.get("publish")
    if publish is None or name not in publish.datasets:
        return None
    total = 0
    known = False
    for key in publish.datasets[name].get("keys", ()):
        ts = dask_scheduler.tasks.get(key)
        if ts is not None and ts.nbytes >= 0:
            total += ts.nbytes
            known = True
    return total if known else None
