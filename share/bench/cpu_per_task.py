#!/usr/bin/env python3
"""CPU spent per task by a Slurm pilot (3 nodes of the test cluster) and by a local pilot
(2 cores), N x /bin/true each, in alternating rounds: the whole machine's busy CPU (from
``/proc/stat``) and the pilot process's own (``getrusage``); the rest is the node agents,
the tasks and Slurm. On the test cluster, whose nodes share this machine's cores, tasks/s
follows these figures (row 5 of ``bench.py``).

    eval "$(share/testcluster/testcluster env)"
    flock -o /tmp/pilotkit-testcluster.lock python share/bench/cpu_per_task.py [--tasks 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_slurm

from pilotkit.plugins import Plugins


def machine_busy() -> float:
    """Seconds of CPU the whole machine has been busy since boot (all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    n = args.tasks
    plugins = Plugins().load()
    for _ in range(args.rounds):
        for provider, nodes in (("slurm", 3), ("local", 1)):
            with tempfile.TemporaryDirectory(prefix="pilotkit-cpu-") as tmp:
                own0, busy0, t0 = own_cpu(), machine_busy(), time.perf_counter()
                out = asyncio.run(bench_slurm.run_pilot(bench_slurm.spec(provider, nodes, n), Path(tmp) / "run", plugins))
                own, busy, wall = own_cpu() - own0, machine_busy() - busy0, time.perf_counter() - t0
            print(
                f"{provider:5s} {out['tasks_per_s']:6.0f} tasks/s; machine CPU {1000 * busy / n:.2f} ms/task: "
                f"the pilot {1000 * own / n:.2f}, the rest (agents, tasks, Slurm) {1000 * (busy - own) / n:.2f}; "
                f"whole run {wall:.1f} s"
            )


if __name__ == "__main__":
    main()
