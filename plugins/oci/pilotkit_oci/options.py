"""The ``[container]`` keys of ``runtime = "oci"``."""

from __future__ import annotations

from typing import Any

import msgspec

NAMESPACES = ("pid", "ipc", "uts", "mount", "network", "cgroup")
"""Namespaces a spec may ask for; ``user`` is added by itself when not running as root."""

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
)
"""What a task may still do as root in the container (a conventional container set)."""


class OciOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Options of the runc runtime. Every default gives a runnable container."""

    root: str | None = None
    """runc's state directory (``runc --root``); default: ``runc/`` in ``state_dir``."""
    state_dir: str | None = None
    """Where the base bundle and the per-task bundles go; default: under the pilot's workdir."""
    namespaces: list[str] = msgspec.field(default_factory=lambda: ["pid", "ipc", "uts", "mount"])
    """New namespaces. No ``network``: tasks share the host's network to reach the pilot.
    With ``pid`` the task is PID 1 and gets only the signals it handles."""
    rlimits: dict[str, int] = msgspec.field(default_factory=lambda: {"RLIMIT_NOFILE": 1048576})
    """Soft and hard limits to set; dropped when this machine cannot set them (probed)."""
    capabilities: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_CAPABILITIES))
    user: str | None = None
    """``uid[:gid]`` inside the container; default root (mapped to you when rootless)."""
    host_files: list[str] = msgspec.field(default_factory=lambda: ["/etc/resolv.conf", "/etc/hosts"])
    """Host files bound read-only where the image has them, for name resolution."""
    nvidia_hook: str | None = None
    """``nvidia-container-runtime-hook`` to run as a prestart hook for tasks with GPUs."""
    extra_args: list[str] = []
    """Passed to ``runc run`` before the bundle, e.g. ``["--no-new-keyring"]``."""


def options_of(value: Any) -> OciOptions:
    """The runtime's options from a spec (a struct, a table or nothing)."""
    if isinstance(value, OciOptions):
        return value
    return msgspec.convert(value or {}, OciOptions)
