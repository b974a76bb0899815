"""The NVIDIA device plugin on the cluster's GPU nodes: pure functions, no processes.

On each node where pilotkit's NVML probe found GPUs, the node wrapper writes containerd
config templates into k3s's data directory (``agent/etc/containerd/config.toml.tmpl``
and ``config-v3.toml.tmpl``: k3s's own configuration, ``{{ template "base" . }}``, plus a
runtime ``pilotkit-nvidia`` that runs ``nvidia-container-runtime``). Once the nodes are
Ready the app applies a RuntimeClass ``nvidia`` for that runtime and the device plugin's
DaemonSet on the GPU nodes, with the MIG strategy the probe implies; pods then ask for
``nvidia.com/gpu`` with ``runtimeClassName: nvidia``.

The runtime is named ``pilotkit-nvidia``, not ``nvidia``: k3s adds a runtime ``nvidia``
of its own when it finds ``nvidia-container-runtime`` in its usual places, and two
tables of one name would make containerd's configuration invalid.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pilotkit.api import NodeInfo

RUNTIME_HANDLER = "pilotkit-nvidia"
"""The containerd runtime the templates add."""
RUNTIME_CLASS = "nvidia"
"""The RuntimeClass pods name (``runtimeClassName: nvidia``)."""
DEVICE_PLUGIN = "nvidia-device-plugin"
GPU_LABEL = "pilotkit.io/gpu.count"
"""Set on GPU nodes (:func:`pilotkit_k3s.commands.gpu_labels`)."""
TEMPLATE_DIR = "agent/etc/containerd"
"""Under k3s's ``--data-dir``."""

MigStrategy = Literal["none", "single", "mixed"]


def mig_strategy(nodes: list[NodeInfo]) -> MigStrategy:
    """The device plugin's ``MIG_STRATEGY`` for these nodes: ``none`` without MIG
    instances; ``single`` when every GPU node has only MIG instances, all of one profile
    (they show as ``nvidia.com/gpu``); ``mixed`` otherwise (``nvidia.com/mig-<profile>``)."""
    gpu_nodes = [n for n in nodes if n.gpus]
    if not any(g.mig_parent for n in gpu_nodes for g in n.gpus):
        return "none"
    profiles = {_profile(g.name) for n in gpu_nodes for g in n.gpus}
    whole = any(not g.mig_parent for n in gpu_nodes for g in n.gpus)
    return "single" if not whole and len(profiles) == 1 else "mixed"


def _profile(name: str) -> str:
    """``NVIDIA A100-SXM4-40GB MIG 1g.5gb`` -> ``1g.5gb``."""
    return name.rsplit(" ", 1)[-1] if " MIG " in name else name


def containerd_templates(runtime: str) -> dict[str, str]:
    """File name -> text of k3s's containerd templates, for containerd 1.x (config
    version 2) and 2.x (version 3): k3s's own configuration and the runtime
    ``pilotkit-nvidia`` running ``runtime`` (an absolute path)."""
    binary = runtime.replace("\\", "\\\\").replace('"', '\\"')
    v2 = (
        '{{ template "base" . }}\n\n'
        f'[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."{RUNTIME_HANDLER}"]\n'
        '  runtime_type = "io.containerd.runc.v2"\n'
        f'[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."{RUNTIME_HANDLER}".options]\n'
        f'  BinaryName = "{binary}"\n'
        "  SystemdCgroup = {{ .SystemdCgroup }}\n"
    )
    v3 = (
        '{{ template "base" . }}\n\n'
        f"[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'{RUNTIME_HANDLER}']\n"
        "  runtime_type = 'io.containerd.runc.v2'\n"
        f"[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'{RUNTIME_HANDLER}'.options]\n"
        f'  BinaryName = "{binary}"\n'
        "  SystemdCgroup = {{ .SystemdCgroup }}\n"
    )
    return {"config.toml.tmpl": v2, "config-v3.toml.tmpl": v3}


def runtime_class(pilot: str) -> dict[str, Any]:
    """The RuntimeClass ``nvidia`` for the runtime the templates add."""
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": RUNTIME_CLASS, "labels": {"pilotkit.io/pilot": pilot}},
        "handler": RUNTIME_HANDLER,
    }


def daemonset_name(node: str) -> str:
    """``nvidia-device-plugin-<node>``, as a DNS label."""
    tail = re.sub(r"[^a-z0-9-]+", "-", node.lower())
    return f"{DEVICE_PLUGIN}-{tail}"[:63].rstrip("-")


def device_plugin(node: NodeInfo, kubelet_dir: str, image: str, pilot: str) -> dict[str, Any]:
    """The device plugin's DaemonSet for one GPU node (in ``kube-system``). One per node:
    each node's kubelet has its own root directory (in the pilot's data directory), whose
    ``device-plugins`` folder the plugin registers in."""
    labels = {"app.kubernetes.io/name": DEVICE_PLUGIN, "pilotkit.io/pilot": pilot}
    name = daemonset_name(node.name)
    container = {
        "name": DEVICE_PLUGIN,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "MIG_STRATEGY", "value": mig_strategy([node])},
            {"name": "FAIL_ON_INIT_ERROR", "value": "false"},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "device-plugins", "mountPath": "/var/lib/kubelet/device-plugins"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": DEVICE_PLUGIN, "pilotkit.io/node": name}},
            "template": {
                "metadata": {"labels": {**labels, "pilotkit.io/node": name}},
                "spec": {
                    "runtimeClassName": RUNTIME_CLASS,
                    "priorityClassName": "system-node-critical",
                    "nodeSelector": {"kubernetes.io/hostname": node.name, GPU_LABEL: str(len(node.gpus))},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                    "volumes": [
                        {"name": "device-plugins", "hostPath": {"path": f"{kubelet_dir}/device-plugins"}}
                    ],
                },
            },
        },
    }
