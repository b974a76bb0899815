"""Ray pilots on the project's real 3-node Slurm cluster (share/testcluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pilotkit_ray.connection import read_info

from pilotkit.api import PilotState
from pilotkit.testing import Pilot, RunSpec

from .conftest import FAST, need_ray, ray_processes

pytestmark = [pytest.mark.slurm, pytest.mark.ray]

NODES = {"node1": "10.213.0.11", "node2": "10.213.0.12", "node3": "10.213.0.13"}
SLURM = """
[provider]
type = "slurm"
[resources]
nodes = 3
walltime = "10m"
[pilot]
heartbeat = "0.5s"
heartbeat_timeout = "5s"
grace = "10s"
"""
HOSTNAMES = """
import json, socket, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init()
@ray.remote(num_cpus=1)
def where():
    return socket.gethostname()
nodes = [n for n in ray.nodes() if n["Alive"]]
refs = [
    where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
    for n in nodes
]
print(json.dumps({
    "hostnames": ray.get(refs),
    "ips": [n["NodeManagerAddress"] for n in nodes],
    "cpus": [n["Resources"]["CPU"] for n in nodes],
}))
"""


@pytest.fixture(autouse=True)
def _ray() -> None:
    need_ray()


async def test_tasks_run_on_all_three_nodes_and_ray_is_gone_after(
    slurm: dict[str, str], run_spec: RunSpec, tmp_path: Path
) -> None:
    script = tmp_path / "hostnames.py"
    script.write_text(HOSTNAMES)
    spec = f'name = "ray-slurm"\n{SLURM}\n[app]\ntype = "ray"\nscript = "{script}"\n{FAST}'
    pilots: list[Pilot] = []
    run = await run_spec(spec, workdir=tmp_path / "run", on_pilot=pilots.append)
    assert run.state is PilotState.DONE, run.reason
    by_task = {r.task: r for r in run.results()}
    assert by_task["ray-head"].node == by_task["ray-script"].node == "node1"
    assert {by_task[f"ray-worker-{n}"].node for n in ("node2", "node3")} == {"node2", "node3"}
    seen = json.loads(Path(by_task["ray-script"].stdout).read_text().splitlines()[-1])
    assert sorted(seen["hostnames"]) == sorted(NODES), "a task ran on each of the three nodes"
    assert sorted(seen["ips"]) == sorted(NODES.values())
    assert sorted(seen["cpus"]) == sorted(n.cores for n in pilots[0].nodes), "the cores each agent found"
    info = read_info(run.workdir)
    assert info.address.startswith(f"{NODES['node1']}:"), "the head runs on the first node"
    assert info.state == "stopped"
    assert ray_processes(run.pilot_id) == [], "no Ray process left on any node"
    assert info.temp_dir is not None and not Path(info.temp_dir).exists()
