"""Start-up benchmark: from the allocation running to 3 Dask workers connected, with
pilotkit (``[app] type = "dask"`` on a 3-node Slurm pilot) and with dask-jobqueue's
``SLURMCluster.scale(jobs=3)``, on the project's Slurm test cluster, in the same run.

    pip install dask-jobqueue
    python plugins/dask/bench_startup.py [--rounds 3] [--json]

"Running" is when ``squeue`` first shows the job(s) RUNNING, polled every 50 ms by the
benchmark itself for both tools (pilotkit's own claim polls with a back-off, so its
AllocationClaimed event would be late). "Connected" is, for pilotkit, the app's "Dask
cluster ready" event (after ``wait_for_workers(3)`` in the pilot, its progress plugin and
``dask.json``: a little later than the moment itself), and for dask-jobqueue the return
of ``client.wait_for_workers(3)``. Rounds alternate which tool goes first. Both run the
same Python and Dask; dask-jobqueue's default ``--mem`` is skipped (this cluster refused
it) and its scheduler listens on the host's bridge address so the nodes reach it.
"""

# distributed and dask-jobqueue carry few annotations:
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOST = "10.213.0.1"
NODES = 3
SPEC = """name = "bench-dask"
[provider]
type = "slurm"
[resources]
nodes = 3
walltime = "10m"
[pilot]
grace = "3s"
[app]
type = "dask"
mode = "interactive"
"""


@dataclass
class Round:
    """One measurement of one tool (seconds, from its submission)."""

    tool: str
    running_first: float = float("nan")
    running_last: float = float("nan")
    agents: float = float("nan")
    ready: float = float("nan")
    hosts: list[str] = field(default_factory=list)

    @property
    def from_running(self) -> float:
        return self.ready - self.running_last


class JobWatch:
    """Polls ``squeue`` for the jobs it is given and records when each first runs."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.jobs: set[str] = set()
        self.running: dict[str, float] = {}
        self._task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        while True:
            pending = sorted(self.jobs - set(self.running))
            if pending:
                proc = await asyncio.create_subprocess_exec(
                    "squeue", "-h", "-o", "%i %T", "-j", ",".join(pending),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                out, _ = await proc.communicate()
                now = time.perf_counter() - self.t0
                for line in out.decode().splitlines():
                    job, _, state = line.strip().partition(" ")
                    if state == "RUNNING" and job in self.jobs:
                        self.running.setdefault(job, now)
            await asyncio.sleep(0.05)

    def times(self, count: int) -> tuple[float, float]:
        values = sorted(self.running.values())
        if len(values) < count:
            return float("nan"), float("nan")
        return values[0], values[count - 1]

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


async def bench_pilotkit(workdir: Path, nanny: bool = True) -> Round:
    """An interactive Dask pilot of 3 Slurm nodes, drained once its workers are up."""
    from pilotkit.events import Event, Log, NodeReady
    from pilotkit.pilot import Pilot
    from pilotkit.plugins import Plugins, set_plugins
    from pilotkit.spec import parse_spec

    plugins = Plugins().load()
    set_plugins(plugins)
    text = SPEC + ("" if nanny else "nanny = false\n")
    source = workdir / "bench.toml"
    source.write_text(text)
    pilot = Pilot(parse_spec(text, source, plugins), plugins, workdir=workdir / "pilot")
    result = Round("pilotkit" if nanny else "pilotkit-no-nanny")
    t0 = time.perf_counter()
    watch = JobWatch(t0)
    ready = asyncio.Event()
    nodes: list[float] = []

    def on_event(event: Event) -> None:
        now = time.perf_counter() - t0
        if isinstance(event, Log) and event.message.startswith("submitted Slurm job "):
            watch.jobs.add(event.message.rsplit(" ", 1)[-1])
        elif isinstance(event, NodeReady):
            nodes.append(now)
        elif isinstance(event, Log) and event.message.startswith("Dask cluster ready"):
            result.ready = now
            ready.set()

    pilot.bus.subscribe(on_event)
    running = asyncio.ensure_future(pilot.run())
    try:
        await asyncio.wait({running, asyncio.ensure_future(ready.wait())}, timeout=900,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if running.done():
            raise SystemExit(f"the pilot ended before its cluster was ready: {running.result().reason}")
        if not ready.is_set():
            raise SystemExit("the pilot's cluster was not ready within 900s (the queue?)")
        from pilotkit_dask.connection import read_info

        result.hosts = sorted(w.host for w in read_info(pilot.workdir).workers)
    finally:
        pilot.drain("benchmark done")
        outcome = await running
        await watch.stop()
        set_plugins(None)
    result.running_first, result.running_last = watch.times(1)
    result.agents = max(nodes) if len(nodes) == NODES else float("nan")
    if outcome.state.value != "done":
        raise SystemExit(f"the pilot ended {outcome.state.value}: {outcome.reason}")
    return result


async def bench_pilotkit_no_nanny(workdir: Path) -> Round:
    """The same pilot with ``nanny = false``: one process per worker instead of two."""
    return await bench_pilotkit(workdir, nanny=False)


async def bench_jobqueue(workdir: Path) -> Round:
    """dask-jobqueue: a scheduler in this process, 3 one-worker batch jobs."""
    from dask_jobqueue.slurm import SLURMCluster
    from distributed import Client

    result = Round("dask-jobqueue")
    cluster: Any = await SLURMCluster(
        cores=2,
        processes=1,
        memory="1GB",
        job_directives_skip=["--mem"],
        queue=os.environ.get("PILOTKIT_TESTCLUSTER_PARTITION", "debug"),
        walltime="00:10:00",
        scheduler_options={"host": HOST},
        log_directory=str(workdir / "jobqueue-logs"),
        asynchronous=True,
    )
    try:
        client: Any
        async with Client(cluster, asynchronous=True) as client:
            t0 = time.perf_counter()
            watch = JobWatch(t0)
            cluster.scale(jobs=NODES)
            waiter = asyncio.ensure_future(client.wait_for_workers(NODES))
            try:
                while not waiter.done():
                    for job in list(cluster.workers.values()):
                        if getattr(job, "job_id", None):
                            watch.jobs.add(str(job.job_id))
                    await asyncio.wait({waiter}, timeout=0.02)
                await asyncio.wait_for(waiter, 900)
                result.ready = time.perf_counter() - t0
                identity = await client.scheduler.identity(n_workers=-1)
                result.hosts = sorted(w["host"] for w in identity["workers"].values())
            finally:
                waiter.cancel()
                await watch.stop()
            result.running_first, result.running_last = watch.times(NODES)
    finally:
        try:
            await cluster.close()  # scancels the jobs
        except AssertionError:
            pass  # dask-jobqueue 0.9's Job.close leaves a status newer distributed asserts on
    return result


def _median(rounds: list[Round], key: Callable[[Round], float]) -> tuple[float, float, float]:
    values = [key(r) for r in rounds]
    return statistics.median(values), min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="Print every round as JSON lines too.")
    args = parser.parse_args()
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # read when distributed is imported

    from pilotkit.testing.slurm import cluster_env, testcluster_script

    script = testcluster_script()
    env = cluster_env(script)
    os.environ.update(env)
    os.environ["PILOTKIT_CALLBACK_HOST"] = env.get("PILOTKIT_TESTCLUSTER_HOST_ADDR", HOST)

    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        benches = [bench_pilotkit, bench_jobqueue, bench_pilotkit_no_nanny]
        for i in range(args.rounds):
            order = benches[i % len(benches) :] + benches[: i % len(benches)]
            for bench in order:
                folder = Path(tmp) / f"{i}-{bench.__name__}"
                folder.mkdir()
                result = asyncio.run(bench(folder))
                rounds.append(result)
                if args.json:
                    print(json.dumps({**asdict(result), "from_running": result.from_running}), flush=True)
                print(
                    f"round {i + 1} {result.tool:17}: running {result.running_last:5.2f}s after submit, "
                    f"3 workers {result.from_running:5.2f}s after running on {','.join(result.hosts)}",
                    file=sys.stderr,
                    flush=True,
                )
    print(f"\nstart-up to {NODES} connected Dask workers, median [min-max] of {args.rounds} rounds (seconds)")
    print(
        f"{'tool':18} {'job running -> 3 workers':>26} {'submit -> 3 workers':>22} {'submit -> running':>20}"
    )
    for tool in ("pilotkit", "pilotkit-no-nanny", "dask-jobqueue"):
        mine = [r for r in rounds if r.tool == tool]
        cells = []
        for key in (lambda r: r.from_running, lambda r: r.ready, lambda r: r.running_last):
            med, lo, hi = _median(mine, key)
            cells.append(f"{med:.2f} [{lo:.2f}-{hi:.2f}]")
        print(f"{tool:18} {cells[0]:>26} {cells[1]:>22} {cells[2]:>20}")
    pk = [r for r in rounds if r.tool.startswith("pilotkit")]
    med, lo, hi = _median(pk, lambda r: r.agents - r.running_last)
    print(
        f"  pilotkit's part before Dask: job running -> {NODES} node agents connected {med:.2f} [{lo:.2f}-{hi:.2f}]"
    )
    med, lo, hi = _median(pk, lambda r: r.ready - r.agents)
    print(f"  pilotkit's Dask part: node agents connected -> {NODES} workers {med:.2f} [{lo:.2f}-{hi:.2f}]")


if __name__ == "__main__":
    main()
