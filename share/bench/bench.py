#!/usr/bin/env python3
"""pilotkit's performance against its references, side by side in one run.

    .venv/bin/python share/bench/bench.py [--rounds 5] [--only 1,2,...] [--quick]
                                          [--peers-python /tmp/peers/bin/python] [--json FILE]

Each row of the table of issue 24 runs interleaved: round 1 runs pilotkit and then each
reference, round 2 the same again, and so on. For each row it prints median [min-max]
over the rounds for pilotkit and each reference, the ratio pilotkit / reference (the
median of the per-round ratios, with which way is better), and the goal and whether the
median meets it. A missing peer or test cluster is a named skip. Rows:

  1  N x /bin/true on 2 local slots: first task start to last task end, and the whole
     ``pilotkit run`` process, vs ``xargs -P2`` and HyperQueue
  2  start of ``pilotkit run`` to its first task running (local) vs HyperQueue
  3  peak RSS for N tasks vs HyperQueue; a 1,000,000-task scan (a lazy grid): first task
     and RSS
  4  Slurm job running to 3 node agents ready (test cluster) vs ``srun -N3 true``
  5  3,000 x /bin/true on the 3-node test cluster vs a local pilot and xargs
  6  Dask: a pilot to 3 workers connected (test cluster) vs dask-jobqueue ``scale(jobs=3)``
  7  2,000,000-combination grid: first task and RSS
  8  the daemon with simulated agents heartbeating at 1 Hz (1,000 and 10,000): its CPU
  9  an idle pilot's CPU while its tasks run long

Rows 1-3 share their runs (one ``pilotkit run``, one xargs, one HyperQueue per round).
Every pilot runs as a user would run it: per-task logs, ``results.jsonl``, events,
retries and the walltime drain are all on. Peers: see share/bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "plugins" / "dask"))

import benchlib  # noqa: E402
from benchlib import Stat  # noqa: E402

OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}


@dataclass
class Goal:
    text: str
    key: str  # a series or a ratio label
    op: str
    limit: float


@dataclass
class Row:
    """One row of the table: series of samples (one per round), ratios, goals, skips."""

    number: int
    title: str
    unit: str
    better: str  # "lower" or "higher"
    series: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    ratios: list[tuple[str, str, str]] = field(default_factory=list)  # (label, pilotkit series, reference)
    goals: list[Goal] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def add(self, name: str, value: float, unit: str | None = None) -> None:
        self.series.setdefault(name, []).append(value)
        if unit:
            self.units[name] = unit

    def ratio_values(self, num: str, den: str) -> list[float]:
        a, b = self.series.get(num, []), self.series.get(den, [])
        return [x / y for x, y in zip(a, b, strict=False) if y]

    def values(self, key: str) -> list[float]:
        for label, num, den in self.ratios:
            if label == key:
                return self.ratio_values(num, den)
        return self.series.get(key, [])

    def lines(self) -> list[str]:
        out = [f"({self.number}) {self.title} [{self.unit}, {self.better} is better]"]
        width = max([len(n) for n in self.series] + [len(r[0]) for r in self.ratios] + [20]) + 2
        for name, values in self.series.items():
            unit = self.units.get(name, "")
            note = f"   {self.notes[name]}" if name in self.notes else ""
            out.append(f"    {name:<{width}} {Stat.of(values).format()}{' ' + unit if unit else ''}{note}")
        for skip in self.skips:
            out.append(f"    skipped: {skip}")
        for line in self.info:
            out.append(f"    note: {line}")
        for label, num, den in self.ratios:
            values = self.ratio_values(num, den)
            if values:
                better = "below 1 pilotkit is better" if self.better == "lower" else "above 1 pilotkit is better"
                out.append(f"    {label:<{width}} {Stat.of(values).format()}   ({num} / {den}; {better})")
        for goal in self.goals:
            values = self.values(goal.key)
            if not values:
                out.append(f"    goal: {goal.text}: not measured in this run")
                continue
            median = Stat.of(values).median
            met = "met" if OPS[goal.op](median, goal.limit) else "NOT met"
            out.append(f"    goal: {goal.text}: {met} (median {median:.4g})")
        if self.error:
            out.append(f"    failed: {self.error}")
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "row": self.number,
            "title": self.title,
            "unit": self.unit,
            "better": self.better,
            "samples": self.series,
            "units": self.units,
            "ratios": {label: self.ratio_values(num, den) for label, num, den in self.ratios},
            "goals": [
                {
                    "goal": g.text,
                    "median": Stat.of(self.values(g.key)).median if self.values(g.key) else None,
                    "met": OPS[g.op](Stat.of(self.values(g.key)).median, g.limit) if self.values(g.key) else None,
                }
                for g in self.goals
            ],
            "skipped": self.skips,
            "notes": self.info,
            "error": self.error,
        }


class Context:
    """What the rows share: options, a scratch folder, peers, the test cluster."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.local_runs: dict[int, dict[str, Any]] = {}
        self._hq_skip: str | bool | None = False
        self._cluster: dict[str, str] | str | None = None

    def folder(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def hq_skip(self) -> str | None:
        """Why HyperQueue cannot run here, or None."""
        if self._hq_skip is False:
            # The peer first (what a user installs), then the driver beside the repository.
            self._hq_skip = benchlib.peer_missing(self.args.peers_python, "hyperqueue", "HyperQueue")
            if self._hq_skip is None and benchlib.find_peerbench() is None:
                self._hq_skip = f"HyperQueue: peerbench.py not found (shared/peers): {benchlib.PEERS_README}"
        return self._hq_skip if isinstance(self._hq_skip, str) else None

    def hq(self, workload: str, n: int) -> dict[str, Any]:
        peerbench = benchlib.find_peerbench()
        assert peerbench is not None
        return benchlib.run_peerbench(self.args.peers_python, peerbench, "hq", workload, n, self.folder("peerbench"))

    def local_round(self, index: int) -> dict[str, Any]:
        """One round of rows 1-3: ``pilotkit run`` of N x /bin/true, xargs, HyperQueue."""
        if index not in self.local_runs:
            n, slots = self.args.tasks, 2
            spec = self.folder("local") / "bench.toml"
            if not spec.exists():
                spec.write_text(benchlib.spec_text("bench", n, slots, "/bin/true"))
            result: dict[str, Any] = {}
            os.sync()  # the previous run's task files written back first
            result["pilotkit"] = benchlib.run_pilotkit(spec, self.tmp / "local" / f"run{index}")
            # Kept until the bench ends: removing it here made the next round's pilot pay
            # for it (ext4 without a journal steps over recently freed inodes when it
            # makes new ones; see RESULTS.md), which xargs, making no files, never does.
            os.sync()
            result["xargs"] = benchlib.run_xargs(n, slots)
            if self.hq_skip() is None:
                os.sync()
                result["hq"] = self.hq("w1", n)
            self.local_runs[index] = result
        return self.local_runs[index]

    def cluster(self) -> dict[str, str] | str:
        """The test cluster's environment (brought up if it is down, and left up), or
        why there is none. Rows that use it hold :func:`cluster_lock`."""
        if self._cluster is None:
            self._cluster = self._find_cluster()
        return self._cluster

    def _find_cluster(self) -> dict[str, str] | str:
        if shutil.which("slurmctld") is None or shutil.which("srun") is None:
            return "Slurm test cluster: slurmctld/srun not installed (share/dev/install-system-deps)"
        if os.geteuid() != 0:
            return "Slurm test cluster: needs root (network namespaces)"
        from pilotkit.testing.slurm import cluster_env, cluster_lock, testcluster_script

        script = testcluster_script()
        if not script.exists():
            return f"Slurm test cluster: {script} not found"
        with cluster_lock():
            if subprocess.run([str(script), "status"], capture_output=True).returncode != 0:
                up = subprocess.run([str(script), "up", "3"], capture_output=True, text=True)
                if up.returncode != 0:
                    return f"Slurm test cluster did not come up: {(up.stderr or up.stdout).strip()[-300:]}"
            env = cluster_env(script)
        env["PILOTKIT_CALLBACK_HOST"] = env.get("PILOTKIT_TESTCLUSTER_HOST_ADDR", "")
        return env


def rounds(ctx: Context) -> range:
    return range(ctx.args.rounds)


# --------------------------------------------------------------------------- local rows


def row_throughput(ctx: Context) -> Row:
    n = ctx.args.tasks
    row = Row(1, f"{n:,} x /bin/true, 2 slots, local", "seconds", "lower")
    row.ratios = [
        ("ratio span / xargs", "pilotkit: first start to last end", "xargs -P2: whole process"),
        ("ratio whole / xargs", "pilotkit run: whole process", "xargs -P2: whole process"),
    ]
    hq_skip = ctx.hq_skip()
    if hq_skip:
        row.skips.append(hq_skip)
    else:
        row.ratios.append(("ratio span / HyperQueue", "pilotkit: first start to last end", "HyperQueue: submit to all done"))
    for i in rounds(ctx):
        run = ctx.local_round(i)
        row.add("pilotkit: first start to last end", run["pilotkit"]["span_s"])
        row.add("pilotkit run: whole process", run["pilotkit"]["wall_s"])
        row.add("xargs -P2: whole process", run["xargs"])
        if "hq" in run:
            row.add("HyperQueue: submit to all done", float(run["hq"]["run_s"]))
    for name, values in row.series.items():
        row.notes[name] = f"({n / Stat.of(values).median:,.0f} tasks/s)"
    row.goals = [
        Goal("first start to last end <= 1.0 x xargs (>= xargs' tasks/s)", "ratio span / xargs", "<=", 1.0),
        Goal("whole pilotkit run <= 1.3 x xargs", "ratio whole / xargs", "<=", 1.3),
    ]
    return row


def row_startup(ctx: Context) -> Row:
    row = Row(2, "start to first task running, local", "seconds", "lower")
    hq_skip = ctx.hq_skip()
    if hq_skip:
        row.skips.append(hq_skip)
    else:
        row.ratios.append(("ratio / HyperQueue", "pilotkit run", "HyperQueue (LocalCluster, 2 cores)"))
    for i in rounds(ctx):
        run = ctx.local_round(i)
        row.add("pilotkit run", run["pilotkit"]["startup_s"])
        if "hq" in run:
            row.add("HyperQueue (LocalCluster, 2 cores)", float(run["hq"]["startup_s"]))
    row.goals = [Goal("<= 0.15 s", "pilotkit run", "<=", 0.15)]
    return row


def row_memory(ctx: Context) -> Row:
    n = ctx.args.tasks
    row = Row(3, f"peak RSS, {n:,} tasks; and a 1,000,000-task scan (lazy grid)", "MiB", "lower")
    hq_skip = ctx.hq_skip()
    if hq_skip:
        row.skips.append(hq_skip)
    else:
        row.ratios.append(("ratio / HyperQueue", f"pilotkit run, {n:,} tasks", "HyperQueue (LocalCluster process)"))
    scan = ctx.folder("scan1m") / "scan.toml"
    scan.write_text(benchlib.grid_spec_text("scan1m", 1000, 1000, 2, "sleep 60"))
    for i in rounds(ctx):
        run = ctx.local_round(i)
        row.add(f"pilotkit run, {n:,} tasks", run["pilotkit"]["peak_rss_mib"])
        if "hq" in run:
            mem = run["hq"]["mem"]  # LocalCluster: server, worker and client in this process
            kib = mem["main_kib"] + sum((c["hwm_kib"] or 0) for c in mem["children"])
            row.add("HyperQueue (LocalCluster process)", kib / 1024)
        first = benchlib.first_task(scan, ctx.tmp / "scan1m" / f"run{i}")
        shutil.rmtree(ctx.tmp / "scan1m" / f"run{i}", ignore_errors=True)
        row.add("1,000,000-task scan: peak RSS to 1 s after the first task", first["peak_rss_mib"])
        row.add("1,000,000-task scan: peak RSS through Ctrl-C", first["peak_rss_with_cancel_mib"])
        row.add("1,000,000-task scan: first task", first["first_task_s"], "s")
        row.add("1,000,000-task scan: Ctrl-C to exit (every task recorded)", first["cancel_s"], "s")
    row.goals = [
        Goal(f"{n:,} tasks <= 36 MiB", f"pilotkit run, {n:,} tasks", "<=", 36.0),
        Goal("1,000,000-task scan <= 300 MiB while it runs", "1,000,000-task scan: peak RSS to 1 s after the first task", "<=", 300.0),
        Goal("1,000,000-task scan <= 300 MiB through Ctrl-C", "1,000,000-task scan: peak RSS through Ctrl-C", "<=", 300.0),
    ]
    return row


def row_big_grid(ctx: Context) -> Row:
    row = Row(7, "2,000,000-combination grid (2,000 x 1,000), 2 slots", "seconds / MiB", "lower")
    spec = ctx.folder("scan2m") / "scan.toml"
    spec.write_text(benchlib.grid_spec_text("scan2m", 2000, 1000, 2, "sleep 60"))
    for i in rounds(ctx):
        first = benchlib.first_task(spec, ctx.tmp / "scan2m" / f"run{i}")
        shutil.rmtree(ctx.tmp / "scan2m" / f"run{i}", ignore_errors=True)
        row.add("start to first task running", first["first_task_s"], "s")
        row.add("RSS at the first task", first["rss_first_mib"], "MiB")
        row.add("peak RSS 1 s later", first["peak_rss_mib"], "MiB")
        row.add("peak RSS through Ctrl-C", first["peak_rss_with_cancel_mib"], "MiB")
        row.add("Ctrl-C to exit (every task recorded)", first["cancel_s"], "s")
    row.goals = [
        Goal("first task < 1 s", "start to first task running", "<", 1.0),
        Goal("RSS < 300 MiB while it runs", "peak RSS 1 s later", "<", 300.0),
        Goal("RSS < 300 MiB through Ctrl-C", "peak RSS through Ctrl-C", "<", 300.0),
    ]
    return row


def row_idle(ctx: Context) -> Row:
    row = Row(9, "idle pilot (2 tasks sleeping) CPU", "% of a core", "lower")
    seconds = 2.0 if ctx.args.quick else 3.0
    for i in rounds(ctx):
        row.add("pilotkit run", benchlib.idle_overhead(ctx.folder(f"idle{i}"), seconds))
    row.goals = [Goal("< 1% of a core", "pilotkit run", "<", 1.0)]
    return row


def row_daemon(ctx: Context) -> Row:
    import bench_daemon

    seconds = 2.0 if ctx.args.quick else 5.0
    row = Row(8, f"daemon with simulated agents heartbeating at 1 Hz, {seconds:g} s each", "% of a core", "lower")

    async def measure() -> None:
        async with bench_daemon.running_daemon() as (sock, proc):
            pilot = await bench_daemon.start_idle_pilot(sock)
            await asyncio.sleep(1.0)
            for _ in rounds(ctx):
                for agents in (1000, 10000):
                    cpu, handled = await bench_daemon.agents_load(sock, pilot, agents, seconds, proc)
                    row.add(f"daemon, {agents:,} agents", 100 * cpu, "%")
                    row.add(f"heartbeats handled of {int(agents * seconds):,}, {agents:,} agents", float(handled))

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    try:
        asyncio.run(measure())
    finally:
        if runtime is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = runtime
    row.skips.append("no reference run (HyperQueue's server has no agent-load driver here)")
    row.goals = [
        Goal("1,000 agents < 20% of a core", "daemon, 1,000 agents", "<", 20.0),
        Goal("10,000 agents < 50% of a core", "daemon, 10,000 agents", "<", 50.0),
    ]
    return row


# --------------------------------------------------------------------------- cluster rows


class ClusterEnv:
    """The test cluster's environment set in this process while a row holds its lock."""

    def __init__(self, env: dict[str, str], row: Row) -> None:
        self.env = env
        self.row = row
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        from pilotkit.testing.slurm import cluster_lock

        t0 = time.perf_counter()
        self.lock = cluster_lock()
        self.lock.__enter__()
        waited = time.perf_counter() - t0
        if waited >= 1.0:
            self.row.info.append(f"waited {waited:.0f} s for the test cluster's lock (another user held it)")
        for key, value in self.env.items():
            self.saved[key] = os.environ.get(key)
            os.environ[key] = value

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.lock.__exit__(None, None, None)


def cluster_or_skip(ctx: Context, row: Row) -> dict[str, str] | None:
    env = ctx.cluster()
    if isinstance(env, str):
        row.skips.append(env)
        return None
    return env


def row_slurm_agents(ctx: Context) -> Row:
    import bench_slurm

    from pilotkit.plugins import Plugins

    row = Row(4, "Slurm job running to 3 node agents ready (test cluster)", "seconds", "lower")
    env = cluster_or_skip(ctx, row)
    if env is None:
        return row
    row.ratios = [("ratio / srun -N3 true", "pilotkit: 3 node agents ready", "srun -N3 true: whole")]
    plugins = Plugins().load()
    with ClusterEnv(env, row):
        for i in rounds(ctx):
            result = asyncio.run(
                bench_slurm.run_pilot(bench_slurm.spec("slurm", 3, 6), ctx.folder(f"slurm-agents{i}"), plugins)
            )
            row.add("pilotkit: 3 node agents ready", result["agents_ready_s"])
            row.add("srun -N3 true: whole", bench_slurm.srun_latency())
    row.goals = [Goal("<= 0.3 s", "pilotkit: 3 node agents ready", "<=", 0.3)]
    return row


def row_slurm_tasks(ctx: Context) -> Row:
    import bench_slurm

    from pilotkit.plugins import Plugins

    n = ctx.args.cluster_tasks
    row = Row(5, f"{n:,} x /bin/true on the 3-node test cluster (first start to last end)", "tasks/s", "higher")
    env = cluster_or_skip(ctx, row)
    if env is None:
        return row
    row.ratios = [
        ("ratio / local pilot", "pilotkit: Slurm pilot, 3 nodes", "pilotkit: local pilot, 2 cores"),
        ("ratio / xargs", "pilotkit: Slurm pilot, 3 nodes", "xargs -P2 (local)"),
    ]
    plugins = Plugins().load()
    with ClusterEnv(env, row):
        for i in rounds(ctx):
            slurm = asyncio.run(
                bench_slurm.run_pilot(bench_slurm.spec("slurm", 3, n), ctx.folder(f"slurm-tasks{i}"), plugins)
            )
            row.add("pilotkit: Slurm pilot, 3 nodes", slurm["tasks_per_s"])
            local = asyncio.run(
                bench_slurm.run_pilot(bench_slurm.spec("local", 1, n), ctx.folder(f"local-tasks{i}"), plugins)
            )
            row.add("pilotkit: local pilot, 2 cores", local["tasks_per_s"])
            row.add("xargs -P2 (local)", n / benchlib.run_xargs(n, 2))
            # (their run directories are kept until the bench ends, as row 1's)
    row.goals = [Goal(">= 0.9 x the local pilot", "ratio / local pilot", ">=", 0.9)]
    return row


JOBQUEUE = """
import asyncio, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import bench_startup
r = asyncio.run(bench_startup.bench_jobqueue(Path(sys.argv[2])))
print(json.dumps({"ready": r.ready, "from_running": r.from_running}))
"""


def row_dask(ctx: Context) -> Row:
    row = Row(6, "Dask: submit to 3 workers connected (test cluster)", "seconds", "lower")
    env = cluster_or_skip(ctx, row)
    if env is None:
        return row
    import importlib.util

    if importlib.util.find_spec("pilotkit_dask") is None or importlib.util.find_spec("distributed") is None:
        row.skips.append("pilotkit's Dask app: pilotkit_dask or distributed not installed (share/dev/setup)")
        return row
    python = ctx.args.peers_python
    missing = benchlib.peer_missing(python, "dask_jobqueue", "dask-jobqueue")
    if missing:
        row.skips.append(missing)
    else:
        row.ratios = [("ratio / dask-jobqueue", "pilotkit: Dask app, 3 nodes", "dask-jobqueue: scale(jobs=3)")]
    import bench_startup

    plugin_dir = str(HERE.parents[1] / "plugins" / "dask")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    with ClusterEnv(env, row):
        for i in rounds(ctx):
            mine = asyncio.run(bench_startup.bench_pilotkit(ctx.folder(f"dask-pk{i}")))
            row.add("pilotkit: Dask app, 3 nodes", mine.ready)
            row.add("pilotkit: job running to 3 workers", mine.from_running)
            if missing:
                continue
            folder = ctx.folder(f"dask-jq{i}")
            out = subprocess.run(
                [python, "-c", JOBQUEUE, plugin_dir, str(folder)], capture_output=True, text=True, timeout=900
            )
            if out.returncode != 0 or not out.stdout.strip():
                raise RuntimeError(f"dask-jobqueue failed: {out.stderr.strip()[-500:]}")
            theirs = json.loads(out.stdout.strip().splitlines()[-1])
            row.add("dask-jobqueue: scale(jobs=3)", float(theirs["ready"]))
            row.add("dask-jobqueue: job running to 3 workers", float(theirs["from_running"]))
    row.goals = [Goal("<= 0.6 x dask-jobqueue", "ratio / dask-jobqueue", "<=", 0.6)]
    return row


ROWS: dict[int, Callable[[Context], Row]] = {
    1: row_throughput,
    2: row_startup,
    3: row_memory,
    4: row_slurm_agents,
    5: row_slurm_tasks,
    6: row_dask,
    7: row_big_grid,
    8: row_daemon,
    9: row_idle,
}

TITLES = {
    1: "N x /bin/true, 2 slots, local",
    2: "start to first task running, local",
    3: "peak RSS",
    4: "Slurm job running to 3 node agents ready",
    5: "tasks on the 3-node test cluster",
    6: "Dask: 3 workers connected",
    7: "2,000,000-combination grid",
    8: "daemon with simulated agents",
    9: "idle pilot CPU",
}


def bad_input(message: str) -> SystemExit:
    print(f"bench.py: {message}", file=sys.stderr)
    return SystemExit(2)


def parse_only(text: str) -> list[int]:
    try:
        chosen = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        chosen = []
    if not chosen or any(c not in ROWS for c in chosen):
        raise bad_input(f"--only {text!r}: expected row numbers among {', '.join(map(str, ROWS))}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None, help="rounds per row (default 5; 1 with --quick)")
    parser.add_argument("--only", default=None, help="comma-separated row numbers (default: all)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small N, 1 round")
    parser.add_argument("--tasks", type=int, default=None, help="N of rows 1-3 (default 2000; 200 with --quick)")
    parser.add_argument(
        "--cluster-tasks", type=int, default=None, help="N of row 5 (default 3000; 300 with --quick)"
    )
    parser.add_argument(
        "--peers-python",
        default=benchlib.default_peers_python(),
        help="the Python of the peers' virtual environment (default $PILOTKIT_PEERS_PYTHON or /tmp/peers/bin/python)",
    )
    parser.add_argument("--json", metavar="FILE", help="write every sample to FILE as JSON")
    args = parser.parse_args(argv)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    args.tasks = args.tasks if args.tasks is not None else (200 if args.quick else 2000)
    args.cluster_tasks = args.cluster_tasks if args.cluster_tasks is not None else (300 if args.quick else 3000)
    if args.rounds < 1 or args.tasks < 1 or args.cluster_tasks < 1:
        raise bad_input("--rounds, --tasks and --cluster-tasks must be at least 1")
    chosen = parse_only(args.only) if args.only else list(ROWS)

    info = benchlib.machine()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"pilotkit bench, {started}; {info['cores']} cores, {info['cpu']}; kernel {info['kernel']}; "
          f"Python {info['python']}; load {info['load']}")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("PYTHONDONTWRITEBYTECODE is set: modules without a cached .pyc compile at every start")
    print(f"rounds: {args.rounds}{' (quick smoke run)' if args.quick else ''}; median [min-max] over the rounds\n",
          flush=True)
    results: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pilotkit-bench-") as tmp:
        ctx = Context(args, Path(tmp))
        for number in chosen:
            try:
                row = ROWS[number](ctx)
            except (Exception, SystemExit) as exc:  # one row failing does not lose the others
                row = Row(number, TITLES[number], "", "lower", error=f"{type(exc).__name__}: {exc}"[:500])
            results.append(row)
            print("\n".join(row.lines()) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"started": started, "machine": info, "args": vars(args), "rows": [r.as_json() for r in results]},
                       indent=1) + "\n"
        )
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
