"""Shared helpers: the examples, a real OpenSSH server on loopback, waiting for conditions."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pilotkit.testing import need, need_binary

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "share" / "examples"
TESTSSHD = ROOT / "share" / "testsshd" / "testsshd"


def need_dask() -> None:
    """Skip (fail under PILOTKIT_REQUIRE_REAL=1) without dask.distributed."""
    need(
        "dask.distributed",
        importlib.util.find_spec("distributed") is not None,
        "pip install 'dask[distributed]'",
    )


def load_example() -> ModuleType:
    """``share/examples/dask_analysis.py`` as a module (its generator is the reference)."""
    spec = importlib.util.spec_from_file_location("dask_analysis_example", EXAMPLES / "dask_analysis.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@asynccontextmanager
async def dask_client(address: str) -> AsyncIterator[Any]:
    """An asynchronous ``distributed.Client`` to ``address`` (closed after)."""
    from distributed import Client

    client = await Client(address, asynchronous=True, set_as_default=False)  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        await client.close()


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
