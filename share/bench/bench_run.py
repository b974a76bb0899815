#!/usr/bin/env python3
"""Benchmark ``pilotkit run`` against ``xargs -P2`` on the same work, in one run.

    python3 share/bench/bench_run.py [--tasks 10000] [--slots 2] [--repeat 3]

Prints, per repetition and as medians:
  - tasks/s for N x /bin/true through ``pilotkit run`` (first task start to last end)
    and through ``xargs -P<slots>``, and their ratio;
  - start-up: from launching ``pilotkit run`` to the first task running;
  - peak RSS of the pilotkit process;
  - idle overhead: CPU used by the pilot process while 2 tasks sleep for 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def spec_text(name: str, n: int, slots: int, command: str) -> str:
    values = ", ".join(str(i) for i in range(n))
    return f"""name = "{name}"
[resources]
cores = {slots}
[app]
type = "tasks"
[[app.groups]]
name = "bench"
command = "{command}"
[app.groups.grid]
i = [{values}]
"""


def pilotkit_exe() -> str | None:
    """The installed console script beside this interpreter (not a shell shim)."""
    beside = Path(sys.executable).parent / "pilotkit"
    return str(beside) if beside.exists() else shutil.which("pilotkit")


def run_pilotkit(spec: Path, workdir: Path) -> dict[str, float]:
    exe = pilotkit_exe()
    argv = (
        [exe, "run", "--quiet", "--workdir", str(workdir), str(spec)]
        if exe
        else [
            sys.executable,
            "-m",
            "pilotkit.cli.main",
            "run",
            "--quiet",
            "--workdir",
            str(workdir),
            str(spec),
        ]
    )
    t0 = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(
            f"pilotkit run failed ({proc.returncode}): {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    starts, ends = [], []
    with open(workdir / "results.jsonl") as f:
        for line in f:
            r = json.loads(line)
            starts.append(r["start"])
            ends.append(r["end"])
    return {
        "tasks": len(starts),
        "tasks_per_s": len(starts) / (max(ends) - min(starts)),
        "startup_s": min(starts) - t0,
        "wall_s": wall,
        "peak_rss_mib": rusage.ru_maxrss / 1024,
        "cpu_s": rusage.ru_utime + rusage.ru_stime,
    }


def run_xargs(n: int, slots: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        f"seq {n} | xargs -P{slots} -n1 /bin/true",
        shell=True,
        check=True,
    )
    return n / (time.perf_counter() - t0)


def idle_overhead(tmp: Path) -> float:
    """Percent of one core the pilot process uses while its 2 tasks sleep 5 s."""
    import psutil

    spec = tmp / "idle.toml"
    spec.write_text(
        'name = "idle"\n[resources]\ncores = 2\n[[app.groups]]\nname = "sleep"\n'
        'commands = ["sleep 5", "sleep 5"]\n'
    )
    exe = pilotkit_exe() or "pilotkit"
    proc = psutil.Popen(
        [exe, "run", "--quiet", "--workdir", str(tmp / "idle"), str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)  # past start-up
    before = proc.cpu_times()
    t0 = time.perf_counter()
    time.sleep(3.0)
    after = proc.cpu_times()
    elapsed = time.perf_counter() - t0
    proc.wait()
    used = (after.user + after.system) - (before.user + before.system)
    return 100.0 * used / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pilotkit-bench-") as tmpdir:
        tmp = Path(tmpdir)
        spec = tmp / "bench.toml"
        spec.write_text(spec_text("bench", args.tasks, args.slots, "/bin/true"))
        for rep in range(args.repeat):
            # Every repetition starts from a settled disk: write-back of the previous
            # run's 30,000 task files and directories would otherwise slow this one.
            os.sync()
            xargs = run_xargs(args.tasks, args.slots)
            os.sync()
            pk = run_pilotkit(spec, tmp / f"run{rep}")
            row = {**pk, "xargs_tasks_per_s": xargs, "ratio": pk["tasks_per_s"] / xargs}
            rows.append(row)
            print(
                f"rep {rep + 1}: pilotkit {pk['tasks_per_s']:.0f} tasks/s, xargs -P{args.slots} "
                f"{xargs:.0f} tasks/s, ratio {row['ratio']:.2f}; start-up {pk['startup_s']:.3f}s; "
                f"peak RSS {pk['peak_rss_mib']:.1f} MiB"
            )
        idle = idle_overhead(tmp)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print()
    print(f"{args.tasks} x /bin/true on {args.slots} slots, median of {args.repeat}:")
    print(f"  pilotkit run      {med('tasks_per_s'):8.0f} tasks/s")
    print(f"  xargs -P{args.slots}        {med('xargs_tasks_per_s'):8.0f} tasks/s")
    print(f"  ratio             {med('ratio'):8.2f}   (floor 0.6, aim 1.0)")
    print(f"  start-up to first task running  {med('startup_s'):.3f} s   (limit 0.5, aim 0.25)")
    print(f"  peak RSS of pilotkit run        {med('peak_rss_mib'):.1f} MiB (limit 80, aim 50)")
    print(f"  idle overhead, 2 sleeping tasks {idle:.2f} % of a core (limit 1%)")


if __name__ == "__main__":
    main()
