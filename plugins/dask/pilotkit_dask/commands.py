"""Pure builders: which Dask services run where, and their command lines.

Nothing here starts a process or touches the network, so every decision (worker layout,
memory limits, argv) is testable with plain values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pilotkit.api import NodeInfo, parse_duration

from .options import DaskOptions

SCHEDULER_FILE = "dask-scheduler.json"
"""In the pilot's working directory; written by the scheduler once it listens."""
CONNECTION_FILE = "dask.json"
"""In the pilot's working directory; the connection details this plugin publishes."""
SCHEDULER_TASK = "dask-scheduler"
SCRIPT_TASK = "dask-script"
SERVICE_GROUP = "dask"
SCRIPT_GROUP = "dask-script"


@dataclass(frozen=True)
class WorkerPlan:
    """One Dask worker: where it runs and what it may use."""

    node: str
    name: str
    """The worker's name on the scheduler (unique): the node's name, plus ``-gpuN``."""
    threads: int
    memory_limit: int
    """Bytes (the node's memory shared among its workers)."""
    cores: int
    """Slots the worker's task takes from the node in the pilot's pool."""
    gpus: int = 0
    """1 for a GPU worker (the pool picks the GPU and sets ``CUDA_VISIBLE_DEVICES``)."""

    @property
    def task_id(self) -> str:
        return f"dask-worker-{self.name}"


def plan_workers(nodes: Sequence[NodeInfo], threads: int | None = None) -> list[WorkerPlan]:
    """One worker per GPU on nodes with GPUs, else one worker per node using its cores."""
    plans: list[WorkerPlan] = []
    for node in nodes:
        count = len(node.gpus)
        if count:
            for index in range(count):
                plans.append(
                    WorkerPlan(
                        node=node.name,
                        name=f"{node.name}-gpu{index}",
                        threads=threads or 1,
                        memory_limit=node.memory // count,
                        cores=min(threads or 1, node.cores // count),
                        gpus=1,
                    )
                )
        else:
            plans.append(
                WorkerPlan(
                    node=node.name,
                    name=node.name,
                    threads=threads or max(1, node.cores),
                    memory_limit=node.memory,
                    cores=min(threads or node.cores, node.cores),
                )
            )
    return plans


def scheduler_argv(python: str, scheduler_file: Path, options: DaskOptions, head: str) -> list[str]:
    """``dask scheduler`` on the head node, reachable from the other nodes."""
    argv = [python, "-m", "distributed.cli.dask_scheduler", "--scheduler-file", str(scheduler_file)]
    argv += ["--port", str(options.scheduler_port)]
    if options.interface is not None:
        argv += ["--interface", options.interface]
    else:
        argv += ["--host", options.host or head]
    if options.dashboard:
        argv += ["--dashboard-address", f":{options.dashboard_port}"]
    else:
        argv += ["--no-dashboard"]
    return argv


def worker_argv(python: str, scheduler_file: Path, plan: WorkerPlan, options: DaskOptions) -> list[str]:
    """``dask worker`` for one planned worker; it waits for the scheduler file."""
    argv = [python, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file)]
    argv += ["--name", plan.name, "--nthreads", str(plan.threads), "--nworkers", "1"]
    argv += ["--memory-limit", str(plan.memory_limit)]
    argv += ["--nanny" if options.nanny else "--no-nanny", "--no-dashboard"]
    argv += ["--death-timeout", f"{parse_duration(options.ready_timeout):g}"]
    if options.interface is not None:
        argv += ["--interface", options.interface]
    if plan.gpus:
        argv += ["--resources", f"GPU={plan.gpus}"]
    return argv
