"""``pilotkit ray connect --host`` through a real SSH server (share/testsshd), as from a
laptop, to a Ray cluster on the real 3-node Slurm test cluster; then evict."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import urllib.request
from pathlib import Path

import pytest
from pilotkit_ray.connection import read_info

from pilotkit.api import AppProgress, Log, PilotState
from pilotkit.testing import Pilot, RunSpec, Sshd, wait_for

from .conftest import FAST, need_ray, ray_processes
from .test_slurm import NODES, SLURM

pytestmark = [pytest.mark.slurm, pytest.mark.ray, pytest.mark.sshd]
PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]
CLIENT = """
import json, socket, sys, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(sys.argv[1])
@ray.remote(num_cpus=1)
def where():
    return socket.gethostname()
nodes = [n for n in ray.nodes() if n["Alive"]]
strategy = lambda n: NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
print(json.dumps(ray.get([where.options(scheduling_strategy=strategy(n)).remote() for n in nodes])))
"""


@pytest.fixture(autouse=True)
def _ray() -> None:
    need_ray()


async def test_client_through_the_tunnel_then_evict(
    sshd: Sshd, slurm: dict[str, str], run_spec: RunSpec, tmp_path: Path
) -> None:
    pilots: list[Pilot] = []
    logs: list[Log] = []
    progress: list[AppProgress] = []

    def on_pilot(pilot: Pilot) -> None:
        pilots.append(pilot)
        pilot.bus.subscribe(lambda e: logs.append(e) if isinstance(e, Log) and e.source == "ray" else None)
        pilot.bus.subscribe(lambda e: progress.append(e) if isinstance(e, AppProgress) else None)

    spec = (
        f'name = "ray-connect"\n{SLURM}\n[app]\ntype = "ray"\nmode = "interactive"\ndashboard = true\n{FAST}'
    )
    workdir = tmp_path / "pilot"
    running = asyncio.ensure_future(run_spec(spec, workdir=workdir, on_pilot=on_pilot))
    tunnel: asyncio.subprocess.Process | None = None
    try:
        await wait_for(lambda: running.done() or any("Ray head at" in e.message for e in logs), 180, "Ray")
        assert not running.done(), running.result().reason
        tunnel = await asyncio.create_subprocess_exec(
            *PILOTKIT, "ray", "connect", "--host", "pilotkit-test", "--ssh-config", str(sshd.ssh_config),
            str(workdir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert tunnel.stdout is not None and tunnel.stderr is not None
        line = (await asyncio.wait_for(tunnel.stdout.readline(), 60)).decode().strip()
        assert line.startswith("ray://127.0.0.1:"), (line, await tunnel.stderr.read())
        said = (await asyncio.wait_for(tunnel.stderr.readline(), 10)).decode()
        dashboard = said.split("; dashboard ", 1)[1].split(";", 1)[0]
        assert dashboard.startswith("http://127.0.0.1:"), said
        page = await asyncio.to_thread(lambda: urllib.request.urlopen(dashboard, timeout=30).read())
        assert b"Ray" in page, "the dashboard's page, through the tunnel"
        assert read_info(workdir).client.startswith(f"ray://{NODES['node1']}:"), (
            "the client server is on node1"
        )
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, line, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(client.communicate(), 120)
        assert client.returncode == 0, err.decode()[-2000:]
        assert sorted(json.loads(out.decode().splitlines()[-1])) == sorted(NODES), (
            "through the tunnel, on 3 nodes"
        )
        tunnel.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(tunnel.wait(), 30) == 0
        assert ray_processes(pilots[0].id), "Ray runs, with the pilot's mark"
        await wait_for(lambda: any(e.name == "where" and e.done == 3 for e in progress), 30, "progress")
        pilots[0].cancel("test evicts")
        run = await asyncio.wait_for(running, 90)
    finally:
        if tunnel is not None and tunnel.returncode is None:
            tunnel.kill()
            await tunnel.wait()
        if not running.done():
            pilots[0].cancel("test failed")
            await running
    assert run.state is PilotState.CANCELLED, run.reason
    assert ray_processes(run.pilot_id) == [], "evict leaves no Ray process on any node"
    info = read_info(workdir)
    assert info.state == "stopped"
    assert info.temp_dir is not None and not Path(info.temp_dir).exists(), "every node's Ray files removed"
