"""Campaigns on the local provider: real processes, allocations of a few seconds.

Each allocation is a local pilot held by a process of its own (its job id), so one can
be ended from outside with ``kill``, as ``scancel`` ends a batch job."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pilotkit.campaign import Campaign
from pilotkit.plugins import Plugins
from pilotkit.results import read_results
from pilotkit.spec import parse_spec
from pilotkit.testing.needs import need_binary

HEADER = """name = "{name}"
[resources]
cores = 2
walltime = "{walltime}"
[pilot]
drain_margin = "{margin}"
grace = "1s"
[campaign]
max_allocations = {max_allocations}
parallel = {parallel}
idle_timeout = "1s"
"""


def spec_text(name: str, body: str, *, walltime: str = "4s", margin: str = "1s", max_allocations: int = 10,
              parallel: int = 1) -> str:  # fmt: skip
    return HEADER.format(name=name, walltime=walltime, margin=margin, max_allocations=max_allocations,
                         parallel=parallel) + body  # fmt: skip


def grid(n: int, command: str, extra: str = "") -> str:
    return (f'[[app.groups]]\nname = "t"\ncommand = "{command}"\n{extra}'
            f"[app.groups.grid]\ni = {list(range(n))}\n")  # fmt: skip


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins().load()


def campaign(tmp_path: Path, text: str, plugins: Plugins, lines: list[str]) -> Campaign:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    resolved = parse_spec(text, path, plugins)
    return Campaign(resolved, plugins, workdir=tmp_path / "run", say=lines.append)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def once_each(results: Path, n: int) -> dict[str, dict[str, object]]:
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    by_task = {line["task"]: line for line in lines}
    assert len(lines) == len(by_task) == n, "every task has exactly one result line"
    return by_task


def test_tasks_spanning_three_allocations_each_run_once(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """12 one-second tasks on 2 cores, allocations with 2 s to run tasks: at least three
    allocations; each task ends ok once, with attempts 1 (a task the drain point
    stopped goes back to the backlog without using a retry)."""
    spec = tmp_path / "big-scan.toml"
    spec.write_text(spec_text("big-scan", grid(12, "sleep 1"), walltime="3s"))
    out = subprocess.run([*pilotkit_cmd, "run", "--workdir", str(tmp_path / "run"), str(spec)], env=cli_env,
                         capture_output=True, text=True, timeout=90, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    by_task = once_each(tmp_path / "run" / "results.jsonl", 12)
    assert {line["outcome"] for line in by_task.values()} == {"ok"}
    assert {line["attempts"] for line in by_task.values()} == {1}
    status = subprocess.run([*pilotkit_cmd, "status", "big-scan", "--json"], env=cli_env, capture_output=True,
                            text=True, timeout=30)  # fmt: skip
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    names = [a["name"] for a in data["allocations"]]
    assert data["state"] == "done" and data["done"] == 12 and len(names) >= 3
    assert {line["allocation"] for line in by_task.values()} <= set(names)
    assert all(a["state"] == "ended" and a["job_id"] for a in data["allocations"])
    assert data["min_allocations"] >= 2 and all(a["idle_core_seconds"] >= 0 for a in data["allocations"])
    for name in names:  # progress lines name the allocations
        assert f"allocation {name}" in out.stderr
    text = subprocess.run([*pilotkit_cmd, "status", "big-scan"], env=cli_env, capture_output=True, text=True,
                          timeout=30).stdout  # fmt: skip
    assert "allocations:" in text and names[0] in text and "hand-over" in text
    by_id = subprocess.run([*pilotkit_cmd, "status", data["id"], "--json"], env=cli_env, capture_output=True,
                           text=True, timeout=30)  # fmt: skip
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout)["id"] == data["id"]


async def test_time_limit_that_does_not_fit_waits_for_the_next_allocation(tmp_path: Path, plugins: Plugins) -> None:
    """Tasks with time_limit = 2s never start in an allocation's last 2 s before its
    drain point: none is preempted, none times out."""
    lines: list[str] = []
    c = campaign(tmp_path, spec_text("fit", grid(8, "sleep 1", 'time_limit = "2s"\n'), walltime="5s"),
                 plugins, lines)  # fmt: skip
    outcome = await c.run()
    assert outcome.state == "done", lines
    results = read_results(c.results.path)
    assert len(results) == 8 and {r.outcome for r in results} == {"ok"} and {r.attempts for r in results} == {1}
    assert sum(a.preempted for a in outcome.status.allocations) == 0
    assert len(outcome.status.allocations) >= 2


async def test_allocation_killed_from_outside_is_replaced(tmp_path: Path, plugins: Plugins) -> None:
    lines: list[str] = []
    c = campaign(tmp_path, spec_text("lost", grid(10, "sleep 1"), walltime="30s"), plugins, lines)
    run = asyncio.ensure_future(c.run())
    while not (c.records and c.records[0].running and c.done >= 2):
        await asyncio.sleep(0.1)
    victim = c.records[0]
    assert victim.job_id is not None
    os.kill(int(victim.job_id), signal.SIGTERM)  # as scancel would end a batch job
    outcome = await asyncio.wait_for(run, 60)
    assert outcome.state == "done", lines
    results = read_results(c.results.path)
    assert len(results) == 10 and {r.outcome for r in results} == {"ok"}
    assert {r.attempts for r in results} == {1}, "an attempt lost with its allocation is not the task's failure"
    first, second = outcome.status.allocations[:2]
    assert "ended from outside (signal SIGTERM)" in (first.why or "")
    assert first.preempted >= 1 and second.ok >= 1
    assert any(r.allocation == second.name for r in results)


async def test_checkpointing_task_resumes_in_the_next_allocation(tmp_path: Path, plugins: Plugins) -> None:
    """A task needing more time than one allocation has: SIGUSR1 at each drain point
    (it saves its step), then SIGTERM; the next allocation starts it in the same
    directory, where it carries on from the saved step."""
    script = tmp_path / "steps.py"
    script.write_text(
        "import pathlib, signal, sys, time\n"
        "state = pathlib.Path('state')\n"
        "n = int(state.read_text()) if state.exists() else 0\n"
        "print('from', n, flush=True)\n"
        "def save(*_):\n"
        "    state.write_text(str(n))\n"
        "signal.signal(signal.SIGUSR1, save)\n"
        "while n < 12:\n"
        "    time.sleep(0.25)\n"
        "    n += 1\n"
        "print('done', n, flush=True)\n"
    )
    body = f'[[app.groups]]\nname = "long"\ncommands = ["{sys.executable} {script}"]\ncheckpoint = true\n'
    text = spec_text("ckpt", body, walltime="4s", margin="2s").replace('grace = "1s"', 'grace = "0.5s"')
    lines: list[str] = []
    c = campaign(tmp_path, text, plugins, lines)
    started = time.time()
    outcome = await c.run()
    assert outcome.state == "done", lines
    [result] = read_results(c.results.path)
    assert result.outcome == "ok" and result.attempts == 1
    tdir = tmp_path / "run" / "tasks" / result.task
    outs = sorted(tdir.glob("attempt-*.out"))
    assert len(outs) >= 2, "it ran in more than one allocation"
    assert outs[-1].read_text().startswith("from ") and not outs[-1].read_text().startswith("from 0")
    assert time.time() - started < 30


async def test_more_allocations_than_allowed_fails_saying_why(tmp_path: Path, plugins: Plugins) -> None:
    lines: list[str] = []
    c = campaign(tmp_path, spec_text("few", grid(12, "sleep 1"), walltime="3s", max_allocations=1), plugins, lines)
    outcome = await c.run()
    assert outcome.state == "failed" and outcome.exit_code == 1
    assert outcome.reason is not None and outcome.reason.startswith("needs more than max_allocations = 1:")
    by_task = once_each(c.results.path, 12)
    assert {line["outcome"] for line in by_task.values()} == {"ok", "cancelled"}
    assert len(outcome.status.allocations) == 1


async def test_allocations_that_fail_to_start_back_off_then_pause(tmp_path: Path, plugins: Plugins) -> None:
    """Every claim refused (the spec asks, after validation, for more cores than this
    machine has): 0.1 s, 0.2 s between tries, then one line saying the campaign paused."""
    lines: list[str] = []
    body = 'submit_backoff = "0.1s"\npause_after = 3\n' + grid(3, "true")
    c = campaign(tmp_path, spec_text("refused", body), plugins, lines)
    c.spec.spec.resources.cores = 100_000
    outcome = await asyncio.wait_for(c.run(), 30)
    assert outcome.state == "failed"
    assert outcome.reason is not None and outcome.reason.startswith(
        "paused: 3 allocations in a row failed to start; the last: resources.cores: 100000 cores asked for, "
        "this machine has "
    ), lines
    assert outcome.reason.endswith("; 3 task(s) not run")
    records = outcome.status.allocations
    assert [r.submit_failed for r in records] == [True, True, True]
    gaps = [b.submitted - (a.ended or 0.0) for a, b in itertools.pairwise(records)]
    assert 0.1 <= gaps[0] < gaps[1] and gaps[1] >= 0.2, gaps
    assert sum(1 for line in lines if line.startswith(f"campaign {c.id}: paused: ")) == 1
    once_each(c.results.path, 3)


def test_ctrl_c_cancels_the_campaign_every_task_reported_once(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = tmp_path / "stop.toml"
    spec.write_text(spec_text("stop", grid(12, "sh -c 'sleep 30; true' {task_dir}"), walltime="60s"))
    proc = subprocess.Popen([*pilotkit_cmd, "run", "--workdir", str(tmp_path / "run"), str(spec)], env=cli_env,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if "running tasks" in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 130, rest
    by_task = once_each(tmp_path / "run" / "results.jsonl", 12)
    assert {line["outcome"] for line in by_task.values()} == {"cancelled"}
    assert "campaign stop-" in rest and "cancelled: interrupted (SIGINT)" in rest
    ps = subprocess.run(["pgrep", "-f", str(tmp_path / "run" / "tasks")], capture_output=True, text=True)
    assert ps.stdout.strip() == "", "no task process is left"


def test_killed_campaign_resumes_with_its_results(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """``pilotkit run`` killed with -9 mid-campaign; ``--resume`` in the same workdir runs
    only the tasks without an ok result, and results.jsonl ends with one line per task."""
    need_binary("setpriv", "util-linux: a local allocation's holder dies with its campaign through it")
    spec = tmp_path / "again.toml"
    spec.write_text(spec_text("again", grid(10, "sleep 1"), walltime="30s"))
    run = [*pilotkit_cmd, "run", "--workdir", str(tmp_path / "run"), str(spec)]
    proc = subprocess.Popen(run, env=cli_env, stderr=subprocess.DEVNULL, cwd=tmp_path)
    results = tmp_path / "run" / "results.jsonl"
    deadline = time.monotonic() + 30
    while not (results.exists() and results.read_text().count("\n") >= 3):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.2)  # campaign.json names the allocation's holder process
    holder = int(json.loads((tmp_path / "run" / "campaign.json").read_text())["allocations"][0]["job_id"])
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while not gone(holder):
        assert time.monotonic() < deadline, "the allocation's holder dies with the campaign"
        time.sleep(0.1)
    before = {json.loads(line)["task"] for line in results.read_text().splitlines()}
    again = subprocess.run([*pilotkit_cmd, "run", "--resume", *run[len(pilotkit_cmd) + 1 :]], env=cli_env, capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"{len(before)} task(s) already ok" in again.stderr
    by_task = once_each(results, 10)
    assert {line["outcome"] for line in by_task.values()} == {"ok"}
    assert {line["attempts"] for line in by_task.values()} == {1}
    for task in before:  # the earlier run's tasks did not run again
        assert len(list((tmp_path / "run" / "tasks" / task).glob("attempt-*.out"))) == 1


@pytest.mark.parametrize(("per", "expected"), [(0, 2), (100, 1)])
async def test_parallel_and_backlog_per_allocation(tmp_path: Path, plugins: Plugins, per: int, expected: int) -> None:
    """``parallel = 2``: two allocations at once while tasks wait; with
    ``backlog_per_allocation = 100`` 8 waiting tasks call for one."""
    lines: list[str] = []
    body = f"backlog_per_allocation = {per}\n" + grid(8, "sleep 0.5")
    text = spec_text("wide", body, walltime="30s", parallel=2).replace("cores = 2", "cores = 1")
    c = campaign(tmp_path, text, plugins, lines)
    most = 0
    run = asyncio.ensure_future(c.run())
    while not run.done():
        most = max(most, sum(1 for r in c.records if r.state in ("queued", "running")))
        await asyncio.sleep(0.05)
    outcome = run.result()
    assert outcome.state == "done", lines
    assert most == expected and len(outcome.status.allocations) == expected
    once_each(c.results.path, 8)


def test_sigusr1_drains_the_campaign(tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]) -> None:
    """SIGUSR1 (a batch system's warning): no new task or allocation, the running tasks
    finish ok, the rest is reported cancelled; the campaign ends done (exit 0)."""
    spec = tmp_path / "drain.toml"
    spec.write_text(spec_text("drain", grid(10, "sleep 1"), walltime="60s"))
    proc = subprocess.Popen([*pilotkit_cmd, "run", "--workdir", str(tmp_path / "run"), str(spec)], env=cli_env,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if "running tasks" in line:
            break
    proc.send_signal(signal.SIGUSR1)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, rest
    by_task = once_each(tmp_path / "run" / "results.jsonl", 10)
    outcomes = [line["outcome"] for line in by_task.values()]
    assert outcomes.count("ok") == 2 and outcomes.count("cancelled") == 8, rest
    assert "draining: SIGUSR1" in rest and "done: drained (SIGUSR1): 8 task(s) not run" in rest


def test_status_by_id_prefix_and_directory(tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]) -> None:
    """``pilotkit status`` finds a campaign by its id, a unique prefix of its id (also one
    registered only by its name, as before ids were registered) or its directory; an
    ambiguous prefix is one line naming the candidates, exit 2; no daemon is needed."""
    from pilotkit.campaign.records import CAMPAIGN_FILE, CampaignStatus, write_status

    registry = tmp_path / "state" / "pilotkit" / "campaigns"
    registry.mkdir(parents=True)
    ids = ["scan-20261207-101010-aaaa", "scan-20261207-121212-bbbb"]
    for n, campaign_id in enumerate(ids):
        workdir = tmp_path / campaign_id
        workdir.mkdir()
        write_status(workdir / CAMPAIGN_FILE, CampaignStatus(
            name="scan", id=campaign_id, state="done", workdir=str(workdir), results=str(workdir / "results.jsonl"),
            started=1.0, ended=2.0, total=3, done=3))  # fmt: skip
        if n == 0:  # registered by its id
            (registry / campaign_id).write_text(f"{workdir / CAMPAIGN_FILE}\n")
        else:  # registered only by its name (the last campaign of that name)
            (registry / "scan").write_text(f"{workdir / CAMPAIGN_FILE}\n")

    def status(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*pilotkit_cmd, "status", *args], env=cli_env, capture_output=True, text=True,
                              timeout=30, cwd=tmp_path)  # fmt: skip

    for query, expected in [(ids[0], ids[0]), ("scan-20261207-10", ids[0]), (ids[1], ids[1]),
                            ("scan-20261207-12", ids[1]), ("scan", ids[1]), (str(tmp_path / ids[0]), ids[0])]:
        out = status(query, "--json")
        assert out.returncode == 0, (query, out.stderr)
        assert json.loads(out.stdout)["id"] == expected, query
    text = status("scan-20261207-1")
    assert text.returncode == 2 and "Traceback" not in text.stderr
    assert text.stderr.strip().splitlines() == [f"error: 2 campaigns start with 'scan-20261207-1': {ids[0]}, {ids[1]}"]
    assert status("scan-2026120").returncode == 2
    assert f"campaign {ids[0]} (scan): done" in status(ids[0]).stdout
