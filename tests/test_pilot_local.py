"""The local pilot end to end, in-process, with real task processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotkit.events import PilotStateChanged, TaskFinished, TaskStarted
from pilotkit.states import PilotState
from pilotkit.testing.plugin import RunSpec

from .conftest import EXAMPLES


def states(run) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.state for e in run.events if isinstance(e, PilotStateChanged)]


async def test_scan_example_writes_one_result_per_task(run_spec: RunSpec) -> None:
    pytest.importorskip("numpy")
    run = await run_spec(EXAMPLES / "scan.toml")
    assert run.state is PilotState.DONE
    results = run.results()
    assert len(results) == 18 and {r.status for r in results} == {"ok"}
    assert len({r.task for r in results}) == 18
    grid = {(r.params["degree"], r.params["alpha"]) for r in results if r.group == "grid"}
    assert len(grid) == 12
    for r in results:
        metric = json.loads((run.workdir / "tasks" / r.task / "metric.json").read_text())
        assert metric["degree"] == r.params["degree"] and metric["val_mse"] >= 0
    assert states(run) == ["claiming", "probing", "deploying", "running", "evicting", "done"]


async def test_failed_task_fails_the_pilot_and_keeps_its_exit_code(run_spec: RunSpec) -> None:
    run = await run_spec(
        'name = "f"\n[[app.groups]]\nname = "g"\ncommands = ["true", "sh -c \'echo oops >&2; exit 3\'"]\n'
    )
    assert run.state is PilotState.FAILED and run.reason == "1 task(s) failed"
    by_task = {r.task: r for r in run.results()}
    assert by_task["g-1"].exit_code == 3 and by_task["g-1"].status == "failed"
    assert Path(by_task["g-1"].stderr).read_text() == "oops\n"
    assert by_task["g-0"].status == "ok"


async def test_retry_gives_a_new_attempt(run_spec: RunSpec) -> None:
    run = await run_spec(
        'name = "r"\n[app]\nretries = 2\n[[app.groups]]\nname = "g"\nshell = true\n'
        'command = "test -f flag || {{ touch flag; exit 1; }}"\n[app.groups.grid]\nx = [1]\n'
    )
    assert run.state is PilotState.DONE
    (result,) = run.results()
    assert result.attempts == 2 and result.status == "ok"
    attempts = [e.attempt for e in run.events if isinstance(e, TaskFinished)]
    assert attempts == [1, 2]


async def test_spawn_error_is_reported_not_raised(run_spec: RunSpec) -> None:
    run = await run_spec('name = "s"\n[[app.groups]]\nname = "g"\ncommands = ["/no/such/binary"]\n')
    (result,) = run.results()
    assert result.status == "spawn-error" and run.state is PilotState.FAILED


async def test_time_limit_stops_a_task(run_spec: RunSpec) -> None:
    run = await run_spec(
        'name = "t"\n[pilot]\ngrace = "1s"\n[[app.groups]]\nname = "g"\ncommands = ["sleep 30"]\n'
        'time_limit = "0.5s"\n'
    )
    (result,) = run.results()
    assert result.status == "timeout" and result.duration is not None and result.duration < 5


async def test_walltime_drains_and_is_not_a_failure(run_spec: RunSpec) -> None:
    run = await run_spec(
        'name = "w"\n[resources]\ncores = 1\nwalltime = "4s"\n[pilot]\ndrain_margin = "2s"\ngrace = "1s"\n'
        '[[app.groups]]\nname = "g"\ncommand = "sleep 0.5"\n[app.groups.grid]\ni = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n'
        '[[app.groups]]\nname = "long"\ncommands = ["sleep 0.1"]\ntime_limit = "3s"\n'
    )
    assert run.state is PilotState.WALLTIME_EXPIRED
    results = run.results()
    assert len(results) == 11, "every task is in the results, run or not"
    statuses = [r.status for r in results]
    assert "ok" in statuses and "cancelled" in statuses
    long = next(r for r in results if r.group == "long")
    assert long.status == "cancelled" and long.attempts == 0, "a task that cannot finish never starts"
    assert states(run)[-3:] == ["draining", "evicting", "walltime-expired"]


async def test_gpu_tasks_get_distinct_gpus_fake_nvml(
    run_spec: RunSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 tasks of 1 GPU each on a node with 2 GPUs (a fake NVML, since CI has no GPU)."""
    from pilotkit import probe
    from pilotkit.gpu import detect_gpus
    from pilotkit.testing.fake_nvml import FakeGpu, FakeNVML

    monkeypatch.setattr(
        probe, "gpu_report", lambda: detect_gpus(nvml=FakeNVML([FakeGpu(), FakeGpu()]), env={})
    )
    run = await run_spec(
        'name = "g"\n[resources]\ngpus = 2\n[[app.groups]]\nname = "g"\nshell = true\ngpus = 1\n'
        'command = "echo $CUDA_VISIBLE_DEVICES; sleep 0.2"\n[app.groups.grid]\ni = [1, 2, 3, 4, 5, 6, 7, 8]\n'
    )
    assert run.state is PilotState.DONE
    running: dict[str, str] = {}
    peak = 0
    for event in run.events:
        if isinstance(event, TaskStarted):
            (gpu,) = event.gpus
            assert gpu not in running.values(), "two running tasks share a GPU"
            running[event.task] = gpu
            peak = max(peak, len(running))
        elif isinstance(event, TaskFinished):
            running.pop(event.task)
    assert peak == 2
    seen = set()
    for r in run.results():
        visible = Path(r.stdout).read_text().split()
        assert len(visible) == 1 and "," not in visible[0]
        seen.add(visible[0])
    assert len(seen) == 2 and all(u.startswith("GPU-") for u in seen)


async def test_gpu_request_beyond_node_is_refused_at_validate_fake_nvml(
    run_spec: RunSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pilotkit import probe
    from pilotkit.errors import SpecError
    from pilotkit.gpu import detect_gpus
    from pilotkit.testing.fake_nvml import FakeGpu, FakeNVML

    monkeypatch.setattr(
        probe, "gpu_report", lambda: detect_gpus(nvml=FakeNVML([FakeGpu(), FakeGpu()]), env={})
    )
    with pytest.raises(SpecError) as info:
        await run_spec(
            'name = "g"\n[resources]\ngpus = 2\n[[app.groups]]\nname = "g"\ncommands = ["true"]\ngpus = 3\n'
        )
    assert "a task asks for 3 GPUs, a node has 2" in str(info.value)
