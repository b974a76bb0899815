"""Pure builders: which Ray node runs where with which resources, and the command lines.

Nothing here starts a process or touches the network, so every decision (resources,
MIG slices, argv) is testable with plain values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pilotkit.api import GpuInfo, NodeInfo, parse_duration, parse_size

from .options import MIN_OBJECT_STORE, RayOptions

CONNECTION_FILE = "ray.json"
"""In the pilot's working directory; the connection details this plugin publishes."""
NODES_DIR = "ray-nodes"
"""In the pilot's working directory: one ``<node>.json`` per Ray node once it has started."""
HEAD_TASK = "ray-head"
SCRIPT_TASK = "ray-script"
SERVICE_GROUP = "ray"
SCRIPT_GROUP = "ray-script"
PILOT_ENV = "PILOTKIT_RAY_PILOT"
"""Set for Ray on every node (and inherited by all its processes): the pilot's id."""
OBJECT_STORE_SHARE = 0.3
_MIG_PROFILE = re.compile(r"\b(\d+g\.\d+gb)\b", re.IGNORECASE)


@dataclass(frozen=True)
class NodePlan:
    """One Ray node (the head, or a worker node): where it runs and what it offers."""

    node: str
    head: bool
    cpus: int
    gpus: int
    memory: int
    """Bytes for tasks and actors (``--memory``): the node's memory less the object store."""
    object_store_memory: int
    resources: dict[str, float] = field(default_factory=dict)
    """Custom resources (MIG slices, the spec's own)."""

    @property
    def task_id(self) -> str:
        return HEAD_TASK if self.head else f"ray-worker-{self.node}"


def mig_resources(gpus: Sequence[GpuInfo]) -> dict[str, float]:
    """MIG slices as custom resources: ``MIG-1g.5gb = 2`` for two 1g.5gb instances
    (and ``MIG`` for all of them, whatever their profile)."""
    out: dict[str, float] = {}
    for gpu in gpus:
        if gpu.mig_parent is None and not gpu.uuid.startswith("MIG-"):
            continue
        out["MIG"] = out.get("MIG", 0.0) + 1
        match = _MIG_PROFILE.search(gpu.name)
        if match:
            key = f"MIG-{match.group(1).lower()}"
            out[key] = out.get(key, 0.0) + 1
    return out


def object_store_for(node: NodeInfo, options: RayOptions) -> int:
    if options.object_store_memory is not None:
        return parse_size(options.object_store_memory)
    return max(MIN_OBJECT_STORE, int(node.memory * OBJECT_STORE_SHARE))


def plan_nodes(nodes: Sequence[NodeInfo], options: RayOptions) -> list[NodePlan]:
    """One Ray node per allocation node, the first one the head, each offering exactly
    the cores, memory and GPUs its agent found."""
    plans = []
    for index, node in enumerate(nodes):
        store = object_store_for(node, options)
        plans.append(
            NodePlan(
                node=node.name,
                head=index == 0,
                cpus=node.cores,
                gpus=len(node.gpus),
                memory=max(0, node.memory - store),
                object_store_memory=store,
                resources={**mig_resources(node.gpus), **options.resources},
            )
        )
    return plans


def temp_dir_for(options: RayOptions, workdir: Path) -> str:
    """Ray's temporary directory on the nodes: short, and one per pilot."""
    if options.temp_dir is not None:
        return options.temp_dir
    return f"/tmp/pkray-{hashlib.sha1(str(workdir).encode()).hexdigest()[:10]}"


def node_dir(temp_dir: str, index: int) -> str:
    """Each Ray node its own directory (nodes may share /tmp, as on one test machine)."""
    return f"{temp_dir}/{index}"


def node_argv(
    python: str, plan: NodePlan, index: int, workdir: Path, options: RayOptions, temp_dir: str
) -> list[str]:
    """``python -m pilotkit_ray.node`` for one planned node: it picks free ports there,
    runs ``ray start --block`` and writes ``<workdir>/ray-nodes/<node>.json`` once Ray is up."""
    nodes_dir = workdir / NODES_DIR
    argv = [python, "-m", "pilotkit_ray.node", "--ready-file", str(nodes_dir / f"{plan.node}.json")]
    argv += ["--head-file", str(nodes_dir / "head.json")]
    argv += ["--timeout", f"{parse_duration(options.ready_timeout):g}"]
    if plan.head:
        argv += ["--head"]
        if options.host:
            argv += ["--host", options.host]
        if options.dashboard:
            argv += ["--dashboard"]
    argv += ["--", "--num-cpus", str(plan.cpus), "--num-gpus", str(plan.gpus)]
    argv += ["--memory", str(plan.memory), "--object-store-memory", str(plan.object_store_memory)]
    if plan.resources:
        argv += ["--resources", json.dumps(plan.resources, sort_keys=True)]
    argv += ["--temp-dir", node_dir(temp_dir, index), "--disable-usage-stats"]
    return argv
