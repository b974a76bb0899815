"""Which node runs what, and the command lines: pure functions, no processes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pilotkit.api import NodeInfo

from .options import K3sOptions

SERVICE_GROUP = "k3s"
JOB_GROUP = "k3s-jobs"
STATE_DIR = "k3s"
"""``<workdir>/k3s/``: the token, the server's own kubeconfig, the nodes' cleanup reports."""
KUBECONFIG_FILE = "kubeconfig"
"""``<workdir>/kubeconfig``: reaches the API server on the first node from the login node."""
CONNECTION_FILE = "k3s.json"
"""``<workdir>/k3s.json``: the API server's address and the cluster's state."""
LABEL_PREFIX = "pilotkit.io/"


@dataclass(frozen=True)
class NodePlan:
    """One node of the cluster: what it runs, where its data lives."""

    node: str
    role: str
    """``server`` (the first node) or ``agent``."""
    task_id: str
    data_dir: str
    labels: dict[str, str]


def state_dir(workdir: Path) -> Path:
    return workdir / STATE_DIR


def token_file(workdir: Path) -> Path:
    return state_dir(workdir) / "token"


def server_kubeconfig(workdir: Path) -> Path:
    """Where the server writes its kubeconfig (``server: https://127.0.0.1:PORT``)."""
    return state_dir(workdir) / "server-kubeconfig.yaml"


def report_file(workdir: Path, node: str) -> Path:
    return state_dir(workdir) / f"cleanup-{node}.json"


def data_root(options: K3sOptions, pilot_id: str) -> str:
    """The node-local folder all of this pilot's k3s data lives in, on every node."""
    base = options.data_dir or "/tmp"
    return f"{base.rstrip('/')}/pilotkit-k3s-{pilot_id}"


def join_url(head: NodeInfo, port: int) -> str:
    """``https://<first node>:PORT``: what agents join (the node's address when the
    agent reported one, else its name)."""
    host = head.address or head.name
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def gpu_labels(node: NodeInfo) -> dict[str, str]:
    """Node labels from pilotkit's NVML probe: GPU count, model, memory, MIG profile."""
    if not node.gpus:
        return {}
    first = node.gpus[0]
    labels = {f"{LABEL_PREFIX}gpu.count": str(len(node.gpus))}
    if first.name:
        labels[f"{LABEL_PREFIX}gpu.product"] = _label_value(first.name)
    if first.memory_total:
        labels[f"{LABEL_PREFIX}gpu.memory-mib"] = str(first.memory_total // (1024 * 1024))
    migs = [g for g in node.gpus if g.mig_parent]
    if migs:
        labels[f"{LABEL_PREFIX}gpu.mig"] = "true"
        if migs[0].name:
            labels[f"{LABEL_PREFIX}gpu.mig-profile"] = _label_value(migs[0].name.rsplit(" ", 1)[-1])
    return labels


def _label_value(text: str) -> str:
    """A Kubernetes label value: [A-Za-z0-9._-], at most 63, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return value.strip("-._") or "unknown"


def plan_nodes(nodes: list[NodeInfo], options: K3sOptions, pilot_id: str) -> list[NodePlan]:
    """The server on the first node, an agent on every other one."""
    root = data_root(options, pilot_id)
    plans = []
    for index, node in enumerate(nodes):
        role = "server" if index == 0 else "agent"
        labels = {f"{LABEL_PREFIX}pilot": pilot_id, **gpu_labels(node)}
        plans.append(NodePlan(node.name, role, f"k3s-{role}-{node.name}", f"{root}/{node.name}", labels))
    return plans


def k3s_argv(plan: NodePlan, options: K3sOptions, rootless: bool, workdir: Path, head: NodeInfo) -> list[str]:
    """The ``k3s server`` / ``k3s agent`` command line of one node."""
    argv = [options.binary, plan.role, "--data-dir", f"{plan.data_dir}/k3s", "--node-name", plan.node]
    argv += ["--token-file", str(token_file(workdir))]
    argv += ["--kubelet-arg", f"root-dir={plan.data_dir}/kubelet"]
    if plan.role == "server":
        argv += [
            "--https-listen-port", str(options.api_port),
            "--write-kubeconfig", str(server_kubeconfig(workdir)),
            "--write-kubeconfig-mode", "0600",
            "--tls-san", plan.node,
        ]  # fmt: skip
        if head.address:
            argv += ["--tls-san", head.address]
        for component in options.disable:
            argv += ["--disable", component]
    else:
        argv += ["--server", join_url(head, options.api_port)]
    if rootless:
        argv += ["--rootless", "--snapshotter", "fuse-overlayfs"]
        argv += ["--kubelet-arg", "feature-gates=KubeletInUserNamespace=true"]
        if plan.role == "server":
            argv += ["--kube-controller-manager-arg", "feature-gates=KubeletInUserNamespace=true"]
            argv += ["--kube-apiserver-arg", "feature-gates=KubeletInUserNamespace=true"]
    argv += options.server_args if plan.role == "server" else options.agent_args
    return argv


def node_argv(
    python: str,
    plan: NodePlan,
    k3s: list[str],
    workdir: Path,
    stop_timeout: float,
    images: Sequence[Path] = (),
    nvidia_runtime: str | None = None,
) -> list[str]:
    """The node wrapper (:mod:`pilotkit_k3s.node`) around one node's k3s;
    ``nvidia_runtime``: add it to containerd (a GPU node)."""
    preload = [arg for image in images for arg in ("--preload", str(image))]
    if nvidia_runtime:
        preload += ["--nvidia-runtime", nvidia_runtime]
    return [
        python, "-m", "pilotkit_k3s.node",
        "--data-dir", plan.data_dir,
        "--report", str(report_file(workdir, plan.node)),
        "--node", plan.node,
        "--stop-timeout", f"{stop_timeout:g}",
        *preload,
        "--", *k3s,
    ]  # fmt: skip


def preflight_argv(python: str, options: K3sOptions, rootless: bool) -> list[str]:
    return [
        python, "-m", "pilotkit_k3s.preflight",
        "--rootless" if rootless else "--rootful",
        "--binary", options.binary,
    ]  # fmt: skip


FOLLOW_SCRIPT = 'while [ ! -e "$1" ]; do sleep 0.2; done; cat "$2" 2>/dev/null; exit "$(cat "$1")"'
"""A Job's task: waits for the pilot to record the Job's end, prints its pods' logs, and
exits with the Job's exit code (the task result of the Job)."""


def follow_argv(done_file: Path, log_file: Path) -> list[str]:
    return ["sh", "-c", FOLLOW_SCRIPT, "sh", str(done_file), str(log_file)]


def job_task_id(namespace: str, name: str) -> str:
    return f"job-{name}" if namespace == "default" else f"job-{namespace}-{name}"
