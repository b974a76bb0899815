"""Shared helpers: Ray's presence, Ray processes left on the machine (the ``sshd`` fixture
and ``wait_for`` are pilotkit.testing's)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from pilotkit_ray.commands import PILOT_ENV

from pilotkit.testing import need

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "share" / "examples"
FAST = 'object_store_memory = "80MiB"\n'
"""Keeps each Ray node's shared memory small on the shared test machine."""


def need_ray() -> None:
    """Skip (fail under PILOTKIT_REQUIRE_REAL=1) without Ray."""
    need("Ray", importlib.util.find_spec("ray") is not None, "pip install 'ray[client]'")


def ray_processes(pilot: str) -> list[str]:
    """Processes on this machine (every test-cluster node shares its process table) that
    carry the pilot's mark in their environment: Ray's, and anything Ray started."""
    mark = f"{PILOT_ENV}={pilot}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if mark in environ.split(b"\0"):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {cmdline.strip()}")
        except OSError:
            continue  # gone, or a kernel thread
    return found
