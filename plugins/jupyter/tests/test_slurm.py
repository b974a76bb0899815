"""A Jupyter pilot on the project's real 3-node Slurm cluster (share/testcluster): JupyterLab
on node1, Dask workers (or Ray) on node1-3, reached from outside through ``pilotkit jupyter open
--host``'s tunnel (share/testsshd), nothing left on any node after the cancel."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit_jupyter.connection import read_info

from pilotkit.api import PilotState
from pilotkit.testing import RunSpec, Sshd, wait_for

from .conftest import LAB_WITH_DASK, check_lab_with_dask, processes_of, served

pytestmark = [pytest.mark.slurm, pytest.mark.dask, pytest.mark.sshd, pytest.mark.usefixtures("jupyter_parts")]

SPEC = f"""name = "nb-slurm"
[provider]
type = "slurm"
[resources]
nodes = 3
walltime = "10m"
[pilot]
heartbeat = "0.5s"
heartbeat_timeout = "5s"
grace = "3s"
{LAB_WITH_DASK}"""


async def test_lab_on_node1_with_dask_on_three_nodes(
    slurm: dict[str, str], sshd: Sshd, run_spec: RunSpec, tmp_path: Path
) -> None:
    workdir = tmp_path / "pilot"
    async with served(run_spec, SPEC, workdir, 180) as server:
        info = read_info(workdir)
        assert info.node == info.host == "node1" and info.base_url.startswith("http://node1:"), info
        assert info.dask_scheduler is not None and info.dask_scheduler.startswith("tcp://10.213.0.11:")
        hosts = await check_lab_with_dask(sshd, workdir, tmp_path)
        assert hosts == ["node1", "node2", "node3"], "one Dask worker in each node"
        run = await server.cancel(90)
    assert run.state is PilotState.CANCELLED, run.reason
    assert read_info(workdir).state == "stopped"
    assert processes_of(workdir) == [], "evict leaves no Jupyter, kernel or Dask process on any node"


RAY_SPEC = """name = "nb-ray-slurm"
[provider]
type = "slurm"
[resources]
nodes = 3
walltime = "10m"
[pilot]
heartbeat = "0.5s"
heartbeat_timeout = "5s"
grace = "3s"
[app]
type = "jupyter"
lab = false
backend = "ray"
[app.ray]
dashboard = true
object_store_memory = "80MiB"
"""

RAY_HOSTS_CELL = """
import os, socket, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init()
@ray.remote(num_cpus=1)
def where():
    return socket.gethostname()
nodes = [n for n in ray.nodes() if n["Alive"]]
hosts = ray.get([
    where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
    for n in nodes
])
print("RESULT", ",".join(sorted(hosts)), os.environ["RAY_ADDRESS"])
"""


@pytest.mark.ray
async def test_server_on_node1_with_ray_on_three_nodes_through_the_tunnel(
    slurm: dict[str, str], sshd: Sshd, run_spec: RunSpec, tmp_path: Path
) -> None:
    import importlib.util

    import aiohttp

    from pilotkit.testing import need

    from .conftest import Tunnel, get_text, ray_processes, run_cell

    need("Ray's dashboard", importlib.util.find_spec("aiohttp_cors") is not None, "pip install 'ray[default]'")
    workdir = tmp_path / "pilot"
    async with served(run_spec, RAY_SPEC, workdir, 180) as server:
        info = read_info(workdir)
        assert info.node == "node1" and info.ray_address and info.ray_address.startswith("10.213.0.11:"), info
        assert info.ray_dashboard and info.ray_dashboard.startswith("/proxy/10.213.0.11:"), info
        tunnel = await Tunnel.open(sshd, workdir)
        try:
            status, out = await run_cell(aiohttp, tunnel.base, tunnel.token, RAY_HOSTS_CELL)
            assert status == "ok", out
            assert out.split("RESULT ", 1)[1].split() == ["node1,node2,node3", info.ray_address], out
            code, version = await get_text(aiohttp, f"{tunnel.base}{info.ray_dashboard}api/version", tunnel.token)
            assert code == 200 and "ray_version" in version, "Ray's dashboard on node1's address, through the proxy"
        finally:
            assert await tunnel.close() == 0
        run = await server.cancel(90)
    assert run.state is PilotState.CANCELLED, run.reason
    assert read_info(workdir).state == "stopped"
    assert processes_of(workdir) == [], "no Jupyter server or kernel left on any node"
    await wait_for(lambda: ray_processes(run.pilot_id) == [], 15, "no Ray process on any node")
