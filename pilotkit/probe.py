"""What this node has: cores, memory and GPUs."""

from __future__ import annotations

import os
import socket

import psutil

from .types import GpuReport, NodeInfo


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, as Slurm and cgroups set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def usable_memory() -> int:
    """Bytes of memory: the machine's, or a cgroup v2 limit below it."""
    total = int(psutil.virtual_memory().total)
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text != "max":
            total = min(total, int(text))
    except (OSError, ValueError):
        pass
    return total


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
