#!/usr/bin/env python3
"""Benchmark the dashboard (``pilotkit tui``) at scale, headless.

    python3 share/bench/bench_tui.py [--nodes 1000] [--tasks 100000] [--gpus 4] [--batch 3000]

A synthetic pilot (:mod:`pilotkit.tui.synthetic`): ``--nodes`` NodeReady events with
``--gpus`` GPUs each, ``--tasks`` tasks started and finished, and rounds of metrics for
every node. The events go into the dashboard's model in batches of ``--batch`` events
(what arrives between two repaints of a very busy pilot at 10 Hz) while the pilot screen
is open in ``App.run_test``; every batch is timed from the first event applied to the
screen rendered: apply and repaint in wall time, plus the CPU time Textual's render pass
takes (waiting for it sleeps until the process is idle, so its wall time says little).
Then the same for one metrics
round (every node updated at once), a filtered and a sorted task view, the key response
of the task table (j, k, G, g: CPU time from the key to the screen rendered), and the
overview. Compare with a small pilot: ``--nodes 20 --tasks 2000``.

Prints the timings (median, 95th percentile, max; goal: under 50 ms per batch) and the
memory the model and widgets use (tracemalloc, and the process's RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import statistics
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pilotkit.events import Event, Metrics
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.model import Connection, DashboardModel
from pilotkit.tui.screens.overview import OverviewScreen
from pilotkit.tui.screens.pilot import PilotScreen
from pilotkit.tui.source import DataSource
from pilotkit.tui.synthetic import cluster_events
from pilotkit.tui.widgets.task_table import TaskTable

PILOT = "bench-20250615-120000-0001"


class HandFed(DataSource):
    """A source the benchmark feeds by hand."""

    mode = "replay"
    can_control = False

    def describe(self) -> str:
        return "benchmark"

    async def run(self, model: DashboardModel, changed: Callable[[], None],
                  connection: Callable[[Connection], None]) -> None:
        connection(Connection("replay", "benchmark"))

    async def logs(self, pilot: str, task: str | None, *, stderr: bool = False, tail: int = 500,
                   follow: bool = True) -> AsyncIterator[tuple[str, list[float | None] | None]]:
        yield "", None

    async def control(self, action: str, pilot: str) -> str:
        return ""

    async def submit(self, text: str, path: str | None) -> str:
        return ""


async def rendered(pilot: Any) -> float:
    """Let Textual render what changed; the CPU time that took (the pause itself sleeps
    until the process is idle, which is not work)."""
    cpu = time.process_time()
    await pilot.pause()
    return time.process_time() - cpu


def model_memory(events: Iterable[Event]) -> int:
    """Bytes a fresh model holds once every event is applied."""
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    model = DashboardModel(frozen_clock=True)
    model.apply_events(events)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del model
    return after - before


def stats(label: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return (f"{label:<44} n={len(ms):<4} median {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   "
            f"max {ms[-1]:7.2f} ms")


async def bench(args: argparse.Namespace) -> int:
    process = psutil.Process()
    rss0 = process.memory_info().rss
    gen2 = {"n": 0}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info.get("generation") == 2:
            gen2["n"] += 1

    def stream() -> Iterator[Event]:
        return cluster_events(pilot=PILOT, nodes=args.nodes, gpus_per_node=args.gpus, tasks=args.tasks,
                              metric_rounds=args.rounds)

    def batches() -> Iterator[list[Event]]:
        """The stream in batches, made as they are applied (as a daemon would send them)."""
        events = stream()
        while batch := list(itertools.islice(events, args.batch)):
            yield batch

    app = PilotkitApp(HandFed(), tick=False)
    model = app.model
    counted = {"events": 0, "metrics": 0}
    per_batch: list[float] = []
    apply_only: list[float] = []
    repaint_only: list[float] = []
    render_only: list[float] = []
    gc.callbacks.append(on_gc)
    async with app.run_test(size=(200, 60)) as pilot:
        for n, batch in enumerate(batches()):
            counted["events"] += len(batch)
            counted["metrics"] += sum(1 for e in batch if isinstance(e, Metrics))
            if n == 0:
                model.apply_events(batch)  # the pilot exists: open its page
                app.push_screen(PilotScreen(PILOT))
                await pilot.pause()
                continue
            start = time.perf_counter()
            model.apply_events(batch)
            applied = time.perf_counter()
            app.repaint()
            painted = time.perf_counter()
            render = await rendered(pilot)
            per_batch.append(painted - start + render)
            apply_only.append(applied - start)
            repaint_only.append(painted - applied)
            render_only.append(render)
        view = model.pilots[PILOT]
        totals = view.totals()
        print(f"synthetic stream: {counted['events']} events ({args.nodes} nodes x {args.gpus} GPUs, "
              f"{args.tasks} tasks, {counted['metrics']} metric samples)")
        print(f"applied: {totals.done} done, {totals.failed} failed of {totals.total}; "
              f"{len(view.nodes)} nodes; {len(view.tasks)} task rows")
        print()
        gc.callbacks.remove(on_gc)
        print(stats(f"batch of {args.batch} events: apply+repaint+render", per_batch))
        print(stats("  of which apply to the model", apply_only))
        print(stats("  of which repaint (widgets from the model)", repaint_only))
        print(stats("  of which render (Textual, CPU time)", render_only))

        # one metrics round: every node's row changes
        node_names = list(view.nodes)
        rounds: list[float] = []
        t = model.latest_t
        for r in range(5):
            t += 1.0
            samples = [
                Metrics(pilot=PILOT, t=t, node=name, cpu_percent=float((i * 7 + r * 13) % 100),
                        memory_used=(i % 200 + 20) * 2**30,
                        gpus=[{"index": g, "utilization": (i + g + r) % 100, "memory_used": g * 2**30,
                               "memory_total": 40 * 2**30} for g in range(args.gpus)])
                for i, name in enumerate(node_names)
            ]
            start = time.perf_counter()
            model.apply_events(samples)
            app.repaint()
            painted = time.perf_counter()
            rounds.append(painted - start + await rendered(pilot))
        print(stats(f"metrics round ({len(node_names)} nodes): apply+repaint+render", rounds))

        table = app.screen.query_one(TaskTable)
        filtered: list[float] = []
        for text in ("failed", "!train", "node0007"):
            start = time.perf_counter()
            table.set_filter(text)
            done = time.perf_counter()
            filtered.append(done - start + await rendered(pilot))
        print(stats(f"task filter over {len(view.tasks)} tasks (on typing)", filtered))
        sorted_: list[float] = []
        for key in ("task", "status", "time"):
            start = time.perf_counter()
            table.set_sort(key)
            done = time.perf_counter()
            sorted_.append(done - start + await rendered(pilot))
        print(stats(f"task sort over {len(view.tasks)} tasks (on a key)", sorted_))
        table.set_filter("")
        table.set_sort("recent", False)

        # key response: the cursor down and up the task table, each press until rendered
        table.focus()
        await pilot.pause()
        keys: list[float] = []
        for key in ["j"] * 40 + ["k"] * 40 + ["G", "g"] * 5:
            cpu = time.process_time()
            await pilot.press(key)
            keys.append(time.process_time() - cpu)
        print(stats(f"key (j, k, G, g) over {len(view.tasks)} tasks (CPU)", keys))

        app.pop_screen()
        await pilot.pause()
        overview: list[float] = []
        for _ in range(5):
            start = time.perf_counter()
            app.repaint()
            done = time.perf_counter()
            overview.append(done - start + await rendered(pilot))
        print(stats("overview repaint+render", overview))
        assert isinstance(app.screen, OverviewScreen)
        gc.collect()
        rss = process.memory_info().rss
    print()
    print(f"memory: process RSS {rss / 2**20:.0f} MiB with the dashboard running (+{(rss - rss0) / 2**20:.0f} "
          f"MiB since start)")
    print(f"memory: the model alone (tracemalloc): {model_memory(stream()) / 2**20:.1f} MiB")
    print(f"full garbage collections during the batches: {gen2['n']} (the heap grows by a quarter between "
          "two; they are the slow batches)")
    ms = sorted(s * 1000 for s in per_batch)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    goal = "met" if p95 < 50 else "NOT met"
    print(f"goal (p95 under 50 ms per batch): {goal}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--gpus", type=int, default=4, help="GPUs per node")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10, help="metrics rounds spread over the run")
    parser.add_argument("--batch", type=int, default=3000, help="events applied between two repaints")
    args = parser.parse_args()
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
