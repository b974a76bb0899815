"""Start-up benchmark: from the command to 3 Ray nodes alive in the head's GCS, with
``pilotkit run`` (``[app] type = "ray"``, interactive, 3 Slurm nodes) and with
``ray start`` by hand in one ``srun -N3`` (the head on the first node, the other two
joining it once its port answers), on the project's Slurm test cluster, in the same run
(it holds the cluster's lock and sets the cluster's environment itself).

    python plugins/ray/bench_startup.py [--rounds 1] [--json]

Both count from the moment the command is started (``pilotkit run`` includes the batch
job's submission and start, the node agents and reading the spec; ``srun`` includes the
job's allocation and start) to the moment the head's GCS lists 3 ALIVE nodes, polled every
50 ms by this script for both. Both run the same Python and Ray with the same Ray
options (80 MiB object store, no dashboard, no usage stats). Rounds alternate which goes
first. Ray's GCS client is a private API of Ray (``ray._raylet.GcsClient``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pilotkit.testing.slurm import cluster_env, cluster_lock, testcluster_script

NODES = 3
SPEC = """name = "bench-ray"
[provider]
type = "slurm"
[resources]
nodes = 3
walltime = "10m"
[pilot]
grace = "10s"
[app]
type = "ray"
mode = "interactive"
object_store_memory = "80MiB"
"""
BY_HAND = r"""
set -e
export RAY_USAGE_STATS_ENABLED=0
ip=$(getent hosts "$(hostname)" | awk '{print $1}')
tmp=/tmp/pkray-bench/$SLURM_NODEID
if [ "$SLURM_NODEID" = 0 ]; then
  echo "$ip:6379" > "$OUT/head"
  exec "$PY" -c 'from ray.scripts.scripts import main; main()' start --head --block \
    --node-ip-address "$ip" --port 6379 --include-dashboard false --disable-usage-stats \
    --object-store-memory 83886080 --temp-dir "$tmp"
fi
until [ -s "$OUT/head" ] && "$PY" -c "import socket,sys; h,p=open(sys.argv[1]).read().split(':'); socket.create_connection((h,int(p)),1)" "$OUT/head" 2>/dev/null; do sleep 0.2; done
exec "$PY" -c 'from ray.scripts.scripts import main; main()' start --block \
  --address "$(cat "$OUT/head")" --object-store-memory 83886080 --disable-usage-stats --temp-dir "$tmp"
"""


def alive(address: str) -> int:
    """How many nodes the GCS at ``address`` lists as ALIVE (0 while it does not answer)."""
    from ray._raylet import GcsClient

    try:
        nodes = GcsClient(address=address).get_all_node_info(timeout=1)
    except Exception:
        return 0
    return sum(1 for info in nodes.values() if info.state == 0)


def until_alive(address_of: Any, t0: float, proc: subprocess.Popen[bytes], limit: float = 300.0) -> float:
    while time.perf_counter() - t0 < limit:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} ended with {proc.returncode} before {NODES} nodes were up")
        address = address_of()
        if address and alive(address) >= NODES:
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise SystemExit(f"no {NODES} Ray nodes within {limit:g}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_pilotkit(work: Path) -> float:
    spec = work / "bench.toml"
    spec.write_text(SPEC)
    workdir = work / "pilot"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pilotkit.cli.main", "run", str(spec), "--workdir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "pilotkit.err", "wb"),
    )

    def address() -> str | None:
        try:
            return str(json.loads((workdir / "ray-nodes" / "head.json").read_text())["address"])
        except (OSError, ValueError, KeyError):
            return None

    try:
        return until_alive(address, t0, proc)
    finally:
        stop(proc)


def bench_by_hand(work: Path) -> float:
    env = dict(os.environ, OUT=str(work), PY=sys.executable)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["srun", "-N3", "--ntasks-per-node=1", "-t", "10", "bash", "-c", BY_HAND],
        env=env,
        stdout=open(work / "srun.out", "wb"),
        stderr=subprocess.STDOUT,
    )

    def address() -> str | None:
        head = work / "head"
        return head.read_text().strip() if head.exists() else None

    try:
        return until_alive(address, t0, proc)
    finally:
        stop(proc)
        subprocess.run(["rm", "-rf", "/tmp/pkray-bench"], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"pilotkit": [], "srun + ray start": []}
    with cluster_lock():
        os.environ.update(cluster_env(testcluster_script()))
        os.environ["PILOTKIT_CALLBACK_HOST"] = os.environ["PILOTKIT_TESTCLUSTER_HOST_ADDR"]
        for index in range(args.rounds):
            order = [("pilotkit", bench_pilotkit), ("srun + ray start", bench_by_hand)]
            for name, bench in order if index % 2 == 0 else order[::-1]:
                with tempfile.TemporaryDirectory(prefix="bench-ray-") as work:
                    times[name].append(bench(Path(work)))
    if args.json:
        print(json.dumps(times))
        return
    for name, values in times.items():
        print(
            f"{name:18s} 3 Ray nodes alive after {statistics.median(values):6.1f} s (median of {len(values)})"
        )
    ratio = statistics.median(times["pilotkit"]) / statistics.median(times["srun + ray start"])
    print(f"pilotkit / by hand: {ratio:.2f}")


if __name__ == "__main__":
    main()
