"""Ctrl-C on a scan far bigger than memory should hold: every task not started yet is
cancelled and written to the results, once, without the pilot making them all at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from .conftest import spec_file

TASKS = 300_000

SPEC = f"""name = "big"
[resources]
cores = 2
[[app.groups]]
name = "g"
command = "sleep 30"
[app.groups.grid]
a = [{", ".join(map(str, range(600)))}]
b = [{", ".join(map(str, range(TASKS // 600)))}]
"""


def test_ctrl_c_on_a_huge_scan_cancels_every_task_once_in_little_memory(
    pilotkit_cmd: list[str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    workdir = tmp_path / "run"
    proc = subprocess.Popen(
        [*pilotkit_cmd, "run", "--quiet", "--workdir", str(workdir), str(spec_file(tmp_path, SPEC))],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((workdir / "tasks").glob("*/attempt-1.out"))) < 2:
        # Whether it ended early, without reaping it (its resource use is read below).
        ended = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        assert ended is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130, stderr
    lines = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    ids = [r["task"] for r in lines]
    assert len(ids) == TASKS and len(set(ids)) == TASKS, "every task once"
    outcomes = [r["outcome"] for r in lines]
    assert outcomes.count("cancelled") >= TASKS - 2 and set(outcomes) <= {"cancelled", "killed"}
    # Made a chunk at a time and never kept: a few tens of MiB, not the ~200 MiB that
    # 300,000 tasks in memory at once take.
    assert usage.ru_maxrss < 120 * 1024, f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB"
    print(f"{TASKS} tasks cancelled in {took:.1f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
