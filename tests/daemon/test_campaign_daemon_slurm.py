"""A campaign the daemon owns on the project's real 3-node Slurm cluster, the daemon
killed with -9 in the middle and started again, then one of the restarted daemon's
allocations ``scancel``led from outside: nothing lost, no task run twice at once, the
tasks that ended ok not run again, those that ended ok after the daemon's last word
included."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProcess, wait_for

pytestmark = pytest.mark.slurm

TASKS = 18

SPEC = f"""name = "slurm-daemon-campaign"
[provider]
type = "slurm"
[resources]
nodes = 3
cores = 1
walltime = "1m"
[pilot]
drain_margin = "40s"
grace = "2s"
heartbeat = "0.5s"
heartbeat_timeout = "3s"
[campaign]
max_allocations = 6
parallel = 1
idle_timeout = "2s"
[[app.groups]]
name = "g"
shell = true
command = "echo start $(date +%s.%N); sleep 1; echo end $(date +%s.%N)"
[app.groups.grid]
i = {list(range(TASKS))}
"""


def _status(d: DaemonProcess) -> dict[str, Any] | None:
    out = d.cli("status", "slurm-daemon-campaign", "--json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _intervals(path: Path) -> tuple[float, float | None]:
    start = end = None
    for line in path.read_text().splitlines():
        word, _, value = line.partition(" ")
        if word == "start":
            start = float(value)
        elif word == "end":
            end = float(value)
    assert start is not None, path
    return start, end


def test_kill9_of_the_daemon_then_scancel_mid_slurm_campaign(
    slurm: dict[str, str], daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    d = daemon_factory()
    d.start()
    spec = tmp_path / "campaign.toml"
    spec.write_text(SPEC)
    campaign_id = d.submit(spec)
    wait_for(lambda: (s := _status(d)) and s["done"] >= 4 and s["running"] >= 1, 90, "tasks done on Slurm")
    before = _status(d)
    assert before is not None
    workdir = Path(before["workdir"])
    d.kill9()
    d.start()
    earlier = {a["name"] for a in before["allocations"]}

    def running_after_restart() -> dict[str, Any] | None:
        s = _status(d)
        new = [a for a in (s or {}).get("allocations", []) if a["name"] not in earlier]
        return next((a for a in new if a["state"] == "running" and a["job_id"] and a["ok"] >= 1), None)

    victim = wait_for(running_after_restart, 90, "an allocation of the restarted daemon running tasks")
    subprocess.run(["scancel", victim["job_id"]], check=True)  # from outside
    final = wait_for(lambda: (s := _status(d)) and s["state"] not in ("running", "paused") and s, 150,
                     "the campaign to end")  # fmt: skip
    assert final["state"] == "done" and final["id"] == campaign_id, final
    results = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["task"] for r in results) == sorted(f"g-{i:02d}" for i in range(TASKS)), "one line per task"
    assert {r["outcome"] for r in results} == {"ok"}
    for task_dir in (workdir / "tasks").iterdir():  # attempts of a task never overlap
        spans = sorted(_intervals(p) for p in task_dir.glob("attempt-*.out") if p.read_text().strip())
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end is None or start >= end, (task_dir.name, spans)
    names = [a["name"] for a in final["allocations"]]
    assert len(names) == len(set(names)) >= 2
    (cancelled,) = [a for a in final["allocations"] if a["name"] == victim["name"]]
    assert "cancelled from outside" in (cancelled["why"] or ""), cancelled
    assert names.index(victim["name"]) < len(names) - 1, "replaced"
    ended_ok = {r["task"]: r for r in results}
    for task_dir in (workdir / "tasks").iterdir():  # every task ran to its end once
        outputs = "".join(p.read_text() for p in task_dir.glob("attempt-*.out"))
        assert outputs.count("end ") == 1, (task_dir.name, outputs, ended_ok.get(task_dir.name))
    print(d.cli("status", "slurm-daemon-campaign").stdout)  # the figures, with -s


def test_tasks_that_end_ok_after_the_daemons_last_word_are_not_run_again(
    slurm: dict[str, str], daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """The daemon hangs (SIGSTOP) while tasks run, so the results of the tasks that end
    then reach only the agents' journals (and a socket nobody reads), and is killed with
    -9 before it reads them. The restarted daemon waits for the old job to end, takes
    those results from the journals, and does not run the tasks again."""
    d = daemon_factory()
    d.start()
    spec = tmp_path / "campaign.toml"
    spec.write_text(SPEC)
    d.submit(spec)
    wait_for(lambda: (s := _status(d)) and s["done"] >= 3 and s["running"] >= 1, 90, "tasks running on Slurm")
    os.kill(d.pid, signal.SIGSTOP)
    time.sleep(2.0)  # the running tasks (1 s) end; under the agents' 3 s of patience
    d.kill9()
    d.start()
    final = wait_for(lambda: (s := _status(d)) and s["state"] not in ("running", "paused") and s, 150,
                     "the campaign to end")  # fmt: skip
    assert final["state"] == "done", final
    workdir = Path(final["workdir"])
    results = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["task"] for r in results) == sorted(f"g-{i:02d}" for i in range(TASKS)), "one line per task"
    assert {r["outcome"] for r in results} == {"ok"}
    for task_dir in (workdir / "tasks").iterdir():  # every task ran to its end once
        outputs = "".join(p.read_text() for p in task_dir.glob("attempt-*.out"))
        assert outputs.count("end ") == 1, (task_dir.name, outputs)
    recorded = [line for line in d.output().splitlines() if "after the earlier run's last word" in line]
    assert recorded, d.output()
