"""A real OpenSSH server on loopback (share/testsshd), images, and pilot contexts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from pilotkit_edge_sync.options import EdgeSyncOptions

from pilotkit.api import ContainerRuntime, Event, Log, PilotContext, Register, StageProgress, hookimpl
from pilotkit.testing import Plugins, need, need_binary, parse_spec

TESTSSHD = Path(__file__).resolve().parents[3] / "share" / "testsshd" / "testsshd"
GROUPS = '[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
SIF_HEADER = b"#!/usr/bin/env run-singularity\n\x00SIF_MAGIC\x0001\x00"


class FakeRuntime(ContainerRuntime):
    """Completes specs that need a ``[container]`` section."""

    id = "fake-runtime"


class _FakeRuntimePlugin:
    @staticmethod
    @hookimpl
    def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
        register(FakeRuntime)


def plugins_with(stager_module: object, name: str) -> Plugins:
    """The built-ins, the fake runtime and one stager plugin module."""
    plugins = Plugins().load(entry_points=False)
    plugins.register_module("fake-runtime", _FakeRuntimePlugin)
    plugins.register_module(name, stager_module)
    return plugins


@dataclass
class Sshd:
    """A running test server."""

    dir: Path
    port: int

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    def options(self, cache: Path, **kw: Any) -> EdgeSyncOptions:
        """Options reaching this server through its ssh_config alias."""
        return EdgeSyncOptions(host="pilotkit-test", cache=str(cache), ssh_config=str(self.ssh_config), **kw)

    def direct_options(self, cache: Path, **kw: Any) -> EdgeSyncOptions:
        """Options naming user, address, port, known_hosts and key without ssh_config."""
        settings: dict[str, Any] = {
            "host": "root@127.0.0.1", "port": self.port, "cache": str(cache),
            "known_hosts": str(self.known_hosts), "client_keys": [str(self.key)],
        }  # fmt: skip
        return EdgeSyncOptions(**(settings | kw))

    def cut_sessions(self) -> int:
        """SIGKILL every session process of this server (not the listener): the
        connections drop as they would when a network link goes."""
        listener = int((self.dir / "sshd.pid").read_text().split()[0])
        killed = 0
        for child in psutil.Process(listener).children(recursive=True):
            try:
                os.kill(child.pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        return killed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    need_binary("sshd", "install openssh-server (share/dev/install-system-deps)")
    need("root (share/testsshd runs sshd as root)", os.geteuid() == 0)
    directory = tmp_path_factory.mktemp("sshd")
    port = free_port()
    subprocess.run([str(TESTSSHD), "up", str(directory), str(port)], check=True, capture_output=True, timeout=60)
    try:
        yield Sshd(directory, port)
    finally:
        subprocess.run([str(TESTSSHD), "down", str(directory)], check=False, capture_output=True, timeout=60)


def write_image(path: Path, size: int) -> Path:
    """A SIF-looking file of ``size`` bytes of random data, written in 8 MiB pieces."""
    with open(path, "wb") as handle:
        handle.write(SIF_HEADER)
        left = size - len(SIF_HEADER)
        while left > 0:
            piece = min(left, 8 << 20)
            handle.write(os.urandom(piece))
            left -= piece
    return path


@pytest.fixture(scope="session")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200 MB image."""
    return write_image(tmp_path_factory.mktemp("big") / "big.sif", 200_000_000)


class Events(list[Event]):
    """Events a context emitted, with an optional hook called on each."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Callable[[Event], None] | None = None

    def emit(self, event: Event) -> None:
        self.append(event)
        if self.hook is not None:
            self.hook(event)

    def logs(self, level: str | None = None) -> list[str]:
        return [e.message for e in self if isinstance(e, Log) and (level is None or e.level == level)]

    def progress(self, message_start: str) -> list[StageProgress]:
        return [e for e in self if isinstance(e, StageProgress) and (e.message or "").startswith(message_start)]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def ctx(tmp_path: Path, events: Events) -> PilotContext:
    spec = parse_spec('name = "edge-sync-test"\n' + GROUPS, tmp_path / "spec.toml", Plugins().load(entry_points=False))
    return PilotContext("pilot-1", spec, tmp_path / "run", events.emit)
