"""SVG snapshots of every screen, fed by recorded event logs so they never change by
themselves (the replay's clock is the events'; times render in UTC).

After a deliberate change of the look: ``pytest tests/tui/test_snapshots.py
--snapshot-update``, then check the report and keep the new files.

Each screen at 160x48 and at 80x24 (the smallest terminal the layout is made for)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

pytest.importorskip("pytest_textual_snapshot")

from textual.pilot import Pilot

from pilotkit.protocol import (
    DescribeResult,
    FailureGroup,
    FailuresResult,
    PilotSummary,
    QueuedTask,
    QueueResult,
    TaskInfo,
)
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.messages import OpenLogs, OpenPilot
from pilotkit.tui.replay import ReplaySource
from pilotkit.tui.screens.submit import SpecTree, SubmitScreen
from pilotkit.types import Allocation, NodeInfo

from .conftest import CLUSTER_LOG, DATA, DEMO_LOG, DEMO_RUN, DEMO_SPEC

SIZES = pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])

DEMO_PILOT = "demo-20261125-174054-86d4"
CLUSTER_PILOT = "sim-20250615-120000-0001"


def replay_app(log: Path, **options: Any) -> PilotkitApp:
    return PilotkitApp(ReplaySource(log, speed=None, workdir=DEMO_RUN), tick=False, **options)


def after_replay(then: Callable[[Pilot[Any]], Any] | None = None, *keys: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, PilotkitApp)
        await app.until(lambda: app.model.connection.state == "replayed", 20)
        if then is not None:
            then(pilot)
            await pilot.pause()
        if keys:
            await pilot.press(*keys)
        await pilot.pause()
        app.repaint()
        await pilot.pause()

    return run_before


def both_logs(tmp_path: Path) -> Path:
    path = tmp_path / "both.jsonl"
    path.write_bytes(DEMO_LOG.read_bytes() + CLUSTER_LOG.read_bytes())
    return path


@SIZES
def test_overview(size: tuple[int, int], snap_compare: Any, tmp_path: Path) -> None:
    app = replay_app(both_logs(tmp_path))
    assert snap_compare(app, terminal_size=size, run_before=after_replay())


@SIZES
def test_pilot(size: tuple[int, int], snap_compare: Any) -> None:
    app = replay_app(DEMO_LOG)

    def open_pilot(pilot: Pilot[Any]) -> None:
        pilot.app.post_message(OpenPilot(DEMO_PILOT))

    # filter on the failed check and select it
    assert snap_compare(app, terminal_size=size, run_before=after_replay(open_pilot, "slash", *"check", "enter"))


@SIZES
def test_pilot_nodes_with_gpus(size: tuple[int, int], snap_compare: Any) -> None:
    app = replay_app(CLUSTER_LOG)

    def open_pilot(pilot: Pilot[Any]) -> None:
        pilot.app.post_message(OpenPilot(CLUSTER_PILOT))

    assert snap_compare(app, terminal_size=size, run_before=after_replay(open_pilot, "tab", "tab", "j"))


@SIZES
def test_logs(size: tuple[int, int], snap_compare: Any) -> None:
    app = replay_app(DEMO_LOG)

    def open_logs(pilot: Pilot[Any]) -> None:
        pilot.app.post_message(OpenLogs(DEMO_PILOT, None))

    assert snap_compare(app, terminal_size=size, run_before=after_replay(open_logs))


@SIZES
def test_submit(size: tuple[int, int], snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    source = ReplaySource(DEMO_LOG, speed=None)
    source.can_control = True  # the screen, not the refusal of a replay
    app = PilotkitApp(source, tick=False, start_dir=Path("specs"))

    def open_submit(pilot: Pilot[Any]) -> None:
        assert isinstance(pilot.app, PilotkitApp)
        pilot.app.push_screen(SubmitScreen(Path("specs/typo.toml"), start=Path("specs")))

    async def run_before(pilot: Pilot[Any]) -> None:
        await after_replay(open_submit)(pilot)
        app_ = pilot.app
        assert isinstance(app_, PilotkitApp)
        screen = app_.screen
        assert isinstance(screen, SubmitScreen)
        tree = screen.query_one(SpecTree)
        await app_.until(lambda: screen.checked is not None and bool(tree.root.children), 20)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_help(size: tuple[int, int], snap_compare: Any) -> None:
    assert snap_compare(replay_app(DEMO_LOG), terminal_size=size, run_before=after_replay(None, "question_mark"))


@SIZES
def test_confirm_retry_of_a_cancelled_pilot(size: tuple[int, int], snap_compare: Any, tmp_path: Path) -> None:
    """The demo run, its end turned into a cancel: ``r`` asks before starting it again."""
    log = tmp_path / "cancelled.jsonl"
    log.write_text(DEMO_LOG.read_text().replace('"state":"failed","previous":"evicting","reason":"1 task(s) failed"',
                                                '"state":"cancelled","previous":"evicting","reason":"cancelled"'))
    source = ReplaySource(log, speed=None)
    source.can_control = True  # the question, not the refusal of a replay
    app = PilotkitApp(source, tick=False)

    def open_pilot(pilot: Pilot[Any]) -> None:
        pilot.app.post_message(OpenPilot(DEMO_PILOT))

    assert snap_compare(app, terminal_size=size, run_before=after_replay(open_pilot, "r"))


class FakeQueueReplay(ReplaySource):
    """A replay that answers ``queue`` with a fixed result (a replay has no daemon to ask):
    for the look of the queue screen only; ``tests/tui/test_queue.py`` runs it on a daemon."""

    async def queue(self, pilot: str) -> QueueResult:
        t = 1795628456.0
        tasks = [QueuedTask(task=f"fit-{i}", group="fit", cores=2, reason="no-free-core",
                            detail="needs 2 core(s) on one node, at most 0 free") for i in range(3)]
        tasks += [QueuedTask(task="train-0", group="train", cores=1, gpus=2, reason="no-free-gpu",
                             detail="needs 2 GPU(s) on one node, at most 1 free"),
                  QueuedTask(task="long-0", group="long", reason="drain-point",
                             detail="its time limit (1800s) would end after the drain point (540s left)")]
        return QueueResult(pilot=pilot, state="running", t=t, queued=5, running=2, cores=4, free_cores=0, gpus=2,
                           free_gpus=1, window=300.0, finished_in_window=30, rate=6.0, eta=70.0, finish_at=t + 70,
                           walltime_end=t + 600, drain_at=t + 540, before_drain=True,
                           reasons={"no-free-core": 3, "no-free-gpu": 1, "drain-point": 1}, tasks=tasks)


@SIZES
def test_queue_fake_result(size: tuple[int, int], snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1795628456.0)  # the drain point's "left"
    app = PilotkitApp(FakeQueueReplay(DEMO_LOG, speed=None), tick=False, pilot=DEMO_PILOT)
    assert snap_compare(app, terminal_size=size, run_before=after_replay(None, "w"))


class FakeDescribeReplay(ReplaySource):
    """A replay that answers ``describe`` from the recorded demo (a replay has no daemon to
    ask): for the look of the describe screen only; ``tests/tui/test_describe.py`` runs it
    on a daemon."""

    async def describe_pilot(self, pilot: str) -> DescribeResult:
        assert self.model is not None
        view = self.model.pilots[pilot]
        summary = PilotSummary(id=pilot, name=view.name, provider="local", state=view.state, reason=view.reason,
                               workdir="/home/ada/runs/" + pilot, created=view.created or 0.0,
                               updated=view.ended or 0.0, ended=view.ended, nodes=1, cores=2, job_id="25663",
                               walltime_end=view.walltime_end)
        nodes = [NodeInfo(name="vm", cores=2, memory=25276063744,
                          gpu_reason="NVML library not found (no NVIDIA driver installed)")]
        files = {"workdir": summary.workdir, "pilot_log": summary.workdir + "/pilot.log",
                 "results": summary.workdir + "/results.jsonl", "tasks": summary.workdir + "/tasks"}
        return DescribeResult(summary=summary, spec=DEMO_SPEC.read_text(), spec_path="/home/ada/demo.toml",
                              allocation=Allocation(provider="local", nodes=["vm"], job_id="25663"), nodes=nodes,
                              files=files)


@SIZES
def test_describe_fake_result(size: tuple[int, int], snap_compare: Any) -> None:
    app = PilotkitApp(FakeDescribeReplay(DEMO_LOG, speed=None), tick=False, pilot=DEMO_PILOT)
    assert snap_compare(app, terminal_size=size, run_before=after_replay(None, "i"))


def cancelled_log(tmp_path: Path) -> Path:
    """The synthetic cluster pilot, cancelled part-way: its running tasks killed, a whole
    group never started (cancelled tasks in the counts, the bars and the task list)."""
    from pilotkit.events import GroupAdded, PilotStateChanged, TaskCancelled, TaskFinished
    from pilotkit.tui.synthetic import cluster_events

    events = list(cluster_events(nodes=3, tasks=24, metric_rounds=4, finish=False))
    t = events[-1].t + 0.1
    events.append(GroupAdded(pilot=CLUSTER_PILOT, t=t, group="later", total=12))
    events.append(PilotStateChanged(pilot=CLUSTER_PILOT, t=t + 0.1, state="evicting", previous="running"))
    events.append(TaskCancelled(pilot=CLUSTER_PILOT, t=t + 0.2, group="later", count=12))
    for k, node in enumerate(("node0000", "node0001", "node0002")):
        task = f"eval-{9 + k:05d}"
        events.append(TaskFinished(pilot=CLUSTER_PILOT, t=t + 0.3, task=task, group="eval", attempt=1, node=node,
                                   status="killed", exit_code=-15, duration=0.2))
    events.append(PilotStateChanged(pilot=CLUSTER_PILOT, t=t + 0.5, state="cancelled", previous="evicting",
                                    reason="cancelled"))
    path = tmp_path / "cancelled.jsonl"
    path.write_bytes(b"\n".join(msgspec.json.encode(e) for e in events) + b"\n")
    return path


@SIZES
def test_pilot_cancelled(size: tuple[int, int], snap_compare: Any, tmp_path: Path) -> None:
    app = replay_app(cancelled_log(tmp_path))

    def open_pilot(pilot: Pilot[Any]) -> None:
        pilot.app.post_message(OpenPilot(CLUSTER_PILOT))

    assert snap_compare(app, terminal_size=size, run_before=after_replay(open_pilot, "slash", *"cancel", "enter"))


class FakeFailuresReplay(ReplaySource):
    """A replay that answers ``failures`` with a fixed result (a replay has no daemon to
    ask): for the look of the failures screen only; ``tests/tui/test_describe.py`` runs
    it on a daemon."""

    async def failures(self, pilot: str) -> FailuresResult:
        return FailuresResult(pilot=pilot, failed=41, groups=[
            FailureGroup(outcome="failed", exit_code=1, last_line="KeyError: 'mass'", count=31,
                         tasks=[f"fit-{i}" for i in range(31)]),
            FailureGroup(outcome="timeout", exit_code=None, last_line="epoch 40/100 loss=0.213", count=8,
                         tasks=[f"train-{i}" for i in range(8)]),
            FailureGroup(outcome="failed", exit_code=137, last_line="", count=2, tasks=["check-1", "check-3"]),
        ])


@SIZES
def test_failures_fake_result(size: tuple[int, int], snap_compare: Any) -> None:
    app = PilotkitApp(FakeFailuresReplay(DEMO_LOG, speed=None), tick=False, pilot=DEMO_PILOT)
    assert snap_compare(app, terminal_size=size, run_before=after_replay(None, "F"))


def with_values(pilot: Pilot[Any]) -> None:
    """The cluster pilot's tasks with a scan's parameters and the metrics a daemon that
    records them would list, then its page."""
    app = pilot.app
    assert isinstance(app, PilotkitApp)
    view = app.model.pilots[CLUSTER_PILOT]
    infos = [TaskInfo(task=name, group=view.tasks.group[i], status="done", params={"lr": 10.0 ** -(1 + i % 4),
                                                                                    "layers": 2 + i % 3})
             for i, name in enumerate(view.tasks.task)]
    view.apply_values(infos)
    view.apply_values([_Reported(name, {"loss": round(1.0 / (1 + (7 * i) % 11), 3)})
                       for i, name in enumerate(view.tasks.task) if view.tasks.status[i] == "done"])  # type: ignore[misc]
    app.post_message(OpenPilot(CLUSTER_PILOT))


class _Reported(msgspec.Struct):
    task: str
    metrics: dict[str, Any]


@SIZES
def test_pilot_parameters_and_metrics(size: tuple[int, int], snap_compare: Any) -> None:
    app = replay_app(CLUSTER_LOG)
    # s: recent, task, group, status, node, time, lr, layers, loss (the best trial in the caption)
    assert snap_compare(app, terminal_size=size, run_before=after_replay(with_values, *"ssssssss"))


def open_cluster(pilot: Pilot[Any]) -> None:
    pilot.app.post_message(OpenPilot(CLUSTER_PILOT))


@SIZES
def test_timeline(size: tuple[int, int], snap_compare: Any) -> None:
    """A replay lays out the tasks it has seen; tests/tui/test_timeline.py runs the
    daemon's timeline."""
    app = replay_app(CLUSTER_LOG)
    assert snap_compare(app, terminal_size=size, run_before=after_replay(open_cluster, "t"))


def with_cpu_load(tmp_path: Path) -> Path:
    """The cluster log, its last metrics sample of each node carrying its load per CPU."""
    lines = CLUSTER_LOG.read_text().splitlines()
    last = {e["node"]: i for i, line in enumerate(lines) if (e := json.loads(line))["type"] == "metrics"}
    for k, i in enumerate(sorted(last.values())):
        event = json.loads(lines[i])
        event["core_percent"] = [float((j * 37 + k * 11) % 101) for j in range(64)]
        lines[i] = json.dumps(event)
    path = tmp_path / "cluster-load.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@SIZES
def test_nodes(size: tuple[int, int], snap_compare: Any, tmp_path: Path) -> None:
    app = replay_app(with_cpu_load(tmp_path))
    assert snap_compare(app, terminal_size=size, run_before=after_replay(open_cluster, "n"))


CAMPAIGN_DIR = DATA / "campaign"
"""A real campaign's ``campaign.json``, 7.5 s into its run (see data/README.md)."""


@SIZES
def test_campaign(size: tuple[int, int], snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1796663777.4)  # just after the file was written
    app = PilotkitApp(ReplaySource(DEMO_LOG, speed=None), tick=False, campaign=str(CAMPAIGN_DIR))
    assert snap_compare(app, terminal_size=size, run_before=after_replay())
