#!/usr/bin/env python3
"""Benchmark a Slurm pilot on the project's 3-node test cluster, in one run:

    share/testcluster/testcluster up && eval "$(share/testcluster/testcluster env)"
    python3 share/bench/bench_slurm.py [--tasks 3000]

Prints:
  - time from the batch job starting to all node agents ready (NodeReady for 3 nodes);
  - tasks/s for N x /bin/true through the Slurm pilot (3 nodes x 2 cores), through the
    local pilot (this machine, 2 cores), and through bare srun steps (one step per task,
    the way a job script without a pilot would do it).
All "nodes" of the test cluster share this machine's 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path

from pilotkit.events import Event, Log, NodeReady, TaskFinished, TaskStarted
from pilotkit.pilot import Pilot
from pilotkit.plugins import Plugins
from pilotkit.spec import parse_spec


def spec(provider: str, nodes: int, tasks: int) -> str:
    values = ", ".join(str(i) for i in range(tasks))
    res = f"nodes = {nodes}\nwalltime = \"20m\"" if provider == "slurm" else "cores = 2"
    return (
        f'name = "bench-{provider}"\n[provider]\ntype = "{provider}"\n[resources]\n{res}\n'
        f'[[app.groups]]\nname = "b"\ncommand = "/bin/true"\n[app.groups.grid]\ni = [{values}]\n'
    )


async def run_pilot(text: str, workdir: Path, plugins: Plugins) -> dict[str, float]:
    resolved = parse_spec(text, workdir / "spec.toml", plugins)
    pilot = Pilot(resolved, plugins, workdir=workdir)
    events: list[Event] = []
    pilot.bus.subscribe(events.append)
    outcome = await pilot.run()
    if outcome.state.value != "done":
        raise SystemExit(f"pilot ended {outcome.state.value}: {outcome.reason}")
    starts = [e.t for e in events if isinstance(e, TaskStarted)]
    ends = [e.t for e in events if isinstance(e, TaskFinished)]
    ready = [e.t for e in events if isinstance(e, NodeReady)]
    running = [e.t for e in events if isinstance(e, Log) and " running on " in e.message]
    out = {"tasks_per_s": len(ends) / (max(ends) - min(starts))}
    if running:
        out["agents_ready_s"] = max(ready) - running[0]
    return out


def srun_rate(count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        subprocess.run(["srun", "-N1", "-n1", "/bin/true"], check=True)
    return count / (time.perf_counter() - t0)


def srun_latency() -> float:
    t0 = time.perf_counter()
    subprocess.run(["srun", "-N3", "/bin/true"], check=True)
    return time.perf_counter() - t0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--srun-steps", type=int, default=30)
    args = parser.parse_args()
    if "SLURM_CONF" not in os.environ:
        raise SystemExit('run: eval "$(share/testcluster/testcluster env)" first')
    os.environ.setdefault("PILOTKIT_CALLBACK_HOST", os.environ.get("PILOTKIT_TESTCLUSTER_HOST_ADDR", ""))
    plugins = Plugins().load()
    with tempfile.TemporaryDirectory(prefix="pilotkit-bench-") as tmp:
        base = Path(tmp)
        slurm = await run_pilot(spec("slurm", 3, args.tasks), base / "slurm", plugins)
        local = await run_pilot(spec("local", 1, args.tasks), base / "local", plugins)
    steps = await asyncio.to_thread(srun_rate, args.srun_steps)
    latency = await asyncio.to_thread(srun_latency)
    print(f"job running -> 3 node agents ready: {slurm['agents_ready_s']:.3f} s  (bare srun -N3 true: {latency:.3f} s)")
    print(f"{args.tasks} x /bin/true, tasks/s:")
    print(f"  Slurm pilot, 3 nodes        {slurm['tasks_per_s']:8.0f}")
    print(f"  local pilot, 2 cores        {local['tasks_per_s']:8.0f}")
    print(f"  srun step per task          {steps:8.1f}   (ratio pilot/srun {slurm['tasks_per_s'] / steps:.0f}x)")


if __name__ == "__main__":
    asyncio.run(main())
