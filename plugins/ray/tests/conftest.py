"""Shared helpers: Ray's presence, Ray processes left on the machine, a real OpenSSH
server on loopback, waiting for conditions."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pilotkit_ray.commands import PILOT_ENV

from pilotkit.testing import need, need_binary

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "share" / "examples"
TESTSSHD = ROOT / "share" / "testsshd" / "testsshd"
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


async def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "a condition") -> Any:
    """Poll ``condition`` on the event loop until it returns something true."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Sshd:
    """A running ``share/testsshd`` server: its alias is ``pilotkit-test``."""

    dir: Path
    port: int

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    need_binary("sshd", "install openssh-server (share/dev/install-system-deps)")
    need("root (share/testsshd runs sshd as root)", os.geteuid() == 0)
    directory = tmp_path_factory.mktemp("sshd")
    port = free_port()
    subprocess.run(
        [str(TESTSSHD), "up", str(directory), str(port)], check=True, capture_output=True, timeout=60
    )
    try:
        yield Sshd(directory, port)
    finally:
        subprocess.run([str(TESTSSHD), "down", str(directory)], check=False, capture_output=True, timeout=60)
