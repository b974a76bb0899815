"""The pid records of running attempts (``pids/<task>.<attempt>``): one file per running
attempt, renamed from attempt to attempt rather than made and removed, and still found
by a restart after the runner is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pilotkit.daemon.workdir import kill_orphans, read_pid_records, recorded_attempts
from pilotkit.vocab import FREE_RECORD

ROOT = str(Path(__file__).resolve().parents[1])

RUNNER = """
import asyncio, os, sys
sys.path.insert(0, {root!r})
from pilotkit.spawn import ProcessRunner
from pilotkit.vocab import FREE_RECORD

async def main():
    runner = ProcessRunner(free_record=FREE_RECORD)
    d = {workdir!r}
    pids = os.path.join(d, "pids")
    for i, argv in enumerate({commands!r}):
        done = asyncio.Event()
        record = os.path.join(pids, f"t-{{i}}.1")
        pid = runner.spawn(argv, cwd=d, env=None, stdout=d + f"/out{{i}}", stderr=d + f"/out{{i}}",
                           record=record, on_exit=lambda pid, status: done.set())
        with open(record) as f:
            print("running", os.path.basename(record), f.read().split()[0] == str(pid), flush=True)
        print("files", sorted(os.listdir(pids)) == sorted([f"t-{{i}}.1", *(n for n in os.listdir(pids) if n.startswith(FREE_RECORD))]), flush=True)
        await done.wait()
        inodes = {{os.stat(os.path.join(pids, n)).st_ino for n in os.listdir(pids)}}
        print("ended", len(os.listdir(pids)), len(inodes), flush=True)
    runner.close()
    print("closed", os.listdir(pids), flush=True)

asyncio.run(main())
"""


def _runner(workdir: Path, commands: list[list[str]]) -> str:
    return RUNNER.format(root=ROOT, workdir=str(workdir), commands=commands)


def test_one_record_file_serves_attempt_after_attempt(tmp_path: Path) -> None:
    """Each running attempt has its named record (with its pid); after it ends its file
    is a free one, used again by the next attempt (the same inode: no file made or
    removed per attempt); the runner removes its free files when it closes."""
    code = _runner(tmp_path, [["true"], ["sh", "-c", "sleep 0.1"], ["true"]])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[:9] == [
        "running t-0.1 True", "files True", "ended 1 1",
        "running t-1.1 True", "files True", "ended 1 1",
        "running t-2.1 True", "files True", "ended 1 1",
    ]  # fmt: skip
    assert lines[9] == "closed []"


def test_a_killed_runners_records_are_found_and_its_tasks_killed(tmp_path: Path) -> None:
    """A runner killed with -9 while its second attempt runs (in the first one's record
    file, renamed): the restart counts the running attempt, and ``kill_orphans`` kills
    the running task and removes its record."""
    code = _runner(tmp_path, [["true"], ["sleep", "300"]])
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline().strip() for _ in range(4)]
        assert seen == ["running t-0.1 True", "files True", "ended 1 1", "running t-1.1 True"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sleeper = int((tmp_path / "pids" / "t-1.1").read_text().split()[0])
    try:
        assert _alive(sleeper), "the orphan runs on"
        assert os.listdir(tmp_path / "pids") == ["t-1.1"]
        assert recorded_attempts(tmp_path) == {"t-1": 1}
        assert len(read_pid_records(tmp_path)) == 1
        assert kill_orphans(tmp_path) >= 1
        deadline = time.monotonic() + 5
        while _alive(sleeper) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(sleeper), "the orphaned task still runs"
        assert os.listdir(tmp_path / "pids") == []
    finally:
        if _alive(sleeper):
            os.kill(sleeper, signal.SIGKILL)


def test_free_records_are_read_for_killing_not_counted_as_attempts(tmp_path: Path) -> None:
    """A free record file of a dead runner (an ended attempt's record, or a running one's
    whose rename a crash cut short) is no running attempt, but its processes are killed
    and the file removed."""
    pids = tmp_path / "pids"
    pids.mkdir()
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        started = Path(f"/proc/{sleeper.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[19].decode()
        (pids / f"{FREE_RECORD}1-2-ab-1").write_text(f"{sleeper.pid} {started} 1.2.ab:0:00   \n")
        (pids / "g-1.2").write_text("999999999 None 1.2.ab:1:00\n")
        assert recorded_attempts(tmp_path) == {"g-1": 2}
        assert len(read_pid_records(tmp_path)) == 2
        assert kill_orphans(tmp_path) == 1
        assert sleeper.wait(5) == -signal.SIGKILL
        assert os.listdir(pids) == []
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
