"""``pilotkit dask connect`` against running clusters: by pilot id through a real daemon,
and through a real SSH tunnel (share/testsshd) as from a laptop."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from pilotkit_dask.connection import read_info

from pilotkit.api import Event, Log, PilotState
from pilotkit.testing import Pilot, RunSpec, Sshd, wait_for
from pilotkit.testing.localdaemon import PILOTKIT, local_daemon, until

from .conftest import dask_client, need_dask

pytestmark = pytest.mark.dask
INTERACTIVE = """name = "dask-connect"
[pilot]
grace = "3s"
[app]
type = "dask"
mode = "interactive"
nanny = false
"""


@pytest.fixture(autouse=True)
def _dask() -> None:
    need_dask()


def _connection_state(workdir: Path) -> str | None:
    try:
        return read_info(workdir).state
    except Exception:
        return None


def test_connect_by_pilot_id_through_the_daemon(tmp_path: Path) -> None:
    spec = tmp_path / "interactive.toml"
    spec.write_text(INTERACTIVE)
    workdir = tmp_path / "pilot"
    with local_daemon(tmp_path) as daemon:
        cli = daemon.cli
        submitted = cli("submit", "--workdir", str(workdir), str(spec))
        assert submitted.returncode == 0, submitted.stderr
        pilot = submitted.stdout.strip()
        until(lambda: _connection_state(workdir) == "running", 90, "the cluster")
        connected = cli("dask", "connect", "--json", pilot)
        assert connected.returncode == 0, connected.stderr
        data = json.loads(connected.stdout)
        assert data["pilot"] == pilot and data["address"] == read_info(workdir).scheduler
        assert data["mode"] == "interactive" and len(data["workers"]) == 1
        assert cli("drain", pilot).returncode == 0
        until(lambda: _connection_state(workdir) == "stopped", 60, "the cluster to stop")
        stopped = cli("dask", "connect", pilot)
        assert stopped.returncode == 2 and "is stopped" in stopped.stderr


@pytest.mark.sshd
async def test_tunnel_from_outside(sshd: Sshd, run_spec: RunSpec, tmp_path: Path) -> None:
    pilots: list[Pilot] = []
    ready: list[Log] = []

    def on_pilot(pilot: Pilot) -> None:
        pilots.append(pilot)

        def watch(event: Event) -> None:
            if isinstance(event, Log) and event.message.startswith("Dask cluster ready"):
                ready.append(event)

        pilot.bus.subscribe(watch)

    workdir = tmp_path / "pilot"
    running = asyncio.ensure_future(run_spec(INTERACTIVE, workdir=workdir, on_pilot=on_pilot))
    tunnel: asyncio.subprocess.Process | None = None
    try:
        await wait_for(lambda: running.done() or ready, 90, "the cluster")
        assert not running.done(), running.result().reason
        tunnel = await asyncio.create_subprocess_exec(
            *PILOTKIT, "dask", "connect", "--host", "pilotkit-test", "--ssh-config", str(sshd.ssh_config),
            str(workdir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert tunnel.stdout is not None and tunnel.stderr is not None
        line = (await asyncio.wait_for(tunnel.stdout.readline(), 60)).decode().strip()
        assert line.startswith("tcp://127.0.0.1:"), (line, await tunnel.stderr.read())
        assert line != read_info(workdir).scheduler, "a local port of the tunnel"
        async with dask_client(line) as client:
            assert await client.submit(sum, [1, 2, 3]) == 6
        tunnel.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(tunnel.wait(), 30) == 0
        pilots[0].drain("test drains")
        run = await asyncio.wait_for(running, 60)
        assert run.state is PilotState.DONE, run.reason
    finally:
        if tunnel is not None and tunnel.returncode is None:
            tunnel.kill()
            await tunnel.wait()
        if not running.done():
            pilots[0].cancel("test failed")
            await running
