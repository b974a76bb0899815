"""The PBS, LSF and HTCondor providers end to end, on a fake batch system.

No PBS server, LSF cluster or HTCondor pool can run here, so ``fakebatch.py`` stands in
for their commands (put on PATH by the ``fake_batch`` fixture). It really runs the job
script in the background: the head agent starts here, starts the node agents through the
job's own per-node start (``pbsdsh`` over ``$PBS_NODEFILE``, ``blaunch`` over
``$LSB_MCPU_HOSTS``; one agent beside the head for HTCondor), and tasks really run.
Node names are the fake hosts ``fake1..fakeN`` the job was given.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilotkit.api import PilotState
from pilotkit.events import AllocationClaimed, TaskStarted
from pilotkit.pilot import Pilot
from pilotkit.testing.plugin import RunSpec

FAKEBATCH = Path(__file__).with_name("fakebatch.py")
COMMANDS = {
    "pbs": ("qsub", "qstat", "qdel", "pbsdsh"),
    "lsf": ("bsub", "bjobs", "bkill", "blaunch"),
    "htcondor": ("condor_submit", "condor_q", "condor_history", "condor_rm"),
}
DELETE = {"pbs": "qdel", "lsf": "bkill", "htcondor": "condor_rm"}
NODES = {"pbs": 3, "lsf": 3, "htcondor": 1}
SYSTEMS = sorted(COMMANDS)


class FakeBatch:
    def __init__(self, root: Path) -> None:
        self.bin = root / "fakebatch-bin"
        self.state = root / "fakebatch-state"
        self.bin.mkdir()
        self.state.mkdir()
        for names in COMMANDS.values():
            for name in names:
                path = self.bin / name
                path.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKEBATCH} {name} "$@"\n')
                path.chmod(0o755)

    def jobs(self) -> list[dict[str, Any]]:
        """The fake's record of every job submitted."""
        return [json.loads(path.read_text()) for path in sorted((self.state / "jobs").glob("*.json"))]

    def cleanup(self) -> None:
        env = {**os.environ, "FAKEBATCH_STATE": str(self.state)}
        subprocess.run([sys.executable, str(FAKEBATCH), "cleanup"], env=env, check=False)


@pytest.fixture
def fake_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBatch]:
    fake = FakeBatch(tmp_path)
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKEBATCH_STATE", str(fake.state))
    monkeypatch.setenv("PILOTKIT_CALLBACK_HOST", "127.0.0.1")
    try:
        yield fake
    finally:
        fake.cleanup()


def spec(
    system: str, tasks: int, sleep: float, *, walltime: str = "10m", resources: str = "", pilot: str = ""
) -> str:
    return f"""name = "fake-{system}"
[provider]
type = "{system}"
poll_interval = 0.5
[resources]
nodes = {NODES[system]}
walltime = "{walltime}"
{resources}
[pilot]
heartbeat = "0.5s"
heartbeat_timeout = "3s"
grace = "2s"
{pilot}
[[app.groups]]
name = "g"
shell = true
command = "echo {{i}}; sleep {sleep}"
[app.groups.grid]
i = [{", ".join(map(str, range(tasks)))}]
"""


def refusal(system: str) -> str:
    return 'account = "nope"' if system == "htcondor" else 'partition = "nope"'


@pytest.mark.parametrize("system", SYSTEMS)
async def test_fake_scan_runs_on_every_node(system: str, fake_batch: FakeBatch, run_spec: RunSpec) -> None:
    run = await run_spec(spec(system, 12, 0.3))
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    assert len(results) == 12 and {r.status for r in results} == {"ok"}
    (claimed,) = [e for e in run.events if isinstance(e, AllocationClaimed)]
    assert claimed.allocation.provider == system and claimed.allocation.job_id
    if system == "htcondor":
        assert claimed.allocation.nodes == ["fake1"]
    else:
        hosts = ["fake1", "fake2", "fake3"]
        assert claimed.allocation.nodes == hosts
        assert {r.node for r in results} == set(hosts), "one agent per host, started by the job script"
    (job,) = fake_batch.jobs()
    assert job["state"] == "ended" and job["killed"] is None, (
        "the job ended by itself once its agents stopped"
    )


@pytest.mark.parametrize("system", SYSTEMS)
async def test_fake_delete_from_outside_cancels(
    system: str, fake_batch: FakeBatch, run_spec: RunSpec
) -> None:
    job: list[str] = []

    def on_pilot(pilot: Pilot) -> None:
        def watch(event: Any) -> None:
            if isinstance(event, AllocationClaimed):
                job.append(event.allocation.job_id or "")
            if isinstance(event, TaskStarted) and len(job) == 1:
                job.append("deleted")
                subprocess.Popen([DELETE[system], job[0]])

        pilot.bus.subscribe(watch)

    run = await run_spec(spec(system, 12, 30.0), on_pilot=on_pilot)
    assert job[1:] == ["deleted"]
    assert run.state is PilotState.CANCELLED, run.reason
    results = run.results()
    assert len(results) == 12, "every task is reported"
    assert "ok" not in {r.status for r in results}


@pytest.mark.parametrize("system", SYSTEMS)
async def test_fake_walltime_drains_at_the_margin(
    system: str, fake_batch: FakeBatch, run_spec: RunSpec
) -> None:
    t0 = time.monotonic()
    tasks = 30 * NODES[system]  # more than the nodes' two cores each finish in 10 s
    run = await run_spec(spec(system, tasks, 2.0, walltime="1m", pilot='drain_margin = "50s"'))
    elapsed = time.monotonic() - t0
    assert run.state is PilotState.WALLTIME_EXPIRED, run.reason
    assert elapsed < 45, "drained at the margin, not at the walltime"
    results = run.results()
    assert len(results) == tasks
    statuses = {r.status for r in results}
    assert "ok" in statuses and "cancelled" in statuses and "failed" not in statuses


@pytest.mark.parametrize("system", SYSTEMS)
async def test_fake_refused_submission_is_one_clear_line(
    system: str, fake_batch: FakeBatch, run_spec: RunSpec
) -> None:
    run = await run_spec(spec(system, 1, 0, resources=refusal(system)))
    assert run.state is PilotState.FAILED
    assert run.reason is not None and "\n" not in run.reason
    assert "refused the job" in run.reason and "nope" in run.reason


@pytest.mark.parametrize("system", SYSTEMS)
async def test_fake_cli_submit_refused_exits_1(system: str, fake_batch: FakeBatch, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(spec(system, 1, 0, resources=refusal(system)))
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pilotkit.cli.main", "run", "-q", "--workdir", str(tmp_path / "w"), str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "nope" in out.stderr


@pytest.mark.parametrize("system", SYSTEMS)
async def test_fake_job_script_is_kept(
    system: str, fake_batch: FakeBatch, run_spec: RunSpec, tmp_path: Path
) -> None:
    run = await run_spec(spec(system, 1, 0), workdir=tmp_path / "run")
    assert run.state is PilotState.DONE, run.reason
    names = {"pbs": ("job.sh", "agents.sh"), "lsf": ("job.sh", "agents.sh"), "htcondor": ("job.sub",)}[system]
    for name in names:
        assert (tmp_path / "run" / name).exists()
    assert not (tmp_path / "run" / ".pilot-token").exists(), "the token goes with the pilot"
