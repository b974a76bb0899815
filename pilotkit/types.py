"""Typed data that crosses boundaries: between the pilot and its agents, plugins and
observers, and (later) the wire protocol. Plain msgspec Structs, no behaviour."""

from __future__ import annotations

import msgspec

from .vocab import CheckLevel


class GpuInfo(msgspec.Struct, omit_defaults=True):
    """One GPU, or one MIG instance of a GPU, as NVML reports it."""

    index: int
    """NVML device index (for a MIG instance: the parent's index)."""
    uuid: str
    """``GPU-...`` or ``MIG-...``; what ``CUDA_VISIBLE_DEVICES`` is given."""
    name: str = ""
    memory_total: int | None = None
    """Bytes; None where unsupported."""
    compute_capability: str | None = None
    mig_parent: str | None = None
    """UUID of the parent GPU when this is a MIG instance."""
    mig_mode: bool | None = None
    """Whether MIG mode is enabled on this (parent) GPU; None where unsupported."""


class GpuReport(msgspec.Struct, omit_defaults=True):
    """What GPU detection found. No GPU is a normal result, with ``reason`` saying why."""

    gpus: list[GpuInfo] = []
    """The devices this process may use (after ``CUDA_VISIBLE_DEVICES``), MIG instances
    in place of their parent where MIG is enabled."""
    reason: str | None = None
    """Why there are no GPUs (no library, no driver, masked by CUDA_VISIBLE_DEVICES...)."""
    driver_version: str | None = None
    cuda_version: str | None = None
    all_gpus: list[GpuInfo] = []
    """Every device NVML sees, visible or not."""


class NodeInfo(msgspec.Struct, omit_defaults=True):
    """What one node of an allocation has, as its agent probed it."""

    name: str
    cores: int
    memory: int
    """Bytes of memory this pilot may use on the node."""
    gpus: list[GpuInfo] = []
    gpu_reason: str | None = None
    address: str | None = None
    total_cores: int | None = None
    total_memory: int | None = None
    containment: str | None = None
    """How the node's agent keeps a task's processes from outliving it."""


class Allocation(msgspec.Struct, omit_defaults=True):
    """Resources a provider claimed for a pilot."""

    provider: str
    nodes: list[str]
    """Host names, expanded (never Slurm's compressed form)."""
    job_id: str | None = None
    walltime_end: float | None = None
    """Epoch seconds when the allocation ends; None for no limit."""
    data: dict[str, str] = {}
    """Provider-specific details (queue, partition, ...)."""


class TaskLaunch(msgspec.Struct, omit_defaults=True):
    """One attempt of one task, as handed to a node agent."""

    task_id: str
    attempt: int
    argv: list[str]
    cwd: str
    stdout: str
    stderr: str
    env: dict[str, str] = {}
    """Added to (and overriding) the agent's environment."""
    cores: int = 1
    gpus: list[str] = []
    """GPU UUIDs assigned to this attempt."""
    time_limit: float | None = None
    """Seconds; past it the task gets SIGTERM, then SIGKILL after the grace period."""
    pid_file: str | None = None
    """Where the agent records the attempt's pid, start time and mark while it runs (for
    a restart to find exactly the task's processes)."""


class TaskExit(msgspec.Struct, omit_defaults=True):
    """How an attempt ended."""

    task_id: str
    attempt: int
    node: str
    status: str
    """``ok`` | ``failed`` | ``timeout`` | ``killed`` | ``lost`` | ``spawn-error``."""
    exit_code: int | None = None
    signal: int | None = None
    start: float = 0.0
    end: float = 0.0
    message: str | None = None


class CarriedAttempt(msgspec.Struct, omit_defaults=True):
    """An attempt a node agent kept while its pilot was away (a daemon restart, a
    detached run): still running (``exit`` None) or ended (how)."""

    task_id: str
    attempt: int
    node: str
    start: float = 0.0
    exit: TaskExit | None = None


class ProbeCheck(msgspec.Struct, omit_defaults=True):
    """One line a plugin adds to ``pilotkit probe`` (hook ``pilotkit_probe_checks``):
    whether this node has something the plugin needs."""

    name: str
    level: CheckLevel
    """``ok``, ``warning`` (the plugin's feature would not work here) or ``error``."""
    message: str
    """What was found."""
    hint: str | None = None
    """What to do (or ask the site for) when it is not ok."""


class Service(msgspec.Struct, omit_defaults=True):
    """Something a running app serves to its user: a notebook's URL with its token, a
    cluster's client address, a dashboard. Apps list them (``App.services``), the daemon
    returns them with the pilot, and the dashboard shows them on the pilot's page."""

    name: str
    """What it is, in a few words: ``Jupyter``, ``Ray client``, ``Dask dashboard``."""
    url: str
    """Where it is, as seen from the pilot's nodes (``pilotkit jupyter open`` and the like
    tunnel to it from elsewhere)."""
