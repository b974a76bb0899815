"""Durable state: kill -9 and restart, torn records, signals, stale files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import psutil

from pilotkit.results import read_results

from .conftest import DaemonProcess, wait_for, write_spec

CRASHY = """
name = "crashy"
[resources]
cores = 2
[pilot]
grace = "1s"
[[app.groups]]
name = "quick"
commands = ["echo q0", "echo q1", "echo q2", "echo q3"]
[[app.groups]]
name = "slow"
shell = true
command = "if [ -e ran-before ]; then echo second; exit 0; fi; touch ran-before; echo first; exec sleep 60"
[app.groups.grid]
i = [1, 2]
"""


def _orphans(workdir: Path) -> list[int]:
    root = str(workdir / "tasks")
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.cwd().startswith(root):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def _start_and_crash(daemon: DaemonProcess, spec: Path) -> tuple[str, Path]:
    pilot = daemon.submit(spec)

    def slow_running() -> bool:
        s = daemon.status(pilot)
        return s["groups"].get("quick", {}).get("done") == 4 and s["groups"].get("slow", {}).get("running") == 2

    wait_for(slow_running, 30, "the quick tasks to finish and the slow ones to run")
    workdir = Path(daemon.status(pilot)["workdir"])
    daemon.kill9()
    assert daemon.socket.exists(), "kill -9 leaves the socket behind"
    assert len(_orphans(workdir)) == 2, "the slow tasks outlive the daemon"
    return pilot, workdir


def test_kill_9_then_restart_keeps_results_and_reruns_lost_tasks(daemon: DaemonProcess, tmp_path: Path) -> None:
    pilot, workdir = _start_and_crash(daemon, write_spec(tmp_path, CRASHY))
    daemon.start()
    assert "removed stale" in daemon.output()
    summary = daemon.wait_state(pilot, {"done"}, timeout=30)
    assert summary["run"] == 2 and summary["crashes"] == 1
    assert summary["progress"]["done"] == 6 and summary["progress"]["failed"] == 0
    assert not _orphans(workdir), "the dead daemon's task processes were killed"

    results = read_results(workdir / "results.jsonl")
    by_task: dict[str, list[int]] = {}
    for r in results:
        by_task.setdefault(r.task, []).append(r.attempts)
    assert by_task == {"quick-0": [1], "quick-1": [1], "quick-2": [1], "quick-3": [1], "slow-0": [2], "slow-1": [2]}
    assert (workdir / "tasks" / "quick-0" / "attempt-1.out").read_text() == "q0\n"
    assert (workdir / "tasks" / "slow-0" / "attempt-2.out").read_text() == "second\n"

    events = [json.loads(line) for line in daemon.cli("events", pilot, "--json").stdout.splitlines()]
    lost = {(e["task"], e["attempt"]) for e in events if e["type"] == "task-finished" and e["status"] == "lost"}
    assert all(not e.get("final", True) for e in events if e["type"] == "task-finished" and e["status"] == "lost")
    pilot_log = daemon.cli("logs", pilot).stdout
    assert "resuming after the daemon crashed: 4 task(s) finished, 2 lost" in pilot_log
    db = sqlite3.connect(daemon.state_dir / "state.db")
    for task in ("slow-0", "slow-1"):
        # Task events are committed in groups every few ms: a start the crash beat to the
        # database is found from the attempt's output in the task dir instead.
        assert (task, 1) in lost or f"{task} #1" in pilot_log
        rows = db.execute("SELECT attempt, status FROM attempts WHERE pilot = ? AND task = ? ORDER BY attempt",
                          (pilot, task)).fetchall()
        assert rows[-1] == (2, "ok") and all(status == "lost" for _, status in rows[:-1])
    info = json.loads(daemon.cli("status", "--json").stdout)["daemon"]
    assert info["crashes"] == 1


def test_torn_last_result_is_survived(daemon: DaemonProcess, tmp_path: Path) -> None:
    pilot, workdir = _start_and_crash(daemon, write_spec(tmp_path, CRASHY))
    results = workdir / "results.jsonl"
    with open(results, "ab") as f:  # a record cut short by the crash
        f.write(b'{"task":"slow-0","group":"slow","params":{"i":1},"status":"ok","exit_co')
    (workdir / "pilot.log").open("ab").write(b"2026-01-01 00:00:00 INFO  half a li")
    daemon.start()
    daemon.wait_state(pilot, {"done"}, timeout=30)
    final = read_results(results)
    assert len(final) == 6 and {r.status for r in final} == {"ok"}
    assert all(line.startswith(b"{") for line in results.read_bytes().splitlines())
    assert "half a li\n" in (workdir / "pilot.log").read_text()


def test_sigterm_drains_and_the_pilot_resumes_on_restart(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, """
name = "drained"
[resources]
cores = 1
[[app.groups]]
name = "d"
shell = true
command = "sleep 1; echo done-{i}"
[app.groups.grid]
i = [1, 2, 3]
""")
    pilot = daemon.submit(spec)
    wait_for(lambda: daemon.status(pilot)["progress"]["running"] == 1, what="a running task")
    workdir = Path(daemon.status(pilot)["workdir"])
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP" in daemon.output(), 10, "the daemon to log the SIGHUP")
    assert daemon.status(pilot)["state"] == "running", "SIGHUP does not stop the daemon"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(20) == 0
    assert not daemon.socket.exists(), "a clean stop removes the socket"
    drained = [r.status for r in read_results(workdir / "results.jsonl")]
    assert drained.count("ok") >= 1 and drained.count("cancelled") >= 1, "running tasks finish; queued ones wait"
    assert len(drained) == 3

    daemon.start()
    summary = daemon.wait_state(pilot, {"done"})
    assert summary["run"] == 2 and summary["crashes"] == 0
    assert summary["progress"]["done"] == 3
    latest = {r.task: r for r in read_results(workdir / "results.jsonl")}
    assert {t: r.attempts for t, r in latest.items()} == {"d-0": 1, "d-1": 1, "d-2": 1}
    assert "shutting down" in daemon.output()


def test_second_signal_forces(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(extra_args=["--shutdown-timeout", "60"])
    d.start()
    pilot = d.submit(write_spec(tmp_path, """
name = "stuck"
[pilot]
grace = "30s"
[[app.groups]]
name = "s"
shell = true
commands = ["trap '' TERM; sleep 60"]
"""))
    wait_for(lambda: d.status(pilot)["progress"]["running"] == 1, what="a running task")
    workdir = Path(d.status(pilot)["workdir"])
    d.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert d.proc is not None and d.proc.poll() is None, "the first signal waits for the drain"
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(15) == 0
    assert time.monotonic() - started < 10
    wait_for(lambda: not _orphans(workdir), 5, "the task to be killed")


def test_shutdown_request_and_state_survives_a_clean_restart(daemon: DaemonProcess, tmp_path: Path) -> None:
    pilot = daemon.submit(write_spec(tmp_path, 'name = "one"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'))
    daemon.wait_state(pilot, {"done"})
    assert "stopping" in daemon.cli("shutdown").stdout
    assert daemon.wait_exit(20) == 0
    daemon.start()
    summary = daemon.status(pilot)
    assert summary["state"] == "done" and summary["progress"]["done"] == 1 and summary["run"] == 1


def test_detach_daemonises_and_logs_to_the_state_dir(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d: DaemonProcess = daemon_factory()
    result = d.cli("daemon", "--detach", "--shutdown-timeout", "3")
    assert "pilotkit daemon running (pid" in result.stdout
    pid = int(result.stdout.split("(pid ")[1].split(")")[0])
    try:
        proc = psutil.Process(pid)
        assert proc.ppid() == 1 or proc.ppid() != os.getpid(), "not our child any more"
        assert os.getsid(pid) == pid, "a session of its own: no terminal's SIGHUP reaches it"
        assert json.loads(d.cli("status", "--json").stdout)["daemon"]["pid"] == pid
        assert "ready" in (d.state_dir / "daemon.log").read_text()
        d.cli("shutdown")
        psutil.wait_procs([proc], timeout=20)
        assert not proc.is_running()
        assert "stopped" in (d.state_dir / "daemon.log").read_text()
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)
