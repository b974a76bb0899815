"""A real daemon, driven through the CLI and the client library."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import msgspec
import pytest

from pilotkit.client import DaemonError, EventItem, connect
from pilotkit.events import PilotStateChanged, TaskFinished
from pilotkit.protocol import MetricSample

from .conftest import DaemonProcess, wait_for, write_spec

QUICK = """
name = "quick"
[resources]
cores = 2
[[app.groups]]
name = "g"
shell = true
command = "echo out-{i}; echo err-{i} >&2"
[app.groups.grid]
i = [0, 1, 2, 3]
"""

SLOW = """
name = "slow"
[resources]
cores = 1
[pilot]
grace = "1s"
[[app.groups]]
name = "s"
commands = ["sleep 30", "sleep 30"]
"""


def test_submit_status_events_logs_cancel_round_trip(daemon: DaemonProcess, tmp_path: Path) -> None:
    pilot = daemon.submit(write_spec(tmp_path, QUICK))
    assert pilot.startswith("quick-")
    summary = daemon.wait_state(pilot, {"done"})
    assert summary["progress"]["done"] == 4 and summary["progress"]["total"] == 4
    assert summary["groups"]["g"]["done"] == 4
    assert summary["nodes"] == 1 and summary["cores"] == 2 and summary["provider"] == "local"
    workdir = Path(summary["workdir"])
    assert workdir.is_relative_to(daemon.state_dir / "runs")
    assert len((workdir / "results.jsonl").read_text().splitlines()) == 4

    table = daemon.cli("status").stdout
    assert pilot in table and "4/4" in table
    detail = daemon.cli("status", pilot).stdout
    assert "4/4 done" in detail and "recent attempts" in detail

    lines = daemon.cli("events", pilot, "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    states = [e["state"] for e in events if e["type"] == "pilot-state"]
    assert states == ["claiming", "probing", "deploying", "running", "evicting", "done"]
    assert sum(1 for e in events if e["type"] == "task-finished") == 4
    since = daemon.cli("events", pilot, "--json", "--since", str(seqs[-3])).stdout.splitlines()
    assert [json.loads(line)["seq"] for line in since] == seqs[-2:]

    assert daemon.cli("logs", pilot, "g-2").stdout == "out-2\n"
    assert daemon.cli("logs", pilot, "g-2", "--stderr").stdout == "err-2\n"
    pilot_log = daemon.cli("logs", pilot).stdout
    assert "running -> evicting" in pilot_log and "evicting -> done" in pilot_log

    tasks = json.loads(daemon.cli("tasks", pilot, "--json", "--limit", "2", "--offset", "1").stdout)
    assert tasks["total"] == 4 and [t["task"] for t in tasks["tasks"]] == ["g-1", "g-2"]

    slow = daemon.submit(write_spec(tmp_path, SLOW, "slow.toml"))
    daemon.wait_state(slow, {"running"})
    wait_for(lambda: daemon.status(slow)["progress"]["running"] == 1, what="a running task")
    out = daemon.cli("cancel", slow)
    assert slow in out.stdout
    summary = daemon.wait_state(slow, {"cancelled"}, timeout=20)
    assert summary["reason"] == "cancelled by the user"
    again = daemon.cli("cancel", slow, check=False)
    assert again.returncode == 2 and "has finished (cancelled)" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_submit_wait_and_exit_codes(daemon: DaemonProcess, tmp_path: Path) -> None:
    ok = daemon.cli("submit", "--wait", str(write_spec(tmp_path, QUICK)), check=False)
    assert ok.returncode == 0, ok.stderr
    assert "done" in ok.stderr and "4 done" in ok.stderr
    failing = write_spec(tmp_path, 'name = "f"\n[[app.groups]]\nname = "g"\ncommands = ["false"]\n', "f.toml")
    failed = daemon.cli("submit", "--wait", "--json", str(failing), check=False)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["name"] == "f"


def test_invalid_spec_lists_every_problem(daemon: DaemonProcess, tmp_path: Path) -> None:
    bad = write_spec(tmp_path, 'name = "bad"\n[resources]\ncors = 2\n[[app.groups]]\nname = "g"\nretrys = 1\n'
                     'commands = ["true"]\n', "bad.toml")
    result = daemon.cli("submit", str(bad), check=False)
    assert result.returncode == 2
    assert "resources.cors" in result.stderr and "did you mean 'cores'" in result.stderr
    assert "retrys" in result.stderr
    unknown = daemon.cli("status", "no-such-pilot", check=False)
    assert unknown.returncode == 2 and "no pilot 'no-such-pilot'" in unknown.stderr


async def test_client_library_streams(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, QUICK)
    async with connect(socket=str(daemon.socket)) as client:
        assert client.server is not None and client.server.protocol == 1
        submitted = await client.submit(spec.read_text(), path=str(spec))
        seen: list[str] = []
        final = await client.wait(submitted.pilot, lambda state, reason: seen.append(state))
        assert final.state == "done" and seen[-1] == "done"
        finished = [
            item.event async for item in client.events(submitted.pilot, follow=False, types=["task-finished"])
            if isinstance(item, EventItem)
        ]
        assert len(finished) == 4 and all(isinstance(e, TaskFinished) and e.status == "ok" for e in finished)
        page = await client.tasks(submitted.pilot, status=["done"], group="g")
        assert page.total == 4
        text = "".join([chunk async for chunk in client.logs(submitted.pilot, "g-0")])
        assert text == "out-0\n"
        with pytest.raises(DaemonError) as info:
            await client.cancel(submitted.pilot)
        assert info.value.code == "invalid-state"
        with pytest.raises(DaemonError) as info:
            await client.submit("name = 3")
        assert info.value.code == "invalid-spec" and info.value.data["problems"]


async def test_live_events_metrics_and_log_follow(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, """
name = "live"
[resources]
cores = 1
[[app.groups]]
name = "t"
shell = true
commands = ["for i in 1 2 3; do echo line-$i; sleep 0.4; done"]
""")
    async with connect(socket=str(daemon.socket)) as client:
        submitted = await client.submit(spec.read_text(), path=str(spec))
        pilot = submitted.pilot

        async def collect() -> list[object]:
            return [item.event async for item in client.events(pilot, types=["task-finished"])
                    if isinstance(item, EventItem)]

        only_finished = asyncio.ensure_future(collect())  # live from the start
        async for item in client.events(pilot):  # leaving a stream early unsubscribes it
            assert isinstance(item, EventItem)
            break
        sample: MetricSample | None = None
        async for item in client.metrics(pilot):
            if isinstance(item, MetricSample):
                sample = item
                break
        assert sample is not None and sample.pilot == pilot and sample.memory_used > 0
        assert 0.0 <= sample.cpu_percent <= 100.0 * 64
        text = "".join([c async for c in client.logs(pilot, "t-0", follow=True, tail=-1)])
        assert text == "line-1\nline-2\nline-3\n"
        states = [
            item.event.state async for item in client.events(pilot, types=["pilot-state"])
            if isinstance(item, EventItem) and isinstance(item.event, PilotStateChanged)
        ]
        assert states[-1] == "done"
        finished = await asyncio.wait_for(only_finished, 10)
        assert len(finished) == 1 and isinstance(finished[0], TaskFinished), "filtered, and it ended"
        (summary,) = await client.status(pilot)
        assert summary.state == "done"


def test_retry_failed_reruns_only_failed_tasks(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, """
name = "flaky"
[resources]
cores = 2
[[app.groups]]
name = "g"
shell = true
command = "test {i} = 0 || test -e ../../flag-{i} || {{ touch ../../flag-{i}; exit 5; }}"
[app.groups.grid]
i = [0, 1, 2]
""")
    pilot = daemon.submit(spec)
    summary = daemon.wait_state(pilot, {"failed"})
    assert summary["progress"]["failed"] == 2 and summary["progress"]["done"] == 1
    out = daemon.cli("retry", pilot, "--json")
    assert json.loads(out.stdout)["requeued"] == 2
    summary = daemon.wait_state(pilot, {"done"})
    assert summary["run"] == 2 and summary["progress"]["done"] == 3
    tasks = {t["task"]: t for t in json.loads(daemon.cli("tasks", pilot, "--json").stdout)["tasks"]}
    assert tasks["g-0"]["attempts"] == 1, "a successful task is not run again"
    assert tasks["g-1"]["attempts"] == 2 and tasks["g-2"]["attempts"] == 2
    nothing = daemon.cli("retry", pilot, check=False)
    assert nothing.returncode == 2 and "nothing to retry" in nothing.stderr


def test_drain_lets_running_tasks_finish(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, """
name = "drainme"
[resources]
cores = 1
[[app.groups]]
name = "d"
command = "sleep 1.5"
[app.groups.grid]
i = [1, 2, 3, 4]
""")
    pilot = daemon.submit(spec)
    wait_for(lambda: daemon.status(pilot)["progress"]["running"] == 1, what="a running task")
    assert "drain" in daemon.cli("drain", pilot).stdout
    summary = daemon.wait_state(pilot, {"done"})
    progress = summary["progress"]
    assert progress["done"] >= 1 and progress["cancelled"] >= 2 and progress["done"] + progress["cancelled"] == 4
    assert progress["failed"] == 0


def test_daemon_info_and_single_instance(daemon: DaemonProcess, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    info = msgspec.json.decode(daemon.cli("status", "--json").stdout)["daemon"]
    assert info["pid"] == daemon.pid and info["crashes"] == 0
    second = DaemonProcess(daemon.base)  # same dirs: same user's runtime dir
    started = time.monotonic()
    proc = second.start(wait=False)
    assert proc.wait(30) == 2
    assert "already running" in second.output() and time.monotonic() - started < 30
    assert daemon.accepts()
