"""A campaign on the project's real 3-node Slurm cluster: allocations of one minute
(of which a 48 s drain margin leaves about 10 s for tasks), one of them ``scancel``led
from outside; nothing lost, nothing run twice. And a partition Slurm refuses: the
campaign backs off, pauses after ``pause_after`` failures in a row and says why."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pilotkit.campaign import Campaign
from pilotkit.cli.campaign import summary_lines
from pilotkit.plugins import Plugins
from pilotkit.spec import parse_spec

pytestmark = pytest.mark.slurm

SPEC = """name = "slurm-campaign"
[provider]
type = "slurm"
[resources]
nodes = 3
cores = 1
walltime = "1m"
{resources}
[pilot]
drain_margin = "48s"
grace = "2s"
heartbeat = "0.5s"
heartbeat_timeout = "3s"
[campaign]
max_allocations = 6
parallel = 1
idle_timeout = "2s"
{campaign}
[[app.groups]]
name = "g"
shell = true
command = "echo start {{i}}; sleep 1; echo end {{i}}"
[app.groups.grid]
i = {tasks}
"""


def make(tmp_path: Path, lines: list[str], *, tasks: int, resources: str = "", campaign: str = "") -> Campaign:
    text = SPEC.format(resources=resources, campaign=campaign, tasks=list(range(tasks)))
    path = tmp_path / "spec.toml"
    path.write_text(text)
    plugins = Plugins().load()
    return Campaign(parse_spec(text, path, plugins), plugins, workdir=tmp_path / "run",
                    say=lambda line: lines.append(f"{time.time():.1f} {line}"))  # fmt: skip


async def test_scancelled_allocation_is_replaced_nothing_lost_or_run_twice(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    lines: list[str] = []
    c = make(tmp_path, lines, tasks=45)
    run = asyncio.ensure_future(c.run())
    deadline = time.monotonic() + 60
    victim = None
    while victim is None:  # an allocation running tasks, a few of them done
        assert time.monotonic() < deadline, lines
        await asyncio.sleep(0.2)
        victim = next((r for r in c.records if r.state == "running" and r.job_id and r.ok >= 3), None)
    assert victim.job_id is not None
    subprocess.run(["scancel", victim.job_id], check=True)
    outcome = await asyncio.wait_for(run, 150)
    assert outcome.state == "done", "\n".join(lines)
    results = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["task"] for r in results) == sorted(f"g-{i:02d}" for i in range(45)), "one line per task"
    assert {r["outcome"] for r in results} == {"ok"} and {r["attempts"] for r in results} == {1}
    for r in results:  # every attempt's output: the task ran to its end exactly once
        outputs = "".join(p.read_text() for p in Path(r["stdout"]).parent.glob("attempt-*.out"))
        assert outputs.count("end ") == 1, (r["task"], outputs)
    allocations = outcome.status.allocations
    assert len(allocations) >= 2 and "cancelled from outside" in (victim.why or ""), "\n".join(lines)
    assert allocations[-1].name != victim.name, "replaced"
    assert {r["allocation"] for r in results} <= {a.name for a in allocations}
    assert all(a.job_id for a in allocations)
    print("\n".join([*lines, *summary_lines(outcome.status)]))  # the figures, with -s


async def test_refused_submissions_back_off_then_pause(slurm: dict[str, str], tmp_path: Path) -> None:
    lines: list[str] = []
    c = make(tmp_path, lines, tasks=3, resources='partition = "nosuchpartition"',
             campaign='submit_backoff = "0.2s"\npause_after = 3')  # fmt: skip
    outcome = await asyncio.wait_for(c.run(), 60)
    assert outcome.state == "failed" and outcome.exit_code == 1
    assert outcome.reason is not None
    assert outcome.reason.startswith("paused: 3 allocations in a row failed to start; the last: "), outcome.reason
    assert outcome.reason.endswith("; 3 task(s) not run")
    records = outcome.status.allocations
    assert len(records) == 3 and all(r.submit_failed for r in records)
    gaps = [b.submitted - a.ended for a, b in itertools.pairwise(records) if a.ended]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps  # exponential back-off
    assert sum(1 for line in lines if f"campaign {c.id}: paused: " in line) == 1, lines
    print("\n".join(lines))


CHECKPOINT_SPEC = """name = "slurm-checkpoint"
[provider]
type = "slurm"
[resources]
nodes = 1
cores = 1
walltime = "1m"
[pilot]
drain_margin = "50s"
grace = "2s"
heartbeat = "0.5s"
heartbeat_timeout = "3s"
[campaign]
max_allocations = 4
parallel = 1
idle_timeout = "2s"
[[app.groups]]
name = "long"
commands = ["{python} {script}"]
checkpoint = true
"""

STEPS = """import os, pathlib, signal, time
state = pathlib.Path("state")
n = int(state.read_text()) if state.exists() else 0
print("from", n, flush=True)
def save(*_):
    state.write_text(str(n))
    with open("signals", "a") as f:
        f.write(f"{os.environ.get('SLURM_JOB_ID')} {os.environ.get('SLURMD_NODENAME')} {n}\\n")
signal.signal(signal.SIGUSR1, save)
while n < 14:
    time.sleep(1)
    n += 1
print("done", n, flush=True)
"""


async def test_checkpoint_signal_reaches_a_task_on_a_batch_node(slurm: dict[str, str], tmp_path: Path) -> None:
    """A ``checkpoint = true`` task needing more than one allocation's ~10 s: at the drain
    point its node agent sends it SIGUSR1 (it saves its step), then SIGTERM; the next
    allocation starts it in the same directory, where it carries on."""
    import sys

    script = tmp_path / "steps.py"
    script.write_text(STEPS)
    text = CHECKPOINT_SPEC.format(python=sys.executable, script=script)
    path = tmp_path / "spec.toml"
    path.write_text(text)
    plugins = Plugins().load()
    lines: list[str] = []
    c = Campaign(parse_spec(text, path, plugins), plugins, workdir=tmp_path / "run",
                 say=lambda line: lines.append(f"{time.time():.1f} {line}"))  # fmt: skip
    outcome = await asyncio.wait_for(c.run(), 100)
    assert outcome.state == "done", "\n".join(lines)
    [result] = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert result["outcome"] == "ok" and result["attempts"] == 1, result
    tdir = tmp_path / "run" / "tasks" / result["task"]
    signals = (tdir / "signals").read_text().splitlines()
    jobs = {a.job_id for a in outcome.status.allocations}
    assert signals and all(line.split()[0] in jobs for line in signals), (signals, jobs, "\n".join(lines))
    outs = sorted(tdir.glob("attempt-*.out"))
    assert len(outs) >= 2, "it ran in more than one allocation"
    saved = int(signals[-1].split()[2])
    assert saved > 0 and outs[-1].read_text().startswith(f"from {saved}\n"), outs[-1].read_text()
    assert sum(a.preempted for a in outcome.status.allocations) == len(outs) - 1
    assert outcome.status.min_allocations == 2, "14 s of work kept, 10 s per allocation"
    print("\n".join([*lines, *signals, *summary_lines(outcome.status)]))  # the figures, with -s


def test_resume_keeps_what_ended_after_the_killed_runs_last_word(
    slurm: dict[str, str], tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """``pilotkit run`` of a Slurm campaign hangs (SIGSTOP) while tasks end, so their
    results reach only the node agents' journals, then is killed with -9. ``--resume``
    waits for the old job to end, records those tasks from the journals, and runs only
    the others: every task runs to its end once."""
    tasks = 12
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(resources="", campaign="", tasks=list(range(tasks))))
    workdir = tmp_path / "run"
    run = [*pilotkit_cmd, "run", "--workdir", str(workdir), str(spec)]
    env = {**cli_env, **slurm}
    proc = subprocess.Popen(run, env=env, stderr=subprocess.DEVNULL, cwd=tmp_path)
    results = workdir / "results.jsonl"
    deadline = time.monotonic() + 90
    while not (results.exists() and results.read_text().count("\n") >= 3):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGSTOP)
    time.sleep(2.0)  # the running tasks (1 s) end; under the agents' 3 s of patience
    proc.kill()
    proc.wait(timeout=10)
    again = subprocess.run([*run[: len(pilotkit_cmd) + 1], "--resume", *run[len(pilotkit_cmd) + 1 :]],
                           env=env, capture_output=True, text=True, timeout=150, cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "after the earlier run's last word: recorded, not run again" in again.stderr, again.stderr
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["task"] for r in lines) == sorted(f"g-{i:02d}" for i in range(tasks)), "one line per task"
    assert {r["outcome"] for r in lines} == {"ok"}
    for task_dir in (workdir / "tasks").iterdir():
        outputs = "".join(p.read_text() for p in task_dir.glob("attempt-*.out"))
        assert outputs.count("end ") == 1, (task_dir.name, outputs)
