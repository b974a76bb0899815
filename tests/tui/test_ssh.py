"""``pilotkit tui --host``: the dashboard reaches the daemon over SSH (a real sshd from
share/testsshd), as the CLI does."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilotkit.client import Target
from pilotkit.testing import need, need_binary
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.live import LiveSource

from .conftest import ROOT, SIZE, quick_spec

pytestmark = pytest.mark.sshd
TESTSSHD = ROOT / "share" / "testsshd" / "testsshd"
ALIAS = "pilotkit-test"
"""The host alias testsshd writes in its ssh_config."""


@pytest.fixture
def ssh_config(tmp_path: Path) -> Iterator[Path]:
    need_binary("sshd", "install openssh-server with share/dev/install-system-deps")
    need_binary("ssh-keygen", "install openssh-client with share/dev/install-system-deps")
    need("root (testsshd runs sshd as root)", os.geteuid() == 0)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory = tmp_path / "sshd"
    directory.mkdir()
    up = subprocess.run([str(TESTSSHD), "up", str(directory), str(port)], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"testsshd did not come up:\n{up.stdout}\n{up.stderr}", pytrace=False)
    try:
        yield directory / "ssh_config"
    finally:
        subprocess.run([str(TESTSSHD), "down", str(directory)], capture_output=True, text=True)


async def test_dashboard_over_ssh(tui_daemon: Any, ssh_config: Path, tmp_path: Path) -> None:
    pilot_id = tui_daemon.submit(quick_spec(tmp_path, tasks=3, seconds=0.1))
    source = LiveSource(Target(host=ALIAS, ssh_config=str(ssh_config), socket=str(tui_daemon.socket)))
    app = PilotkitApp(source, pilot=pilot_id)
    async with app.run_test(size=SIZE):
        await app.until(lambda: app.model.connection.state == "connected", 60)
        assert f"pid {tui_daemon.pid}" in source.describe()
        view = app.model.pilot(pilot_id)
        await app.until(lambda: view.terminal and view.totals().done == 3, 60)
        assert app.model.where.startswith(f"{ALIAS}:")
