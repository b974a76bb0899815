"""The mpi app on the local provider with Debian's OpenMPI: mpirun, two ranks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pilotkit_mpi import optimiser
from pilotkit_mpi.optimiser import OptimiserSettings

from pilotkit.events import Event, Log, TaskStarted
from pilotkit.pilot import Pilot
from pilotkit.states import PilotState
from pilotkit.testing import need, need_binary
from pilotkit.testing.plugin import RunSpec

from .conftest import ALLREDUCE, of_kind

pytestmark = pytest.mark.mpi


@pytest.fixture(autouse=True)
def openmpi() -> None:
    need_binary("mpirun", "install Debian's openmpi-bin")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        need("mpi4py", False, "pip install mpi4py (builds against the system's OpenMPI)")


def spec(app: str) -> str:
    return f'name = "mpi-local"\n[pilot]\ngrace = "2s"\n[app]\ntype = "mpi"\n{app}'


async def test_allreduce_over_two_local_ranks(run_spec: RunSpec) -> None:
    run = await run_spec(spec(f'command = "python3 {ALLREDUCE}"\nranks_per_node = 2\n'))
    assert run.state is PilotState.DONE, run.reason
    (result,) = run.results()
    assert result.task == "mpi" and result.status == "ok"
    lines = sorted(open(result.stdout).read().splitlines())
    assert [line.split(":")[0] for line in lines] == [
        f"rank 0/2 on {result.node}",
        f"rank 1/2 on {result.node}",
    ]
    assert all("sum 3 " in line for line in lines)
    assert "RANK=1 LOCAL_RANK=1 WORLD_SIZE=2" in lines[1] and f"MASTER_ADDR={result.node}" in lines[0]
    launched = json.loads((run.workdir / "tasks" / "mpi" / "launch.json").read_text())
    assert launched["argv"][0] == "mpirun" and "--hostfile" in launched["argv"]


async def test_a_dying_rank_fails_only_its_trial(run_spec: RunSpec) -> None:
    run = await run_spec(
        spec(
            f'command = "python3 {ALLREDUCE} --die-rank {{die}} --exit-code 3"\nranks_per_node = 2\n'
            "[app.scan.grid]\ndie = [-1, 1, -1]\n"
        )
    )
    assert run.state is PilotState.FAILED and run.reason == "1 task(s) failed"
    by_task = {r.task: r for r in run.results()}
    assert {t: r.status for t, r in by_task.items()} == {"mpi-0": "ok", "mpi-1": "failed", "mpi-2": "ok"}
    assert by_task["mpi-1"].exit_code == 3
    failure = json.loads((run.workdir / "tasks" / "mpi-1" / "failure.json").read_text())
    assert [(r["ranks"], r["exit_code"]) for r in failure["ranks"]] == [("1", 3)]
    logs = [e.message for e in of_kind(run.events, Log) if e.source == "mpi"]
    assert any(m.startswith("trial mpi-1 failed: exit 3; rank 1: exit code 3") for m in logs), logs
    records = [json.loads(line) for line in (run.workdir / "scan.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]


class Halving:
    """Proposes x = 1, then half of the last x it was told about: it only moves on
    once a result has come back."""

    def __init__(self, settings: OptimiserSettings) -> None:
        self.seen: list[tuple[dict[str, Any], float | None]] = []
        self.next_x = 1.0
        self.asked = 0
        Halving.last = self

    last: Halving

    def suggest(self, n: int) -> list[dict[str, Any]]:
        self.asked += 1
        if len(self.seen) < self.asked - 1:
            return []  # asked again before a result came back: nothing to propose
        return [{"x": self.next_x}][:n]

    def observe(self, params: dict[str, Any], metric: float | None) -> None:
        self.seen.append((params, metric))
        self.next_x = params["x"] / 2


@pytest.fixture
def halving() -> Iterator[None]:
    optimiser.register_optimiser("halving", Halving)
    yield
    optimiser.unregister_optimiser("halving")


async def test_an_optimiser_is_asked_again_as_results_come_back(run_spec: RunSpec, halving: None) -> None:
    writer = "import json, sys; json.dump(dict(loss=float(sys.argv[1]) ** 2), open(sys.argv[2], 'w'))"
    run = await run_spec(
        spec(
            f'command = ["python3", "-c", "{writer}", "{{x}}", "{{task_dir}}/out.json"]\n'
            '[app.scan]\noptimiser = "halving"\ntrials = 3\nmetric_file = "out.json"\nmetric_key = "loss"\n'
            "[app.scan.params]\nx = { uniform = [0, 1] }\n"
        )
    )
    assert run.state is PilotState.DONE, run.reason
    assert Halving.last.seen == [({"x": 1.0}, 1.0), ({"x": 0.5}, 0.25), ({"x": 0.25}, 0.0625)]
    logs = [e.message for e in of_kind(run.events, Log) if e.source == "mpi"]
    assert any(m.startswith("best trial mpi-2: loss = 0.0625") for m in logs), logs


async def test_cancelling_the_pilot_stops_the_running_trial_and_the_queued_ones(run_spec: RunSpec) -> None:
    def on_pilot(pilot: Pilot) -> None:
        def watch(event: Event) -> None:
            if isinstance(event, TaskStarted):  # once the ranks have had a moment to start
                asyncio.get_running_loop().call_later(1.0, pilot.cancel, "enough")

        pilot.bus.subscribe(watch)

    run = await run_spec(
        spec('command = "sleep {s}"\n[app.scan.grid]\ns = [30, 31, 32]\n'), on_pilot=on_pilot
    )
    assert run.state is PilotState.CANCELLED
    assert [r.status for r in run.results()] == ["cancelled"] * 3  # the running one was killed
    assert run.ended - run.started < 20, "the sleeping ranks were stopped"
