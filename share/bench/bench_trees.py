#!/usr/bin/env python3
"""Row 1 of the benchmark (N x /bin/true on 2 local slots) for several commits of
pilotkit side by side, interleaved, with ``xargs -P2`` in every round.

    .venv/bin/python share/bench/bench_trees.py HEAD~1 HEAD --rounds 8

Each commit's ``pilotkit/`` is exported (``git archive``) to a temporary folder and run
by this Python in place of the installed one (plugins stay the installed ones). Round
``r`` runs the commits in order (reversed every other round), then xargs. Prints for
each commit median [min-max] of the span (first task start to last task end, from
``results.jsonl``), the whole process's wall, CPU and system time, the per-round ratio
to the first commit and to the one before, and span and wall / xargs.

Every run writes into a workdir of its own, and none is removed before the end: on an
ext4 without a journal, each new inode is looked for past every inode freed in the last
minute or more, so removing a run's 6,000 files just before the next run slows that run
(``--remove-between`` does so, to show it).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

REPO = Path(__file__).resolve().parents[2]
RUN = (
    "import os, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable___pilotkit_0' not in getattr(f, '__module__', '')\n"
    "                    and 'editable___pilotkit_0' not in getattr(type(f), '__module__', '')]\n"
    "sys.path.insert(0, os.environ['BENCH_TREE'])\n"
    "import pilotkit\n"
    "assert pilotkit.__file__.startswith(os.environ['BENCH_TREE']), pilotkit.__file__\n"
    "from pilotkit.cli.main import main\n"
    "sys.argv[0] = 'pilotkit'\n"
    "main()\n"
)


def export(rev: str, into: Path) -> Path:
    """``pilotkit/`` of commit ``rev`` in a folder of its own."""
    tree = into / rev.replace("/", "_").replace("~", "-")
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "pilotkit"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def run_once(tree: Path, spec: Path, workdir: Path, n: int) -> tuple[float, float, float, float]:
    """span, wall, CPU and system seconds of one ``pilotkit run``."""
    argv = [sys.executable, "-c", RUN, "run", "--quiet", "--workdir", str(workdir), str(spec)]
    t0 = time.time()
    proc = subprocess.Popen(argv, env={**os.environ, "BENCH_TREE": str(tree)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    if status != 0:
        raise SystemExit(f"pilotkit run failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    results = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    if len(results) != n:
        raise SystemExit(f"{workdir}: {len(results)} results of {n}")
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return span, wall, usage.ru_utime + usage.ru_stime, usage.ru_stime


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("revs", nargs="+", help="commits to compare (the first is the reference)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--remove-between", action="store_true", help="remove each run's workdir at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilotkit-bench-trees-") as tmpdir:
        tmp = Path(tmpdir)
        trees = [export(rev, tmp / "trees") for rev in args.revs]
        spec = tmp / "bench.toml"
        spec.write_text(benchlib.spec_text("bench", args.tasks, 2, "/bin/true"))
        runs: list[list[tuple[float, float, float, float]]] = [[] for _ in trees]
        xargs: list[float] = []
        loads: list[float] = []
        for r in range(args.rounds):
            order = list(range(len(trees))) if r % 2 == 0 else list(range(len(trees)))[::-1]
            for i in order:
                workdir = tmp / "runs" / f"{i}-{r}"
                os.sync()
                runs[i].append(run_once(trees[i], spec, workdir, args.tasks))
                if args.remove_between:
                    shutil.rmtree(workdir)
            os.sync()
            xargs.append(benchlib.run_xargs(args.tasks, 2))
            loads.append(os.getloadavg()[0])
            spans = " | ".join(f"{rev} {runs[i][-1][0]:.2f}" for i, rev in enumerate(args.revs))
            print(f"round {r + 1}: span {spans} | xargs {xargs[-1]:.2f} | load {loads[-1]:.2f}", flush=True)
    print(
        f"\n{args.tasks} x /bin/true, 2 slots, {args.rounds} interleaved rounds; load (1 min) {spread(loads)}"
    )
    for k, what in enumerate(("span", "wall", "cpu", "sys")):
        print(f"{what} [s]:")
        for i, rev in enumerate(args.revs):
            line = f"  {rev:12s} {spread([run[k] for run in runs[i]])}"
            for j in sorted({0, i - 1}):
                if 0 <= j < i:
                    ratios = [a[k] / b[k] for a, b in zip(runs[i], runs[j], strict=True)]
                    line += f"   / {args.revs[j]} {spread(ratios)}"
            if what in ("span", "wall"):
                line += f"   / xargs {spread([a[k] / x for a, x in zip(runs[i], xargs, strict=True)])}"
            print(line)
    print(f"xargs -P2 [s]: {spread(xargs)}")


if __name__ == "__main__":
    main()
