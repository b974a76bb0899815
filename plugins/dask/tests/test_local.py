"""Dask pilots on this machine (the default local provider), for real."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pilotkit_dask.commands import plan_workers
from pilotkit_dask.connection import read_info

from pilotkit.api import AppProgress, Event, Log, PilotState, TaskFinished
from pilotkit.testing import Pilot, RunSpec, wait_for

from .conftest import EXAMPLES, dask_client, load_example, need_dask

pytestmark = pytest.mark.dask


@pytest.fixture(autouse=True)
def _dask() -> None:
    need_dask()


def check_histogram(task_dir: Path) -> dict[str, Any]:
    """``histogram.json`` of the example equals numpy's histogram of the same events."""
    example = load_example()
    result: dict[str, Any] = json.loads((task_dir / "histogram.json").read_text())
    masses = np.concatenate(
        [
            example.chunk_masses(result["seed"], index, size)
            for index, size in enumerate(example.chunk_sizes(result["events"], result["chunk"]))
        ]
    )
    expected, _ = np.histogram(masses, bins=np.asarray(result["edges"]))
    assert result["counts"] == expected.tolist()
    assert 90.0 <= result["peak_low"] < 92.0, "the Z peak"
    out = sorted(task_dir.glob("attempt-*.out"))[-1].read_text()
    assert f"peak bin {result['peak_bin']} " in out
    return result


async def test_batch_example(run_spec: RunSpec, tmp_path: Path) -> None:
    run = await run_spec(EXAMPLES / "dask-analysis.toml", workdir=tmp_path / "run")
    assert run.state is PilotState.DONE, run.reason
    by_task = {r.task: r for r in run.results()}
    assert by_task["dask-script"].status == "ok"
    assert by_task["dask-scheduler"].status == "stopped"
    assert {r.status for t, r in by_task.items() if t.startswith("dask-worker-")} <= {"ok", "stopped"}
    check_histogram(tmp_path / "run" / "tasks" / "dask-script")
    progress = [e for e in run.events if isinstance(e, AppProgress)]
    assert {e.app for e in progress} == {"dask"}
    final = {e.name: e for e in progress}
    assert any(p.startswith("chunk_masses") for p in final), sorted(final)
    assert all(e.total == e.done and e.failed == 0 for e in final.values()), final
    saved = pickle.loads((tmp_path / "run" / "dask-datasets" / "mass_histogram.pickle").read_bytes())
    assert (
        saved.tolist()
        == json.loads((tmp_path / "run/tasks/dask-script/histogram.json").read_text())["counts"]
    )
    info = read_info(tmp_path / "run")
    assert info.state == "stopped" and info.mode == "batch"


async def test_script_exit_code_decides(run_spec: RunSpec, tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text(
        "import os, sys\n"
        "from distributed import Client\n"
        "with Client() as c:\n"
        "    print(os.environ['DASK_SCHEDULER_ADDRESS'], c.submit(sum, [1, 2]).result())\n"
        "sys.exit(3)\n"
    )
    spec = f"""name = "fails"
[pilot]
grace = "3s"
[app]
type = "dask"
script = "{script}"
nanny = false
"""
    run = await run_spec(spec)
    assert run.state is PilotState.FAILED
    assert run.reason == "1 task(s) failed"
    (script_result,) = [r for r in run.results() if r.task == "dask-script"]
    assert script_result.exit_code == 3
    assert Path(script_result.stdout).read_text().split() == [read_info(run.workdir).scheduler, "3"]
    assert {r.status for r in run.results() if r.task != "dask-script"} <= {"ok", "stopped"}


async def test_a_scheduler_that_cannot_start_is_one_clear_error(run_spec: RunSpec) -> None:
    spec = """name = "broken"
[app]
type = "dask"
mode = "interactive"
python = "/nonexistent/python3"
ready_timeout = "30s"
"""
    run = await run_spec(spec)
    assert run.state is PilotState.FAILED
    assert run.reason is not None and "\n" not in run.reason
    assert run.reason.startswith("the Dask scheduler stopped before it was ready (spawn-error, exit code 127")


async def test_interactive_serves_outside_clients_restarts_lost_workers_and_keeps_results(
    run_spec: RunSpec, tmp_path: Path
) -> None:
    logs: list[Log] = []
    pilots: list[Pilot] = []

    def on_pilot(pilot: Pilot) -> None:
        pilots.append(pilot)

        def watch(event: Event) -> None:
            if isinstance(event, Log) and event.source == "dask":
                logs.append(event)

        pilot.bus.subscribe(watch)

    spec = """name = "interactive"
[pilot]
grace = "3s"
[app]
type = "dask"
mode = "interactive"
"""
    workdir = tmp_path / "run"
    running = asyncio.ensure_future(run_spec(spec, workdir=workdir, on_pilot=on_pilot))
    try:
        await wait_for(
            lambda: running.done() or any("Dask scheduler at" in e.message for e in logs), 90, "the address"
        )
        assert not running.done(), running.result().reason
        info = read_info(workdir)
        planned = [p.name for p in plan_workers(pilots[0].nodes)]
        assert info.mode == "interactive" and [w.name for w in info.workers] == planned
        assert any(info.scheduler in e.message for e in logs)
        async with dask_client(info.scheduler) as client:
            # A lost worker (its whole service dies) is reported and started again.
            async def workers() -> set[str]:
                return set((await client.scheduler.identity(n_workers=-1))["workers"])

            pgid = next(iter((await client.run(os.getpgid, 0)).values()))
            old = await workers()
            assert len(old) == len(planned)
            os.killpg(pgid, signal.SIGKILL)
            await wait_for(lambda: any("restarted it (1 of 3)" in e.message for e in logs), 30, "the restart")
            await client.wait_for_workers(len(planned))
            new = await workers()
            assert len(new) == len(planned) and new != old, "a new worker took the lost one's place"
            # Work from outside the allocation, persisted and published before the drain.
            import dask.array as da

            x = da.arange(1_000_000, chunks=100_000)
            total = client.persist((x * 2).sum())
            await client.publish_dataset(doubled_sum=total)
            assert await client.compute(total) == 999_999_000_000
        pilots[0].drain("test drains")
        run = await asyncio.wait_for(running, 60)
    finally:
        if not running.done():
            pilots[0].cancel("test failed")
            await running
    assert run.state is PilotState.DONE, run.reason
    saved = pickle.loads((workdir / "dask-datasets" / "doubled_sum.pickle").read_bytes())
    assert saved == 999_999_000_000, "the result computed before the drain was kept"
    retired = f"retired {len(planned)} of {len(planned)} Dask worker"
    assert any(e.message.startswith(retired) for e in logs), [e.message for e in logs]
    progress = [e for e in run.events if isinstance(e, AppProgress)]
    assert any(e.name.startswith("arange") or "sum" in e.name for e in progress)
    finished = [e for e in run.events if isinstance(e, TaskFinished)]
    assert next(e.final for e in finished if e.task.startswith("dask-worker")) is False, "the pool re-ran it"
    assert read_info(workdir).state == "stopped"
