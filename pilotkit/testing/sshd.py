"""A real OpenSSH server on loopback for tests of ``--host`` commands (share/testsshd).

The ``sshd`` fixture (session scope; loaded with the kit's pytest plugin) starts one as
root on a free port and stops it after the session: :class:`Sshd` names its directory,
whose ``ssh_config`` reaches it as the host alias ``pilotkit-test``. The script is found
through ``$PILOTKIT_TESTSSHD`` or from the working directory upwards
(``share/testsshd/testsshd``). Without sshd, or not as root, the test is skipped (a
failure under ``PILOTKIT_REQUIRE_REAL=1``).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .needs import need, need_binary
from .share import share_script

ALIAS = "pilotkit-test"
"""The host alias of the server in its ``ssh_config``."""


def testsshd_script() -> Path:
    return share_script("PILOTKIT_TESTSSHD", "testsshd", "testsshd")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
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
    script = testsshd_script()
    directory = tmp_path_factory.mktemp("sshd")
    port = free_port()
    subprocess.run([str(script), "up", str(directory), str(port)], check=True, capture_output=True, timeout=60)
    try:
        yield Sshd(directory, port)
    finally:
        subprocess.run([str(script), "down", str(directory)], check=False, capture_output=True, timeout=60)
