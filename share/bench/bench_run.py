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
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import idle_overhead, run_pilotkit, run_xargs, spec_text


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
            xargs = args.tasks / run_xargs(args.tasks, args.slots)
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
