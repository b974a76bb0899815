"""Pure builders of runc's ``config.json``.

:func:`base_config` is built once per image by ``prepare``: the root filesystem
(read-only), namespaces, mounts, capabilities and rlimits. :func:`task_overlay` is what
one task changes (argv, environment, working directory, binds, GPUs, MPI), and
:func:`apply_overlay` merges the two into the task's own config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotkit.api import Bind, ContainerContext

from .options import NAMESPACES, OciOptions

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
MPI_SHARED_NAMESPACES = ("pid", "ipc")
"""Shared with the host for MPI tasks: ranks in separate containers use shared memory."""


@dataclass(frozen=True)
class Host:
    """What :func:`base_config` needs to know about this machine and the image."""

    uid: int
    gid: int
    host_files: tuple[str, ...] = ()
    """Host files to bind read-only (already filtered to those the image has)."""
    tmp: bool = True
    """Whether the image has ``/tmp`` (a tmpfs goes there: the root is read-only)."""

    @property
    def rootless(self) -> bool:
        return self.uid != 0


def parse_user(text: str | None) -> tuple[int, int]:
    """``uid[:gid]`` as numbers; root when None."""
    if not text:
        return 0, 0
    uid, _, gid = text.partition(":")
    return int(uid), int(gid or uid)


def base_config(rootfs: Path, opts: OciOptions, host: Host, *, rlimits: bool = True) -> dict[str, Any]:
    """runc's config for ``rootfs``, running ``/bin/sh`` until a task overlay says otherwise."""
    unknown = sorted(set(opts.namespaces) - set(NAMESPACES))
    if unknown or "mount" not in opts.namespaces:
        raise ValueError(
            f"namespaces must include 'mount' and be among {', '.join(NAMESPACES)}"
            + (f" (not {', '.join(unknown)})" if unknown else "")
        )
    uid, gid = parse_user(opts.user)
    caps = list(opts.capabilities)
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": uid, "gid": gid},
        "args": ["/bin/sh"],
        "env": [f"PATH={DEFAULT_PATH}", "HOME=/root" if uid == 0 else "HOME=/tmp"],
        "cwd": "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": True,
    }
    if rlimits and opts.rlimits:
        process["rlimits"] = [{"type": k, "hard": v, "soft": v} for k, v in opts.rlimits.items()]
    linux: dict[str, Any] = {"namespaces": [{"type": ns} for ns in opts.namespaces]}
    if host.rootless:
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": uid, "hostID": host.uid, "size": 1}]
        linux["gidMappings"] = [{"containerID": gid, "hostID": host.gid, "size": 1}]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    linux["maskedPaths"] = list(MASKED_PATHS)
    linux["readonlyPaths"] = list(READONLY_PATHS)
    config = {
        "ociVersion": OCI_VERSION,
        "root": {"path": str(rootfs), "readonly": True},
        "process": process,
        "mounts": base_mounts(host),
        "linux": linux,
    }
    return fit_mounts(config)


def fit_mounts(config: dict[str, Any]) -> dict[str, Any]:
    """Adapt /proc and /dev/mqueue to the namespaces, for a user namespace's sake.

    Inside a user namespace, a fresh proc (mqueue) can only be mounted in a PID (IPC)
    namespace of its own. Without one, /proc is bound from the host and /dev/mqueue is
    left out. As root, nothing changes.
    """
    kinds = {ns["type"] for ns in config["linux"]["namespaces"]}
    if "user" not in kinds:
        return config
    mounts = []
    for mount in config["mounts"]:
        if mount["type"] == "proc" and "pid" not in kinds:
            mount = bind("/proc", mount["destination"], "rbind", "nosuid", "noexec", "nodev")
        elif mount["type"] == "mqueue" and "ipc" not in kinds:
            continue
        mounts.append(mount)
    config["mounts"] = mounts
    return config


def base_mounts(host: Host) -> list[dict[str, Any]]:
    """/proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, /tmp and the host files."""
    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        tmpfs("/dev", "nosuid", "strictatime", "mode=755", "size=65536k"),
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": devpts if host.rootless else [*devpts, "gid=5"],
        },
        tmpfs("/dev/shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
    ]
    if host.rootless:
        mounts.append(bind("/sys", "/sys", "rbind", "nosuid", "noexec", "nodev", "ro"))
    else:
        mounts.append(
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            }
        )
    if host.tmp:
        mounts.append(tmpfs("/tmp", "nosuid", "nodev", "mode=1777"))
    mounts += [bind(path, path, "rbind", "ro") for path in host.host_files]
    return mounts


def tmpfs(destination: str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": list(options)}


def bind(source: str, destination: str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": source, "options": list(options)}


def bind_mount(b: Bind) -> dict[str, Any]:
    """A task's bind as an OCI mount."""
    return bind(b.source, b.target, "rbind", "ro" if b.readonly else "rw")


def gpu_env(gpus: Sequence[str]) -> dict[str, str]:
    """``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES`` for the task's GPU UUIDs."""
    if not gpus:
        return {}
    joined = ",".join(gpus)
    return {"CUDA_VISIBLE_DEVICES": joined, "NVIDIA_VISIBLE_DEVICES": joined}


def task_overlay(argv: Sequence[str], ctx: ContainerContext, opts: OciOptions) -> dict[str, Any]:
    """What one task changes in the base config; keys with nothing to say are left out."""
    if not argv:
        raise ValueError("a task needs a command")
    if ctx.workdir and not ctx.workdir.startswith("/"):
        raise ValueError(f"the working directory in the container must be absolute, not '{ctx.workdir}'")
    overlay: dict[str, Any] = {"args": list(argv)}
    env = gpu_env(ctx.gpus) | ctx.env
    if env:
        overlay["env"] = env
    if ctx.workdir:
        overlay["cwd"] = ctx.workdir
    mounts = [bind_mount(b) for b in ctx.binds]
    if ctx.mpi:
        mounts.append(bind("/dev/shm", "/dev/shm", "rbind", "rw"))
        drop = [ns for ns in MPI_SHARED_NAMESPACES if ns in opts.namespaces]
        if drop:
            overlay["drop_namespaces"] = drop
    if mounts:
        overlay["mounts"] = mounts
    if ctx.gpus and opts.nvidia_hook:
        hook = {"path": opts.nvidia_hook, "args": [Path(opts.nvidia_hook).name, "prestart"]}
        overlay["hooks"] = {"prestart": [hook]}
    return overlay


def apply_overlay(config: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """Merge a task overlay into ``config`` (in place; returned for convenience)."""
    process = config["process"]
    process["args"] = list(task["args"])
    if task.get("env"):
        env = dict(item.split("=", 1) for item in process.get("env", []))
        env.update(task["env"])
        process["env"] = [f"{key}={value}" for key, value in env.items()]
    if task.get("cwd"):
        process["cwd"] = task["cwd"]
    config["mounts"] = [*config.get("mounts", []), *task.get("mounts", [])]
    drop = set(task.get("drop_namespaces", ()))
    if drop:
        linux = config["linux"]
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] not in drop]
        fit_mounts(config)
    for stage, hooks in task.get("hooks", {}).items():
        config.setdefault("hooks", {}).setdefault(stage, []).extend(hooks)
    return config
