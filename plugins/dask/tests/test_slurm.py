"""Dask pilots on the project's real 3-node Slurm cluster (share/testcluster)."""

from __future__ import annotations

import asyncio
import pickle
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pilotkit_dask.connection import ConnectionInfo, read_info

from pilotkit.api import AppProgress, Event, Log, PilotState
from pilotkit.testing import Pilot, RunSpec, wait_for

from .conftest import EXAMPLES, dask_client, need_dask
from .test_local import check_histogram

pytestmark = [pytest.mark.slurm, pytest.mark.dask]

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
grace = "3s"
"""


@pytest.fixture(autouse=True)
def _dask() -> None:
    need_dask()


class Watch:
    """Collects the app's Log events and ``dask.json`` as it was when the cluster was ready."""

    def __init__(self) -> None:
        self.logs: list[Log] = []
        self.ready: ConnectionInfo | None = None
        self.pilot: Pilot | None = None

    def __call__(self, pilot: Pilot) -> None:
        self.pilot = pilot

        def watch(event: Event) -> None:
            if isinstance(event, Log) and event.source == "dask":
                self.logs.append(event)
                if event.message.startswith("Dask cluster ready"):
                    self.ready = read_info(pilot.workdir)

        pilot.bus.subscribe(watch)


def example_on_slurm() -> str:
    """The batch example's own app section, on 3 Slurm nodes."""
    example = tomllib.loads((EXAMPLES / "dask-analysis.toml").read_text())
    app = example["app"]
    args = ", ".join(f'"{a}"' for a in app["args"])
    return (
        f'name = "dask-analysis-slurm"\n{SLURM}\n[app]\ntype = "dask"\n'
        f'script = "{EXAMPLES / app["script"]}"\nargs = [{args}]\n'
    )


def assert_workers_on_every_node(info: ConnectionInfo | None) -> None:
    assert info is not None, "the cluster became ready"
    assert sorted(w.name for w in info.workers) == sorted(NODES)
    assert sorted(w.host for w in info.workers) == sorted(NODES.values())
    assert info.scheduler.startswith(f"tcp://{NODES['node1']}:"), "the scheduler runs on the head node"


async def test_example_across_three_nodes(slurm: dict[str, str], run_spec: RunSpec, tmp_path: Path) -> None:
    watch = Watch()
    run = await run_spec(example_on_slurm(), workdir=tmp_path / "run", on_pilot=watch)
    assert run.state is PilotState.DONE, run.reason
    assert_workers_on_every_node(watch.ready)
    result = check_histogram(tmp_path / "run" / "tasks" / "dask-script")
    assert result["workers"] == 3
    by_task = {r.task: r for r in run.results()}
    assert by_task["dask-script"].node == by_task["dask-scheduler"].node == "node1"
    assert {by_task[f"dask-worker-{n}"].node for n in NODES} == set(NODES)
    assert any(isinstance(e, AppProgress) and e.name.startswith("chunk_masses") for e in run.events)
    assert (tmp_path / "run" / "dask-datasets" / "mass_histogram.pickle").exists()


async def test_interactive_from_outside_the_allocation(
    slurm: dict[str, str], run_spec: RunSpec, tmp_path: Path
) -> None:
    watch = Watch()
    spec = f'name = "dask-interactive-slurm"\n{SLURM}\n[app]\ntype = "dask"\nmode = "interactive"\n'
    workdir = tmp_path / "run"
    running = asyncio.ensure_future(run_spec(spec, workdir=workdir, on_pilot=watch))
    try:
        await wait_for(lambda: running.done() or watch.ready, 240, "the cluster")
        assert not running.done(), running.result().reason
        assert_workers_on_every_node(watch.ready)
        info = read_info(workdir)
        # This test process is outside the allocation: it reaches the scheduler on node1.
        async with dask_client(info.scheduler) as client:
            identity: dict[str, Any] = await client.scheduler.identity(n_workers=-1)
            assert sorted(w["host"] for w in identity["workers"].values()) == sorted(NODES.values())
            hostnames = await client.run(socket.gethostname)
            assert sorted(hostnames.values()) == sorted(NODES), "one worker in each node's namespace"
            import dask.array as da

            x = da.ones((3000, 3000), chunks=(500, 500))
            total = client.persist((x + x.T).sum())
            await client.publish_dataset(total=total)
            assert await client.compute(total) == 18_000_000
        assert watch.pilot is not None
        watch.pilot.drain("test drains")
        run = await asyncio.wait_for(running, 120)
    finally:
        if not running.done() and watch.pilot is not None:
            watch.pilot.cancel("test failed")
            await running
    assert run.state is PilotState.DONE, run.reason
    assert pickle.loads((workdir / "dask-datasets" / "total.pickle").read_bytes()) == 18_000_000
    assert any(e.message.startswith("retired 3 of 3 Dask worker") for e in watch.logs), [
        e.message for e in watch.logs
    ]
    statuses = {r.task: r.status for r in run.results()}
    assert statuses["dask-scheduler"] == "stopped"
    assert {statuses[f"dask-worker-{n}"] for n in NODES} <= {"ok", "stopped"}
    assert read_info(workdir).state == "stopped"
