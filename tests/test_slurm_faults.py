"""Pilots that outlive what goes wrong, on the project's real 3-node Slurm cluster:
Ctrl-C while the job is still queued, a node's slurmd dying mid-scan, allocation-bounded
cores."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

from pilotkit.events import AllocationClaimed, NodeLost, NodeReady, TaskStarted
from pilotkit.pilot import Pilot
from pilotkit.states import PilotState
from pilotkit.testing.plugin import RunSpec
from pilotkit.testing.slurm import testcluster_script as cluster_script

from .test_slurm import spec

pytestmark = pytest.mark.slurm

DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def squeue_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--format=%T"],
        capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


def wait_state(job_id: str, states: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = squeue_state(job_id)
    while state not in states and time.monotonic() < deadline:
        time.sleep(0.2)
        state = squeue_state(job_id)
    return state


def start_slurmd(node: str, env: dict[str, str]) -> None:
    """Start ``node``'s slurmd again the way ``testcluster up`` does, and wait until the
    node is back in service (ReturnToService=2)."""
    conf = env["SLURM_CONF"]
    subprocess.run(
        ["nsenter", f"--net=/run/netns/{node}", "unshare", "--uts", "env", "-i", f"PATH={DAEMON_PATH}",
         f"SLURM_CONF={conf}", "sh", "-c", 'hostname "$1" && exec slurmd -f "$2" -N "$1"', "sh", node, conf],
        check=True, capture_output=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["sinfo", "--noheader", "--nodes", node, "--format=%T"], capture_output=True, text=True
        ).stdout.strip()
        if state in ("idle", "mixed", "allocated"):
            return
        time.sleep(0.5)
    subprocess.run([str(cluster_script()), "status"], check=True)


def test_ctrl_c_while_pending_cancels_the_job(slurm: dict[str, str], tmp_path: Path) -> None:
    # Every core of the cluster is taken, so the pilot's job stays queued.
    blocker = subprocess.run(
        ["sbatch", "--parsable", "--nodes=3", "--exclusive", "--time=5", "--output=/dev/null",
         "--wrap", "sleep 300"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip().split(";")[0]  # fmt: skip
    try:
        path = tmp_path / "pilot.toml"
        path.write_text(spec(3, 0.1))
        proc = subprocess.Popen(
            [sys.executable, "-m", "pilotkit.cli.main", "run", "--workdir", str(tmp_path / "w"), str(path)],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        job = ""
        for line in proc.stderr:
            if "submitted Slurm job" in line:
                job = line.rsplit(" ", 1)[-1].strip()
                break
        assert job, "the pilot submitted its job"
        assert wait_state(job, {"PENDING"}, 10) == "PENDING"
        shown = subprocess.run(
            ["squeue", "--noheader", f"--jobs={job}", "--format=%j|%k"], capture_output=True, text=True
        ).stdout.strip()
        assert shown.startswith("pk-slurm-test|pilotkit pilot slurm-test-"), "squeue shows the pilot"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert squeue_state(job) == "CANCELLED", "Ctrl-C while queued cancels the job"
    finally:
        subprocess.run(["scancel", blocker], capture_output=True)
    # With the cluster free again, the cancelled job never starts.
    time.sleep(3)
    assert squeue_state(job) == "CANCELLED"
    assert not (tmp_path / "w" / ".pilot-token").exists(), "the token file is removed"


async def test_slurmd_dying_mid_scan_costs_no_task(slurm: dict[str, str], run_spec: RunSpec) -> None:
    """kill -9 node2's slurmd mid-scan: Slurm marks the node down after SlurmdTimeout
    (30 s) and, the job having --no-kill, removes it from the job instead of killing the
    job; the scan goes on, and every task runs once."""
    killed: list[float] = []
    seen_down: list[float] = []
    pidfile = Path(slurm["PILOTKIT_TESTCLUSTER_DIR"]) / "run" / "slurmd.node2.pid"

    async def watch_node2() -> None:
        while True:
            out = await asyncio.to_thread(
                subprocess.run, ["sinfo", "--noheader", "--nodes", "node2", "--format=%T"],
                capture_output=True, text=True,
            )  # fmt: skip
            if "down" in out.stdout and not seen_down:
                seen_down.append(time.monotonic())
            await asyncio.sleep(1.0)

    def on_pilot(pilot: Pilot) -> None:
        def watch(event: Any) -> None:
            if isinstance(event, TaskStarted) and event.node == "node2" and not killed:
                killed.append(time.monotonic())
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)

        pilot.bus.subscribe(watch)

    watcher = asyncio.ensure_future(watch_node2())
    try:
        run = await run_spec(spec(72, 6.0), on_pilot=on_pilot)
        ended = time.monotonic()
    finally:
        watcher.cancel()
        await asyncio.to_thread(start_slurmd, "node2", slurm)
    assert killed, "node2's slurmd was killed while a task ran there"
    assert seen_down and seen_down[0] < ended, "Slurm declared node2 down while the pilot ran"
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    counts = Counter(r.task for r in results)
    assert len(counts) == 72 and set(counts.values()) == {1}, "every task exactly once"
    assert {r.status for r in results} == {"ok"}, "no task lost"
    print(
        f"slurmd killed: node2 down after {seen_down[0] - killed[0]:.0f}s; the pilot went on {ended - seen_down[0]:.0f}s"
    )


async def test_one_core_per_node_runs_one_task_per_node(slurm: dict[str, str], run_spec: RunSpec) -> None:
    text = spec(6, 2.0).replace("nodes = 3\n", "nodes = 3\ncores = 1\n")
    run = await run_spec(text)
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    assert len(results) == 6
    for node in ("node1", "node2", "node3"):
        spans = sorted((r.start, r.end) for r in results if r.node == node)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 0.05, f"two tasks at once on {node}, which has one core in the job"


async def test_the_default_callback_address_routes_to_the_nodes(
    slurm: dict[str, str], run_spec: RunSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This host's name is 'localhost' here: the default is the address of the interface
    that routes to the Slurm controller (which the nodes reach too)."""
    monkeypatch.delenv("PILOTKIT_CALLBACK_HOST")
    run = await run_spec(spec(3, 0.1))
    assert run.state is PilotState.DONE, run.reason
    assert len(run.results()) == 3


async def test_an_unreachable_callback_address_fails_in_seconds(
    slurm: dict[str, str], run_spec: RunSpec
) -> None:
    t0 = time.monotonic()
    run = await run_spec(spec(3, 0.1, extra='callback_host = "127.0.0.1"'))
    elapsed = time.monotonic() - t0
    assert run.state is PilotState.FAILED
    reason = run.reason or ""
    assert "\n" not in reason and "127.0.0.1:" in reason and "cannot reach the pilot" in reason, reason
    assert elapsed < 60, f"failed after {elapsed:.0f}s"
    print(f"unreachable callback address: failed after {elapsed:.1f}s: {reason}")


PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]


def _hangup_default() -> None:
    """SIGHUP as a login session's processes get it: a test suite run under ``nohup``
    would hand its SIG_IGN on, and ``pilotkit run`` rightly keeps an ignored SIGHUP ignored."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _attach(workdir: Path) -> float:
    """``pilotkit attach WORKDIR`` to the end; seconds from its start to the pilot
    re-attached (its agents rejoined)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [*PILOTKIT, "attach", "--json", str(workdir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    reattached = None
    for line in proc.stdout:
        event = json.loads(line)
        if reattached is None and event["type"] == "pilot-state" and event["state"] == "deploying":
            reattached = time.monotonic() - started
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert reattached is not None
    return reattached


def _every_task_once(workdir: Path, tasks: int) -> None:
    """Each task's last result is ``ok``, recorded ``ok`` once, and it ran once."""
    lines = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    latest = {line["task"]: line for line in lines}
    assert len(latest) == tasks and {r["status"] for r in latest.values()} == {"ok"}, latest
    ok = Counter(line["task"] for line in lines if line["status"] == "ok")
    assert set(ok.values()) == {1}, f"a result recorded twice: {ok}"
    ran = Counter(p.parent.name for p in (workdir / "tasks").glob("*/attempt-*.out") if p.read_text().strip())
    assert len(ran) == tasks and set(ran.values()) == {1}, f"a task ran twice: {ran}"


def test_sighup_of_pilotkit_run_detaches_and_attach_gets_every_result(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    """The SSH session to the login node drops: stderr's reader is gone, then SIGHUP.
    The pilot goes on in its allocation; `pilotkit attach` comes back to it."""
    path = tmp_path / "pilot.toml"
    path.write_text(spec(18, 5.0))
    workdir = tmp_path / "w"
    proc = subprocess.Popen(
        [*PILOTKIT, "run", "--progress-interval", "1s", "--workdir", str(workdir), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=_hangup_default,
    )  # fmt: skip
    results = workdir / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the scan was still running"
    job = next(workdir.glob("slurm-*.out")).stem.split("-", 1)[1]
    try:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
        time.sleep(2.5)  # progress lines are written to the closed pipe before SIGHUP comes
        assert proc.poll() is None, "a write to the closed stderr does not end the pilot"
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=60) == 4, "detached"
        assert squeue_state(job) == "RUNNING", "the pilot goes on in its allocation"
        assert json.loads((workdir / "attach.json").read_text())["detached"]
        time.sleep(2.5)  # tasks end while no client is attached
        reattached = _attach(workdir)
        _every_task_once(workdir, 18)
        assert not (workdir / ".pilot-token").exists(), "the token file is removed"
        assert wait_state(job, {"COMPLETED", "CANCELLED"}, 30) in ("COMPLETED", "CANCELLED")
        print(f"SIGHUP then attach: re-attached {reattached:.1f}s after `pilotkit attach` started; 0 lost, 0 run twice")
    finally:  # a failed check leaves no pilot job holding the shared cluster
        subprocess.run(["scancel", job], capture_output=True)


def test_kill_9_of_pilotkit_run_loses_no_finished_result(slurm: dict[str, str], tmp_path: Path) -> None:
    """Every task whose end was announced is on disk; the pilot goes on in its
    allocation, and `pilotkit attach` gets every other result, none twice."""
    path = tmp_path / "pilot.toml"
    path.write_text(spec(18, 1.0))
    workdir = tmp_path / "w"
    proc = subprocess.Popen(
        [*PILOTKIT, "run", "--json", "--workdir", str(workdir), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    announced: set[str] = set()
    job = ""
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "allocation":
            job = event["allocation"]["job_id"]
        if event["type"] == "task-finished" and event.get("final", True):
            announced.add(event["task"])
            if len(announced) >= 5:
                proc.kill()
                break
    proc.wait(timeout=10)
    assert len(announced) >= 5 and job
    recorded = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert announced <= {r["task"] for r in recorded}, "every announced result is on disk"
    assert len(recorded) == len({r["task"] for r in recorded})
    assert squeue_state(job) == "RUNNING", "the pilot goes on in its allocation"
    reattached = _attach(workdir)
    _every_task_once(workdir, 18)
    assert wait_state(job, {"COMPLETED", "CANCELLED", "FAILED"}, 60) in ("COMPLETED", "CANCELLED", "FAILED")
    print(f"kill -9 then attach: re-attached {reattached:.1f}s after `pilotkit attach` started; 0 lost, 0 run twice")


def test_run_detach_then_attach_takes_over(slurm: dict[str, str], tmp_path: Path) -> None:
    """`pilotkit run --detach` runs the pilot in the background with no terminal; `pilotkit
    attach` asks that client to let go and follows the pilot to its end."""
    path = tmp_path / "pilot.toml"
    path.write_text(spec(18, 5.0))  # long enough to be running still when attach comes, under load too
    workdir = tmp_path / "w"
    started = subprocess.run(
        [*PILOTKIT, "run", "--detach", "--workdir", str(workdir), str(path)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert f"pilotkit attach {workdir}" in started.stdout
    deadline = time.monotonic() + 60
    results = workdir / "results.jsonl"
    while time.monotonic() < deadline:  # the scan runs: every agent connected
        if results.exists() and results.read_text().strip() and (workdir / "attach.json").exists():
            break
        time.sleep(0.2)
    client = json.loads((workdir / "attach.json").read_text())["client_pid"]
    _attach(workdir)
    assert not psutil.pid_exists(client) or psutil.Process(client).status() == psutil.STATUS_ZOMBIE
    _every_task_once(workdir, 18)
    assert "detached from pilot" in (workdir / "run.log").read_text()


def _sleeps_in(netns: str, marker: str) -> list[int]:
    """Pids of ``sleep <marker>`` processes in the network namespace ``netns`` (a node)."""
    inode = os.stat(f"/run/netns/{netns}").st_ino
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                if os.stat(entry / "ns" / "net").st_ino == inode:
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


async def test_a_cut_off_node_stops_its_tasks_so_none_runs_twice(
    slurm: dict[str, str], run_spec: RunSpec
) -> None:
    """node2's network is cut while it runs tasks: the pilot declares it lost and runs its
    tasks elsewhere, and node2's agent, hearing nothing from the pilot, stops them there."""
    marker = "10.25"
    cut: list[float] = []
    lost: list[float] = []
    rerun: list[float] = []
    node2_tasks: set[str] = set()
    left_on_node2: list[list[int]] = []

    async def check_node2() -> None:
        await asyncio.sleep(4.0)  # heartbeat_timeout (3 s) and a second
        left_on_node2.append(await asyncio.to_thread(_sleeps_in, "node2", marker))

    def on_pilot(pilot: Pilot) -> None:
        def watch(event: Any) -> None:
            if isinstance(event, TaskStarted) and event.node == "node2":
                node2_tasks.add(event.task)
                if not cut:
                    cut.append(time.monotonic())
                    subprocess.run(["ip", "link", "set", "ptkv2", "down"], check=True)
            elif isinstance(event, TaskStarted) and event.task in node2_tasks and not rerun:
                rerun.append(time.monotonic())
            elif isinstance(event, NodeLost) and not lost:
                lost.append(time.monotonic())
                checks.append(asyncio.ensure_future(check_node2()))

        pilot.bus.subscribe(watch)

    checks: list[asyncio.Future[None]] = []
    try:
        run = await run_spec(spec(6, float(marker)), on_pilot=on_pilot)
        await asyncio.gather(*checks)
    finally:
        subprocess.run(["ip", "link", "set", "ptkv2", "up"], check=True)
    assert cut and lost and rerun, "node2 was cut off, declared lost, and its tasks ran again"
    assert left_on_node2 == [[]], "node2's agent stopped its tasks once cut off"
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    counts = Counter(r.task for r in results)
    assert len(counts) == 6 and set(counts.values()) == {1} and {r.status for r in results} == {"ok"}
    print(
        f"node loss: declared {lost[0] - cut[0]:.1f}s after the cut; its task ran again {rerun[0] - lost[0]:.1f}s later"
    )


async def test_a_lost_node_is_replaced_when_asked(slurm: dict[str, str], run_spec: RunSpec) -> None:
    """replace_lost_nodes: a 2-node pilot loses a node (its network cut); Slurm is asked
    for a replacement node, whose agent joins the pilot and runs tasks; every task once."""
    cut: list[str] = []
    lost: list[float] = []
    joined: list[tuple[str, float]] = []
    pilot_nodes: list[str] = []

    def on_pilot(pilot: Pilot) -> None:
        def watch(event: Any) -> None:
            if isinstance(event, AllocationClaimed):
                pilot_nodes.extend(event.allocation.nodes)
            elif isinstance(event, TaskStarted) and not cut and event.node == pilot_nodes[-1]:
                cut.append(event.node)
                subprocess.run(["ip", "link", "set", f"ptkv{event.node.removeprefix('node')}", "down"], check=True)
            elif isinstance(event, NodeLost) and not lost:
                lost.append(time.monotonic())
            elif isinstance(event, NodeReady) and pilot_nodes and event.node.name not in pilot_nodes:
                joined.append((event.node.name, time.monotonic()))

        pilot.bus.subscribe(watch)

    text = spec(12, 3.0, extra="replace_lost_nodes = true").replace("nodes = 3\n", "nodes = 2\n")
    try:
        run = await run_spec(text, on_pilot=on_pilot)
    finally:
        for node in cut:
            subprocess.run(["ip", "link", "set", f"ptkv{node.removeprefix('node')}", "up"], check=True)
    assert cut and lost and joined, (cut, lost, joined)
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    counts = Counter(r.task for r in results)
    assert len(counts) == 12 and set(counts.values()) == {1} and {r.status for r in results} == {"ok"}
    new = joined[0][0]
    assert new in {r.node for r in results}, "the replacement node ran tasks"
    print(f"node replaced: {new} joined {joined[0][1] - lost[0]:.1f}s after {cut[0]} was declared lost")


def test_attach_after_the_job_ended_records_its_results_and_runs_the_rest(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    """The job ends while no client is attached (here `scancel`): `pilotkit attach` records
    what its agents finished, from their journals, and runs the tasks left in a new job."""
    path = tmp_path / "pilot.toml"
    path.write_text(spec(12, 3.0))
    workdir = tmp_path / "w"
    proc = subprocess.Popen(
        [*PILOTKIT, "run", "--workdir", str(workdir), str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, preexec_fn=_hangup_default,
    )  # fmt: skip
    results = workdir / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 1:
            break
        time.sleep(0.2)
    job = next(workdir.glob("slurm-*.out")).stem.split("-", 1)[1]
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=60) == 4, "detached"
    time.sleep(4.0)  # a wave of tasks ends while no client is attached: only in the journals
    journaled = {json.loads(line)["result"]["task_id"] for f in (workdir / ".journal").glob("*.jsonl")
                 for line in f.read_text().splitlines() if line.strip()}  # fmt: skip
    recorded = {json.loads(line)["task"] for line in results.read_text().splitlines()}
    assert journaled - recorded, "some task finished while no client was attached"
    subprocess.run(["scancel", job], check=True, env={**os.environ, **slurm})
    assert wait_state(job, {"CANCELLED", "COMPLETED", "FAILED"}, 60)
    out = subprocess.run(
        [*PILOTKIT, "attach", str(workdir)], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"job {job} ended while no client was attached" in out.stderr
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    latest = {line["task"]: line for line in lines}
    assert len(latest) == 12 and {r["outcome"] for r in latest.values()} == {"ok"}, latest
    ok = Counter(line["task"] for line in lines if line["outcome"] == "ok")
    assert set(ok.values()) == {1}, f"a result recorded twice: {ok}"
    for task in journaled - recorded:  # finished in the old job: recorded from there, not run again
        assert latest[task]["attempts"] == 1, latest[task]


def _started(workdir: Path, names: list[str], proc: subprocess.Popen[Any], at_least: int, poll: float = 0.05) -> None:
    """Wait (up to 120 s, while ``proc`` runs) until ``at_least`` of these tasks have
    written their first line: they run."""
    outs = [workdir / "tasks" / name / "attempt-1.out" for name in names]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(1 for out in outs if out.exists() and out.stat().st_size) >= at_least:
            break
        time.sleep(poll)


def _journaled(workdir: Path) -> list[dict[str, Any]]:
    """Every result the node agents journaled, in ``workdir/.journal``."""
    return [json.loads(line)["result"] for f in (workdir / ".journal").glob("*.jsonl")
            for line in f.read_text().splitlines() if line.strip()]  # fmt: skip


def _until_journaled(workdir: Path, count: int, timeout: float) -> list[dict[str, Any]]:
    """The journaled results once there are ``count`` of them (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while len(_journaled(workdir)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return _journaled(workdir)


def _scancel_jobs(workdir: Path, slurm: dict[str, str]) -> None:
    """Leave the shared test cluster free whatever happened: cancel the run's jobs."""
    jobs = [p.stem.split("-", 1)[1] for p in workdir.glob("slurm-*.out")]
    if jobs:
        subprocess.run(["scancel", *jobs], env={**os.environ, **slurm}, check=False)


def test_attach_after_the_job_ended_with_nothing_left_submits_no_job(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    """Every task finished while no client was attached, then the job ended: `pilotkit
    attach` records the results from the journals, once, and submits no new job."""
    path = tmp_path / "pilot.toml"
    path.write_text(spec(6, 2.0))  # 6 slots on the 3 nodes: every task starts at once
    workdir = tmp_path / "w"
    proc = subprocess.Popen(
        [*PILOTKIT, "run", "--workdir", str(workdir), str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, preexec_fn=_hangup_default,
    )  # fmt: skip
    _started(workdir, [f"g-{i}" for i in range(6)], proc, 6, poll=0.1)  # each echoed: all started
    (job_file,) = workdir.glob("slurm-*.out")
    job = job_file.stem.split("-", 1)[1]
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=60) == 4, "detached"

    assert len({r["task_id"] for r in _until_journaled(workdir, 6, 30)}) == 6, "every task ended while no client was attached"
    subprocess.run(["scancel", job], check=True, env={**os.environ, **slurm})
    assert wait_state(job, {"CANCELLED", "COMPLETED", "FAILED"}, 60)
    out = subprocess.run(
        [*PILOTKIT, "attach", str(workdir)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "every task has its result" in out.stderr and "no new job is needed" in out.stderr
    assert [p.name for p in workdir.glob("slurm-*.out")] == [job_file.name], "no job was submitted"
    lines = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert sorted(line["task"] for line in lines) == [f"g-{i}" for i in range(6)], "each recorded once"
    assert {line["outcome"] for line in lines} == {"ok"} and {line["attempts"] for line in lines} == {1}


def test_tasks_keep_starting_while_no_client_is_attached(slurm: dict[str, str], tmp_path: Path) -> None:
    """SIGHUP with a whole wave still queued: the pilot hands the queued tasks to its node
    agents as it lets go, they start them as cores free, and `pilotkit attach` finds
    every task done, each once, in the same job."""
    path = tmp_path / "pilot.toml"
    path.write_text(spec(12, 2.0))  # two waves on the 3 nodes' 6 cores
    workdir = tmp_path / "w"
    proc = subprocess.Popen(
        [*PILOTKIT, "run", "--workdir", str(workdir), str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        preexec_fn=_hangup_default,
    )  # fmt: skip
    try:
        _started(workdir, [f"g-{i:02d}" for i in range(12)], proc, 6)  # the first wave runs
        (job_file,) = workdir.glob("slurm-*.out")
        hangup = time.time()
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 4, err

        ran = _until_journaled(workdir, 12, 30)
        away = [r for r in ran if r["start"] > hangup]  # the first wave holds every core until then
        assert len(ran) == 12 and away, "tasks started and ended while no client was attached"
        out = subprocess.run(
            [*PILOTKIT, "attach", str(workdir)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert [p.name for p in workdir.glob("slurm-*.out")] == [job_file.name], "the same job: no new one"
        lines = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
        assert sorted(line["task"] for line in lines) == [f"g-{i:02d}" for i in range(12)], "each recorded once"
        assert {line["outcome"] for line in lines} == {"ok"} and {line["attempts"] for line in lines} == {1}
        print(f"{len(away)} task(s) started while no client was attached")
    finally:
        if proc.poll() is None:
            proc.kill()
        _scancel_jobs(workdir, slurm)


def test_tasks_keep_starting_after_a_kill_9_of_pilotkit_run(slurm: dict[str, str], tmp_path: Path) -> None:
    """kill -9 of `pilotkit run` during the first wave of a scan bigger than the
    allocation: no chance to hand anything over, yet each node agent starts the tasks it
    holds on its standing lease as cores free; `pilotkit attach` then finds every task
    once, ``ok``, in the same job, and the token file is removed at the end."""
    path = tmp_path / "pilot.toml"
    path.write_text(spec(18, 2.0))  # three waves on the 3 nodes' 6 cores
    workdir = tmp_path / "w"
    proc = subprocess.Popen(
        [*PILOTKIT, "run", "--workdir", str(workdir), str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _started(workdir, [f"g-{i:02d}" for i in range(18)], proc, 6)  # the first wave runs
        assert proc.poll() is None, "the scan was still running"
        (job_file,) = workdir.glob("slurm-*.out")
        killed = time.time()
        proc.kill()
        proc.wait(timeout=10)

        ran = _until_journaled(workdir, 12, 40)
        away = sorted(r["start"] for r in ran if r["start"] > killed)
        assert len(away) >= 6, f"tasks started while no client was attached: {away}"
        # How long a core stayed free meanwhile: from an end on a node to the next start there.
        idle = max(start - max((r["end"] for r in ran if r["node"] == node and r["end"] <= start), default=start)
                   for node, start in ((r["node"], r["start"]) for r in ran if r["start"] > killed))  # fmt: skip
        reattached = _attach(workdir)
        assert [p.name for p in workdir.glob("slurm-*.out")] == [job_file.name], "the same job: no new one"
        _every_task_once(workdir, 18)
        lines = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
        assert sorted(line["task"] for line in lines) == [f"g-{i:02d}" for i in range(18)], "each recorded once"
        assert {line["attempts"] for line in lines} == {1}
        assert not (workdir / ".pilot-token").exists(), "the token file is removed"
        print(f"kill -9 of pilotkit run: the next task started {away[0] - killed:.1f}s after the kill (as the "
              f"first wave ended); {len(away)} started while no client was attached, each at most {idle:.3f}s "
              f"after a core freed on its node; re-attached {reattached:.1f}s after "
              "`pilotkit attach` started; 0 lost, 0 run twice")
    finally:
        if proc.poll() is None:
            proc.kill()
        _scancel_jobs(workdir, slurm)
