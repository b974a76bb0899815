"""A synthetic, deterministic event stream: a pilot on many nodes with GPUs running many
tasks. For the dashboard's benchmark (``share/bench/bench_tui.py``) and its tests."""

from __future__ import annotations

import random
from collections.abc import Iterator

from ..events import (
    AllocationClaimed,
    Event,
    GroupAdded,
    Metrics,
    NodeReady,
    PilotStateChanged,
    TaskFinished,
    TaskStarted,
)
from ..types import Allocation, GpuInfo, NodeInfo

T0 = 1_750_000_000.0


def cluster_events(
    *,
    pilot: str = "sim-20250615-120000-0001",
    nodes: int = 4,
    gpus_per_node: int = 2,
    tasks: int = 40,
    groups: tuple[str, ...] = ("train", "eval"),
    metric_rounds: int = 20,
    fail_every: int = 13,
    finish: bool = True,
    seed: int = 1,
    t0: float = T0,
) -> Iterator[Event]:
    """Claim ``nodes`` nodes, run ``tasks`` tasks round-robin on them (every
    ``fail_every``-th fails), with ``metric_rounds`` metric samples per node spread over
    the run; with ``finish``, every task ends and the pilot is done."""
    rng = random.Random(seed)
    names = [f"node{i:04d}" for i in range(nodes)]
    t = t0
    yield PilotStateChanged(pilot=pilot, t=t, state="claiming", previous="new")
    t += 0.5
    yield AllocationClaimed(
        pilot=pilot, t=t,
        allocation=Allocation(provider="slurm", nodes=names, job_id="4242", walltime_end=t0 + 3600),
    )
    yield PilotStateChanged(pilot=pilot, t=t, state="probing", previous="claiming")
    for i, name in enumerate(names):
        gpus = [
            GpuInfo(index=g, uuid=f"GPU-{i:04d}-{g}", name="NVIDIA A100-SXM4-40GB", memory_total=40 * 2**30)
            for g in range(gpus_per_node)
        ]
        yield NodeReady(pilot=pilot, t=t + 0.001 * i,
                        node=NodeInfo(name=name, cores=64, memory=256 * 2**30, gpus=gpus))
    t += 2.0
    yield PilotStateChanged(pilot=pilot, t=t, state="running", previous="probing")
    per_group = [tasks // len(groups) + (1 if k < tasks % len(groups) else 0) for k in range(len(groups))]
    for group, count in zip(groups, per_group, strict=True):
        yield GroupAdded(pilot=pilot, t=t, group=group, total=count)
    ids = [(g, f"{g}-{k:05d}") for g, count in zip(groups, per_group, strict=True) for k in range(count)]
    rounds = max(1, metric_rounds)
    step = max(1, len(ids) // rounds)
    running: list[tuple[str, str, str, float]] = []
    sample = 0
    for k, (group, task) in enumerate(ids):
        node = names[k % nodes]
        t += 0.01
        yield TaskStarted(pilot=pilot, t=t, task=task, group=group, attempt=1, node=node)
        running.append((group, task, node, t))
        if len(running) > max(1, nodes):
            g, name, where, start = running.pop(0)
            failed = fail_every > 0 and int(name.rsplit("-", 1)[1]) % fail_every == fail_every - 1
            yield TaskFinished(pilot=pilot, t=t, task=name, group=g, attempt=1, node=where,
                               status="failed" if failed else "ok", exit_code=1 if failed else 0,
                               duration=t - start)
        if k % step == 0 and sample < rounds:
            sample += 1
            yield from _metrics(pilot, names, gpus_per_node, t, rng)
    while sample < rounds:
        sample += 1
        t += 0.01
        yield from _metrics(pilot, names, gpus_per_node, t, rng)
    if not finish:
        return
    for g, name, where, start in running:
        t += 0.01
        yield TaskFinished(pilot=pilot, t=t, task=name, group=g, attempt=1, node=where, status="ok", exit_code=0,
                           duration=t - start)
    t += 0.5
    yield PilotStateChanged(pilot=pilot, t=t, state="evicting", previous="running")
    yield PilotStateChanged(pilot=pilot, t=t + 0.5, state="done", previous="evicting")


def _metrics(pilot: str, names: list[str], gpus: int, t: float, rng: random.Random) -> Iterator[Metrics]:
    for i, name in enumerate(names):
        yield Metrics(
            pilot=pilot, t=t + 0.0001 * i, node=name, cpu_percent=round(rng.uniform(20, 100), 1),
            memory_used=int(rng.uniform(40, 200) * 2**30),
            gpus=[
                {"index": g, "utilization": rng.randint(30, 100),
                 "memory_used": int(rng.uniform(5, 38) * 2**30), "memory_total": 40 * 2**30}
                for g in range(gpus)
            ],
        )
