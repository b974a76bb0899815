"""What this node has: cores, memory and GPUs.

Inside a Slurm job the node's share is what the job was given on it, not the whole node:
``SLURM_JOB_CPUS_PER_NODE`` (``2(x3),1``) at this node's ``SLURM_NODEID``, else
``SLURM_CPUS_ON_NODE``, and never more than the CPU affinity (the cgroup's cpuset); its
memory, ``SLURM_MEM_PER_NODE``; its GPUs, the ``CUDA_VISIBLE_DEVICES`` Slurm sets.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping

import psutil

from .types import GpuReport, NodeInfo

_COUNT = re.compile(r"(\d+)(?:\(x(\d+)\))?")


def usable_cores(env: Mapping[str, str] | None = None) -> int:
    """Cores this process may use: its CPU affinity (the cgroup's cpuset), capped by what
    a Slurm job was given on this node (:func:`slurm_cores`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    given = slurm_cores(os.environ if env is None else env)
    return min(cores, given) if given else cores


def slurm_cores(env: Mapping[str, str]) -> int | None:
    """The CPUs a Slurm job has on this node, or None outside a job (or when unreadable)."""
    per_node = expand_counts(env.get("SLURM_JOB_CPUS_PER_NODE", ""))
    node_id = env.get("SLURM_NODEID", "")
    if per_node and node_id.isdigit() and int(node_id) < len(per_node):
        return per_node[int(node_id)]
    on_node = env.get("SLURM_CPUS_ON_NODE", "")
    return int(on_node) if on_node.isdigit() and int(on_node) > 0 else None


def expand_counts(text: str) -> list[int]:
    """Slurm's compressed counts per node: ``2(x3),1`` is ``[2, 2, 2, 1]``; [] if unreadable."""
    counts: list[int] = []
    for part in filter(None, text.strip().split(",")):
        match = _COUNT.fullmatch(part.strip())
        if match is None:
            return []
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def usable_memory(env: Mapping[str, str] | None = None) -> int:
    """Bytes of memory: the machine's, or a cgroup v2 limit below it, or the Slurm job's
    memory on this node (``SLURM_MEM_PER_NODE``, MiB) below that."""
    total = int(psutil.virtual_memory().total)
    per_node = (os.environ if env is None else env).get("SLURM_MEM_PER_NODE", "")
    if per_node.isdigit() and int(per_node) > 0:
        total = min(total, int(per_node) * 1024**2)
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text != "max":
            total = min(total, int(text))
    except (OSError, ValueError):
        pass
    return total


def core_percent() -> list[float]:
    """The load of each logical CPU since the last call, in percent (one decimal)."""
    return [round(float(x), 1) for x in psutil.cpu_percent(interval=None, percpu=True)]


def gpu_report() -> GpuReport:
    from .gpu import detect_gpus

    return detect_gpus()


def probe_node(*, gpus: bool = True) -> NodeInfo:
    """Probe this node. Blocking (NVML may take a while): call it in a thread from async code."""
    report = gpu_report() if gpus else GpuReport(reason="GPU detection skipped")
    return NodeInfo(
        name=socket.gethostname(),
        cores=usable_cores(),
        memory=usable_memory(),
        gpus=list(report.gpus),
        gpu_reason=report.reason,
        total_cores=os.cpu_count() or 1,
        total_memory=int(psutil.virtual_memory().total),
    )
