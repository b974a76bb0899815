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
    log = tmp_path / "stderr"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*pilotkit_cmd, "run", "--quiet", "--workdir", str(workdir), str(spec_file(tmp_path, SPEC))],
            env=cli_env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((workdir / "tasks").glob("*/attempt-1.out"))) < 2:
        # Whether it ended early, without reaping it (its resource use is read below).
        ended = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        assert ended is None, log.read_text()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    peak = 0  # the pilot's own peak RSS (VmHWM: only ever grows), read until it exits
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        peak = max(peak, _vmhwm_kib(proc.pid))
        time.sleep(0.02)
    took = time.monotonic() - started
    proc.wait()
    assert proc.returncode == 130, log.read_text()
    lines = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    ids = [r["task"] for r in lines]
    assert len(ids) == TASKS and len(set(ids)) == TASKS, "every task once"
    outcomes = [r["outcome"] for r in lines]
    assert outcomes.count("cancelled") >= TASKS - 2 and set(outcomes) <= {"cancelled", "killed"}
    # Made a chunk at a time and never kept: a few tens of MiB, not the ~200 MiB that
    # 300,000 tasks in memory at once take.
    assert 0 < peak < 120 * 1024, f"peak RSS {peak / 1024:.0f} MiB"
    print(f"{TASKS} tasks cancelled in {took:.1f} s, peak RSS {peak / 1024:.0f} MiB")


def _vmhwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
