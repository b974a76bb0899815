#!/usr/bin/env python3
"""The cost of an adaptive search's ask/tell against a plain grid, on the same work.

    python3 share/bench/bench_search.py [--trials 200] [--slots 2] [--samplers random,tpe]

Runs TRIALS tasks of ``/bin/true`` on SLOTS slots through ``pilotkit run`` as a grid and
as a search with each sampler (needs pilotkit-optuna), and prints, for each: tasks/s
(first task start to last task end, from results.jsonl), the sampler's own time per
trial (ask and tell, as the search logs it), and the wall time per task over the grid's.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HEAD = 'name = "bench"\n[resources]\ncores = {slots}\n[[app.groups]]\nname = "b"\ncommand = "/bin/true {{x}}"\n'


def grid(trials: int, slots: int) -> str:
    return HEAD.format(slots=slots) + f"[app.groups.grid]\nx = [{', '.join(map(str, range(trials)))}]\n"


def search(trials: int, slots: int, sampler: str) -> str:
    return HEAD.format(slots=slots) + (
        f'[app.groups.search]\nsampler = "{sampler}"\ntrials = {trials}\nobjective = "loss"\nseed = 1\n'
        "[app.groups.search.params]\nx = { uniform = [0, 1] }\n"
    )


def run(text: str, root: Path, name: str) -> tuple[float, str]:
    spec = root / f"{name}.toml"
    spec.write_text(text)
    workdir = root / name
    out = subprocess.run([sys.executable, "-m", "pilotkit.cli.main", "run", "--json", "--workdir", str(workdir),
                          str(spec)], capture_output=True, text=True)  # fmt: skip
    lines = [json.loads(x) for x in (workdir / "results.jsonl").read_text().splitlines()]
    start = min(x["start"] for x in lines)
    end = max(x["end"] for x in lines)
    logged = [e["message"] for e in map(json.loads, out.stdout.splitlines()) if e.get("source") == "search"]
    return len(lines) / (end - start), logged[-1] if logged else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--samplers", default="random,tpe")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base, _ = run(grid(args.trials, args.slots), root, "grid")
        print(f"grid:           {base:7.1f} tasks/s")
        for sampler in args.samplers.split(","):
            rate, logged = run(search(args.trials, args.slots, sampler), root, sampler)
            m = re.search(r"ask ([\d.]+) ms, tell ([\d.]+) ms", logged)
            sampler_ms = f"ask {m.group(1)} ms + tell {m.group(2)} ms per trial" if m else "?"
            extra = 1000 * (1 / rate - 1 / base)
            print(f"search {sampler:8s}{rate:7.1f} tasks/s  {sampler_ms}; {extra:+.1f} ms wall per task vs grid")


if __name__ == "__main__":
    main()
