"""The mpi app on the project's real 3-node Slurm cluster with Debian's OpenMPI."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from typing import Any

import pytest

from pilotkit.events import Event, TaskFinished, TaskStarted
from pilotkit.pilot import Pilot
from pilotkit.states import PilotState
from pilotkit.testing import need, need_binary
from pilotkit.testing.plugin import RunResult, RunSpec

from .conftest import ALLREDUCE

pytestmark = [pytest.mark.slurm, pytest.mark.mpi]

NODES = ["node1", "node2", "node3"]


@pytest.fixture(autouse=True)
def openmpi() -> None:
    need_binary("mpirun", "install Debian's openmpi-bin")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        need("mpi4py", False, "pip install mpi4py (builds against the system's OpenMPI)")


def spec(app: str) -> str:
    return f"""name = "mpi-slurm"
[provider]
type = "slurm"
[resources]
nodes = 3
walltime = "10m"
[pilot]
heartbeat = "0.5s"
heartbeat_timeout = "5s"
grace = "2s"
[app]
type = "mpi"
{app}"""


def rank_lines(run: RunResult, task: str) -> list[list[str]]:
    """``[rank/size, host, sum]`` of what each rank printed, by rank (the lines of
    ranks on other nodes may arrive interleaved, so they are matched, not split)."""
    text = (run.workdir / "tasks" / task / "attempt-1.out").read_text()
    rows = re.findall(r"rank (\d+)/(\d+) on (\S+): sum (\S+)", text)
    return [[f"{r}/{n}", host, total] for r, n, host, total in sorted(rows, key=lambda row: int(row[0]))]


async def test_allreduce_over_three_nodes_with_srun(slurm: dict[str, str], run_spec: RunSpec) -> None:
    run = await run_spec(spec(f'command = "python3 {ALLREDUCE}"\n'))
    assert run.state is PilotState.DONE, run.reason
    assert rank_lines(run, "mpi") == [["0/3", "node1", "6"], ["1/3", "node2", "6"], ["2/3", "node3", "6"]]
    launched = json.loads((run.workdir / "tasks" / "mpi" / "launch.json").read_text())
    assert launched["argv"][:3] == ["srun", "--overlap", "--mpi=pmix"] and launched["nodes"] == NODES


async def test_allreduce_with_mpirun_inside_the_allocation(slurm: dict[str, str], run_spec: RunSpec) -> None:
    subnet = slurm["PILOTKIT_TESTCLUSTER_SUBNET"]
    run = await run_spec(
        spec(
            f'command = "python3 {ALLREDUCE}"\nlauncher = "mpirun"\nranks_per_node = 2\n'
            f'interface = "{subnet}"\nbtl = ["tcp", "self"]\n'
        )
    )
    assert run.state is PilotState.DONE, run.reason
    lines = rank_lines(run, "mpi")
    output = (run.workdir / "tasks" / "mpi" / "attempt-1.out").read_text()
    assert [row[1] for row in lines] == ["node1", "node1", "node2", "node2", "node3", "node3"], output
    assert {row[2] for row in lines} == {"21"}, output


def concurrency(events: list[Event]) -> tuple[int, list[set[str]]]:
    """The most trials running at once, and the node sets seen running together."""
    running: dict[str, str] = {}
    peak, together = 0, []
    for event in events:
        if isinstance(event, TaskStarted):
            running[event.task] = event.node
            peak = max(peak, len(running))
            together.append(set(running.values()))
            assert len(set(running.values())) == len(running), "two trials on one node at once"
        elif isinstance(event, TaskFinished):
            running.pop(event.task, None)
    return peak, together


@pytest.mark.parametrize(
    "scan",
    [
        "[app.scan.grid]\nscale = [1, 2, 3, 4, 5, 6]\n",
        '[app.scan]\noptimiser = "random"\ntrials = 6\nseed = 1\ngoal = "max"\n'
        "[app.scan.params]\nscale = { uniform = [1, 10] }\n",
    ],
    ids=["grid", "optimiser"],
)
async def test_scan_of_six_one_node_trials_runs_three_at_a_time(
    slurm: dict[str, str], run_spec: RunSpec, scan: str
) -> None:
    run = await run_spec(
        spec(
            f'command = "python3 {ALLREDUCE} --scale {{scale}} --metric {{task_dir}}/metric.json"\n'
            f"nodes = 1\nranks_per_node = 2\n{scan}"
        )
    )
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    assert len(results) == 6 and {r.status for r in results} == {"ok"}
    peak, together = concurrency(run.events)
    assert peak == 3 and set(NODES) in together
    records = [json.loads(line) for line in (run.workdir / "scan.jsonl").read_text().splitlines()]
    assert len(records) == 6
    for record in records:
        assert record["metric"] == pytest.approx(3 * record["params"]["scale"])  # 2 ranks: 1 + 2
        assert len(record["nodes"]) == 1


async def test_a_dying_rank_on_another_node_fails_only_its_trial(
    slurm: dict[str, str], run_spec: RunSpec
) -> None:
    run = await run_spec(
        spec(
            f'command = "python3 {ALLREDUCE} --die-rank {{die}} --exit-code 3"\n[app.scan.grid]\ndie = [2, -1]\n'
        )
    )
    assert run.state is PilotState.FAILED and run.reason == "1 task(s) failed"
    by_task: dict[str, Any] = {r.task: r for r in run.results()}
    assert by_task["mpi-0"].status == "failed" and by_task["mpi-0"].exit_code
    assert by_task["mpi-1"].status == "ok", "the next trial still ran on the same nodes"
    failure = json.loads((run.workdir / "tasks" / "mpi-0" / "failure.json").read_text())
    ranks = [(r["ranks"], r["node"], r["exit_code"], r["signal"]) for r in failure["ranks"]]
    assert ranks[0] == ("2", "node3", 3, None), "the rank that died, first"
    assert failure["exit_code"] == 3, "the rank's own exit code, not the launcher's"
    records = {r["task"]: r for r in map(json.loads, (run.workdir / "scan.jsonl").read_text().splitlines())}
    assert records["mpi-0"]["exit_code"] == 3 and records["mpi-0"]["launcher_exit_code"] is not None
    # srun then stops the others; it names them as it reaps them (usually both)
    assert {(r[0], r[1]) for r in ranks[1:]} <= {("0", "node1"), ("1", "node2")}
    assert all(r[3] in (9, 15) for r in ranks[1:])
    assert rank_lines(run, "mpi-1") == [["0/3", "node1", "6"], ["1/3", "node2", "6"], ["2/3", "node3", "6"]]


async def test_cancelling_stops_the_ranks_on_every_node(slurm: dict[str, str], run_spec: RunSpec) -> None:
    marker = "61.25"  # a sleep nobody else runs

    def on_pilot(pilot: Pilot) -> None:
        def watch(event: Event) -> None:
            if isinstance(event, TaskStarted):
                asyncio.get_running_loop().call_later(2.0, pilot.cancel, "enough")

        pilot.bus.subscribe(watch)

    run = await run_spec(spec(f'command = "sleep {marker}"\n'), on_pilot=on_pilot)
    assert run.state is PilotState.CANCELLED
    assert [r.status for r in run.results()] == ["cancelled"]
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout.split()
    assert not left, f"ranks left running: {left}"


async def test_a_tpe_search_drives_trials_of_two_whole_nodes(slurm: dict[str, str], run_spec: RunSpec) -> None:
    """``[app.search]``: the core's adaptive search (real Optuna TPE) over MPI trials of
    two nodes each, one group of nodes at a time on three; every trial runs once and its
    rank 0's metrics reach the study."""
    try:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
    except ImportError:
        need("optuna", False, "pip install pilotkit-optuna")
    run = await run_spec(
        spec(
            f'command = "python3 {ALLREDUCE} --scale {{scale}} --metric \\"$PILOTKIT_METRICS\\""\n'
            "shell = true\nnodes = 2\n"
            '[app.search]\nsampler = "tpe"\ntrials = 4\nobjective = "metric"\nseed = 1\n'
            '[app.search.params]\nscale = { uniform = [1, 10] }\n'
        )
    )
    assert run.state is PilotState.DONE, run.reason
    results = sorted(run.results(), key=lambda r: r.task)
    assert [r.task for r in results] == ["mpi-0", "mpi-1", "mpi-2", "mpi-3"]
    assert {r.status for r in results} == {"ok"}
    for r in results:  # 2 ranks, one a node: 1 + 2
        assert r.metrics is not None and r.metrics["metric"] == pytest.approx(3 * r.params["scale"])
        launched = json.loads((run.workdir / "tasks" / r.task / "launch.json").read_text())
        assert len(launched["nodes"]) == 2
    assert len({r.params["scale"] for r in results}) == 4
    started = [e.task for e in run.events if isinstance(e, TaskStarted)]
    assert sorted(started) == ["mpi-0", "mpi-1", "mpi-2", "mpi-3"]  # each once
    peak, _ = concurrency(run.events)
    assert peak == 1  # 3 nodes hold one 2-node trial
    storage = JournalStorage(JournalFileBackend(str(run.workdir / "search" / "mpi.journal")))
    study = optuna.load_study(study_name="mpi", storage=storage)
    told = sorted((t.number, t.state.name, t.value) for t in study.trials)
    assert told == [(i, "COMPLETE", pytest.approx(3 * results[i].params["scale"])) for i in range(4)]
