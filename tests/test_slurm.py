"""The Slurm provider against the project's real 3-node Slurm cluster."""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import pytest

from pilotkit import cgroup
from pilotkit.errors import PilotkitError
from pilotkit.events import AllocationClaimed, NodeLost, NodeReady, TaskStarted
from pilotkit.pilot import Pilot
from pilotkit.spawn import CONTAINMENT_CGROUP
from pilotkit.states import PilotState
from pilotkit.testing.plugin import RunSpec

from .conftest import restart_cluster

pytestmark = pytest.mark.slurm


def spec(tasks: int, sleep: float, *, walltime: str = "10m", extra: str = "", pilot: str = "") -> str:
    return f"""name = "slurm-test"
[provider]
type = "slurm"
{extra}
[resources]
nodes = 3
walltime = "{walltime}"
[pilot]
heartbeat = "0.5s"
heartbeat_timeout = "3s"
grace = "2s"
{pilot}
[[app.groups]]
name = "g"
shell = true
command = "echo {{i}} on $(hostname); sleep {sleep}"
[app.groups.grid]
i = [{", ".join(map(str, range(tasks)))}]
"""


async def test_scan_runs_across_all_nodes(slurm: dict[str, str], run_spec: RunSpec) -> None:
    run = await run_spec(spec(12, 0.3))
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    assert len(results) == 12 and {r.status for r in results} == {"ok"}
    assert {r.node for r in results} == {"node1", "node2", "node3"}
    for r in results:
        with open(r.stdout) as f:
            assert f.read().strip().endswith(f"on {r.node}"), "the task ran on the node it was placed on"
    (claimed,) = [e for e in run.events if isinstance(e, AllocationClaimed)]
    assert claimed.allocation.nodes == ["node1", "node2", "node3"] and claimed.allocation.job_id
    if cgroup.available():  # the test cluster's agents run as root, as this test does
        assert {e.node.containment for e in run.events if isinstance(e, NodeReady)} == {CONTAINMENT_CGROUP}


async def test_lost_node_is_survived(slurm: dict[str, str], run_spec: RunSpec) -> None:
    started: list[str] = []

    def on_pilot(pilot: Pilot) -> None:
        def watch(event: Any) -> None:
            if isinstance(event, TaskStarted) and event.node == "node2" and not started:
                started.append(event.task)
                # Cut node2 off the network, as a failed node would be.
                subprocess.run(["ip", "link", "set", "ptkv2", "down"], check=True)

        pilot.bus.subscribe(watch)

    try:
        run = await run_spec(spec(18, 1.0), on_pilot=on_pilot)
    finally:
        restart_cluster()
    assert started, "a task ran on node2 before it was lost"
    assert [e.node for e in run.events if isinstance(e, NodeLost)] == ["node2"]
    results = run.results()
    assert len(results) == 18 and {r.status for r in results} == {"ok"}, "no task lost"
    lost_task = next(r for r in results if r.task == started[0])
    assert lost_task.attempts >= 2 and lost_task.node != "node2"


async def test_walltime_with_usr1_margin_drains_cleanly(slurm: dict[str, str], run_spec: RunSpec) -> None:
    t0 = time.monotonic()
    run = await run_spec(spec(60, 2.0, walltime="1m", pilot='drain_margin = "50s"'))
    elapsed = time.monotonic() - t0
    assert run.state is PilotState.WALLTIME_EXPIRED, run.reason
    assert elapsed < 45, "drained at the margin, not at the walltime"
    results = run.results()
    assert len(results) == 60
    statuses = {r.status for r in results}
    assert "ok" in statuses and "cancelled" in statuses and "failed" not in statuses


async def test_scancel_from_outside_is_reported(slurm: dict[str, str], run_spec: RunSpec) -> None:
    job: list[str] = []

    def on_pilot(pilot: Pilot) -> None:
        def watch(event: Any) -> None:
            if isinstance(event, AllocationClaimed):
                job.append(event.allocation.job_id or "")
            if isinstance(event, TaskStarted) and len(job) == 1:
                job.append("cancelled")
                subprocess.Popen(["scancel", job[0]])

        pilot.bus.subscribe(watch)

    run = await run_spec(spec(12, 30.0), on_pilot=on_pilot)
    assert run.state is PilotState.CANCELLED, run.reason
    assert run.reason is not None and f"Slurm job {job[0]} cancelled from outside the pilot" in run.reason
    results = run.results()
    assert len(results) == 12, "every task is reported"
    assert "ok" not in {r.status for r in results}


async def test_bad_partition_is_one_clear_line(slurm: dict[str, str], run_spec: RunSpec) -> None:
    run = await run_spec(
        spec(1, 0, extra="").replace('walltime = "10m"', 'walltime = "10m"\npartition = "nope"')
    )
    assert run.state is PilotState.FAILED
    assert run.reason is not None and "\n" not in run.reason and "nope" in run.reason


async def test_walltime_beyond_partition_limit_is_refused(slurm: dict[str, str], run_spec: RunSpec) -> None:
    run = await run_spec(spec(1, 0, walltime="2h"))
    assert run.state is PilotState.FAILED
    assert (
        run.reason is not None
        and "\n" not in run.reason
        and "1:00:00" in run.reason.replace("01:00:00", "1:00:00")
    )


async def test_cli_sbatch_failure_exits_nonzero(slurm: dict[str, str], tmp_path: Any) -> None:
    import sys

    path = tmp_path / "bad.toml"
    path.write_text(spec(1, 0).replace('walltime = "10m"', 'walltime = "10m"\npartition = "nope"'))
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pilotkit.cli.main", "run", "-q", "--workdir", str(tmp_path / "w"), str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "nope" in out.stderr
    assert PilotkitError
