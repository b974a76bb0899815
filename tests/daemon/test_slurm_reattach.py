"""A Slurm pilot outlives its daemon, on the project's real 3-node Slurm cluster.

The daemon is killed (kill -9) or shut down mid-scan; the node agents keep running their
tasks and keep their results; the restarted daemon re-attaches to the job from its state
database and gets every result, none twice: each task id is in the results once, ``ok``,
and ran once (one attempt wrote output).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..test_slurm import spec
from .conftest import DaemonProcess, wait_for, write_spec

pytestmark = pytest.mark.slurm

TASKS = 24


def _squeue(job: str) -> str:
    return subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--jobs={job}", "--format=%T"], capture_output=True, text=True
    ).stdout.strip()


def _results(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _runs(workdir: Path) -> Counter[str]:
    """How many attempts of each task ran (wrote their ``echo`` line)."""
    ran: Counter[str] = Counter()
    for out in (workdir / "tasks").glob("*/attempt-*.out"):
        if out.read_text().strip():
            ran[out.parent.name] += 1
    return ran


def _through_a_restart(
    slurm: dict[str, str], daemon_factory: Callable[..., DaemonProcess], tmp_path: Path,
    stop: Callable[[DaemonProcess], None], away: float,
) -> tuple[float, int, int, int]:  # fmt: skip
    """Run a scan, ``stop`` the daemon once 6 results are in, start it again ``away``
    seconds later; (seconds from the restart to re-attached, results carried over
    finished, still running, tasks that started while no daemon ran)."""
    d = daemon_factory()
    d.start()
    pilot = d.submit(write_spec(tmp_path, spec(TASKS, 5.0)))
    summary = d.wait_state(pilot, {"running"}, timeout=60)
    workdir, job = Path(summary["workdir"]), summary["job_id"]
    wait_for(lambda: len(_results(workdir)) >= 6, timeout=60, what="6 results")
    stopped = time.time()
    stop(d)
    time.sleep(away)
    assert _squeue(job) == "RUNNING", "the job outlives the daemon"
    log = workdir / "pilot.log"
    before = log.read_text() if log.exists() else ""
    restarted, back = time.monotonic(), time.time()
    d.start()
    said = wait_for(
        lambda: next((line for line in log.read_text()[len(before):].splitlines() if "re-attached:" in line), None),
        timeout=60, what="the pilot to re-attach",
    )  # fmt: skip
    reattached = time.monotonic() - restarted
    final = d.wait_state(pilot, {"done", "failed", "cancelled", "walltime-expired"}, timeout=90)
    assert final["state"] == "done", final["reason"]

    results = _results(workdir)
    latest = {r["task"]: r for r in results}
    ok = Counter(r["task"] for r in results if r["status"] == "ok")
    assert len(latest) == TASKS and {r["status"] for r in latest.values()} == {"ok"}, latest
    assert set(ok.values()) == {1}, f"a result recorded twice: {ok}"
    ran = _runs(workdir)
    assert len(ran) == TASKS and set(ran.values()) == {1}, f"a task ran twice: {ran}"
    assert wait_for(lambda: _squeue(job) in ("COMPLETED", ""), timeout=30, what="the job to end")
    assert not (workdir / ".pilot-token").exists(), "the token file is removed at the end"
    words = said.split("re-attached: ", 1)[1].split()
    running, finished = int(words[0]), int(words[5])
    started_away = sum(1 for r in latest.values() if stopped < r["start"] < back)
    return reattached, finished, running, started_away


def test_kill_9_of_the_daemon_mid_scan_then_restart(
    slurm: dict[str, str], daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    reattached, finished, running, started_away = _through_a_restart(
        slurm, daemon_factory, tmp_path, lambda d: d.kill9(), away=6.0
    )
    assert started_away > 0, "the agents started their leased tasks while no daemon ran"
    print(f"daemon kill -9: re-attached {reattached:.1f}s after the restart "
          f"({running} task(s) still running, {finished} finished meanwhile, {started_away} started "
          "meanwhile); 0 lost, 0 run twice")  # fmt: skip


def test_daemon_shutdown_mid_scan_then_start_again(
    slurm: dict[str, str], daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    def shut_down(d: DaemonProcess) -> None:
        d.signal(signal.SIGTERM)
        assert d.wait_exit(20) == 0

    reattached, finished, running, started_away = _through_a_restart(
        slurm, daemon_factory, tmp_path, shut_down, away=6.0
    )
    assert finished > 0, "tasks ended while no daemon ran, and their results were kept"
    assert started_away > 0, "the tasks handed to the agents at the shutdown started while no daemon ran"
    print(f"daemon shutdown: re-attached {reattached:.1f}s after the start "
          f"({running} task(s) still running, {finished} finished meanwhile, {started_away} started "
          "meanwhile); 0 lost, 0 run twice")  # fmt: skip
