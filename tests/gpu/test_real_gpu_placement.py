"""GPU placement on a real NVIDIA GPU: each task sees exactly the GPUs it was given.

Runs only where NVML finds a GPU (never on CI machines). The check inside each task
goes through the CUDA driver API, which honours CUDA_VISIBLE_DEVICES as CUDA
applications do (nvidia-smi and NVML do not)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pilotkit.events import TaskFinished, TaskStarted
from pilotkit.gpu import detect_gpus
from pilotkit.states import PilotState
from pilotkit.testing import need_optional
from pilotkit.testing.plugin import RunSpec

pytestmark = pytest.mark.gpu

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def gpus() -> list[str]:
    report = detect_gpus()
    need_optional("an NVIDIA GPU with NVML", bool(report.gpus), report.reason or "")
    return [g.uuid for g in report.gpus]


async def test_each_task_sees_only_its_own_gpu(gpus: list[str], run_spec: RunSpec) -> None:
    tasks = 2 * len(gpus) + 2
    run = await run_spec(
        f'name = "gpu"\n[[app.groups]]\nname = "g"\ngpus = 1\n'
        f'command = "{sys.executable} {HERE / "cuda_visible.py"}"\n'
        f"[app.groups.grid]\ni = [{', '.join(map(str, range(tasks)))}]\n"
    )
    assert run.state is PilotState.DONE, run.reason
    assigned: dict[str, str] = {}
    running: set[str] = set()
    peak = 0
    for event in run.events:
        if isinstance(event, TaskStarted):
            (assigned[event.task],) = event.gpus
            assert assigned[event.task] not in {assigned[t] for t in running}, "two tasks share a GPU"
            running.add(event.task)
            peak = max(peak, len(running))
        elif isinstance(event, TaskFinished):
            running.discard(event.task)
    assert peak <= len(gpus)
    for result in run.results():
        seen = Path(result.stdout).read_text().split()
        print(f"{result.task}: assigned {assigned[result.task]}, CUDA sees {seen}")
        assert seen == [assigned[result.task]], "the task sees exactly its own GPU"


def test_probe_json_lists_the_gpus(gpus: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "pilotkit.cli.main", "probe", "--json"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    report = json.loads(out.stdout)["gpus"]
    print(json.dumps(report, indent=1))
    assert [g["uuid"] for g in report["gpus"]] == gpus
    assert report["driver_version"] and report["cuda_version"]
