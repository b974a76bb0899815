"""Launch latency of a 3-rank job through pilotkit against a bare ``srun -N3 hostname``.

Needs the project's Slurm test cluster up (``share/testcluster/testcluster up``) and
pilotkit-mpi installed. Measures, in one run:

- ``srun -N3 hostname`` from outside: a new job allocation and one step, each time;
- pilotkit, per trial: from the pool dispatching the gang task to the task's exit (the
  ``start``/``end`` of each results line), for a 3-node trial running ``hostname`` on 3
  ranks through the launch wrapper and srun, with and without the rank shim; several
  trials per pilot, one after the other on the same three nodes;
- pilotkit, whole ``pilotkit run`` wall time for one such trial (claim, agents, run,
  release), as a user sees it.

Usage: ``python plugins/mpi/bench_launch.py [--reps N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC = """name = "bench-mpi"
[provider]
type = "slurm"
[resources]
nodes = 3
walltime = "10m"
[pilot]
heartbeat = "0.5s"
heartbeat_timeout = "5s"
grace = "2s"
[app]
type = "mpi"
command = "hostname"
rank_env = {rank_env}
{scan}
"""


def cluster_env() -> dict[str, str]:
    """The test cluster's client environment; exits when the cluster is not up."""
    from pilotkit.testing.slurm import cluster_env as read_env
    from pilotkit.testing.slurm import testcluster_script

    script = testcluster_script()
    if subprocess.run([str(script), "status"], capture_output=True).returncode != 0:
        raise SystemExit(f"the Slurm test cluster is not up: run {script} up")
    env = read_env(script)
    env["PILOTKIT_CALLBACK_HOST"] = env["PILOTKIT_TESTCLUSTER_HOST_ADDR"]
    return env


def other_jobs(env: dict[str, str]) -> int:
    """Jobs in the cluster's queue now (other users' work skews the figures)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True, timeout=60)
    return len(out.stdout.split())


def bare_srun(reps: int, env: dict[str, str]) -> list[float]:
    """Seconds per ``srun -N3 hostname`` (a fresh allocation each time)."""
    times = []
    for _ in range(reps):
        busy = other_jobs(env)
        if busy:
            print(f"note: {busy} other job(s) in the queue before this srun", file=sys.stderr)
        t0 = time.perf_counter()
        out = subprocess.run(
            ["srun", "-N3", "hostname"], env=env, capture_output=True, text=True, timeout=120
        )
        times.append(time.perf_counter() - t0)
        if out.returncode != 0 or len(out.stdout.split()) != 3:
            raise SystemExit(f"srun -N3 hostname failed: {out.stderr.strip()}")
    return times


def pilot_run(
    workdir: Path, env: dict[str, str], *, trials: int, rank_env: bool
) -> tuple[float, list[float]]:
    """(``pilotkit run`` wall seconds, dispatch-to-exit seconds of each trial)."""
    scan = f"[app.scan.grid]\ni = {list(range(trials))}\n" if trials > 1 else ""
    spec = workdir / "spec.toml"
    spec.write_text(SPEC.format(rank_env=str(rank_env).lower(), scan=scan))
    run_dir = workdir / "run"
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pilotkit.cli.main", "run", "-q", "--workdir", str(run_dir), str(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"pilotkit run failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    bad = [r["task"] for r in results if r["status"] != "ok"]
    if bad or len(results) != trials:
        raise SystemExit(f"trials did not all succeed: {bad or results}")
    for r in results:
        hosts = sorted(Path(r["stdout"]).read_text().split())
        if hosts != ["node1", "node2", "node3"]:
            raise SystemExit(f"trial {r['task']} printed {hosts}")
    return wall, [r["end"] - r["start"] for r in results]


def stats(values: list[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5, help="srun runs, and trials per pilot (default 5)")
    parser.add_argument("--pilots", type=int, default=3, help="whole pilotkit runs timed (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    env = {**os.environ, **cluster_env()}
    env.pop("PILOTKIT_EVENTLOG", None)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mpi-") as tmp:
        root = Path(tmp)
        figures["bare srun -N3 hostname"] = stats(bare_srun(args.reps, env))
        for rank_env in (True, False):
            work = root / f"trials-{rank_env}"
            work.mkdir()
            _, latencies = pilot_run(work, env, trials=args.reps, rank_env=rank_env)
            name = "pilotkit trial dispatch->exit" + ("" if rank_env else " (no rank shim)")
            figures[name] = stats(latencies)
        walls, single = [], []
        for i in range(args.pilots):
            work = root / f"pilot-{i}"
            work.mkdir()
            wall, (latency,) = pilot_run(work, env, trials=1, rank_env=True)
            walls.append(wall)
            single.append(latency)
        figures["pilotkit run wall time (1 trial)"] = stats(walls)
        figures["  of which dispatch->exit"] = stats(single)
    if args.json:
        print(json.dumps(figures, indent=1))
        return
    print(f"{'3 ranks of hostname on node1..node3':44} {'median':>8} {'min':>8} {'max':>8} {'n':>3}")
    for name, s in figures.items():
        print(f"{name:44} {s['median']:8.3f} {s['min']:8.3f} {s['max']:8.3f} {s['n']:3d}")


if __name__ == "__main__":
    main()
