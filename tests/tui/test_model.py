"""The dashboard's model, replay source and text helpers, without a screen."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pilotkit.events import (
    GroupAdded,
    Metrics,
    NodeReady,
    PilotStateChanged,
    TaskFinished,
    TaskStarted,
    encode,
)
from pilotkit.protocol import Counts, GpuMetric, MetricSample, PilotSummary
from pilotkit.tui.format import Palette, bar, progress_bar, spark, stacked_bar
from pilotkit.tui.live import LiveSource
from pilotkit.tui.model import Connection, DashboardModel, name_of
from pilotkit.tui.replay import ReplaySource, load_events
from pilotkit.tui.widgets.task_table import matches, parse_filter
from pilotkit.types import GpuInfo, NodeInfo

from .conftest import CLUSTER_LOG, DEMO_LOG


def replayed(path: Path) -> DashboardModel:
    events, bad = load_events(path)
    assert bad == 0
    model = DashboardModel(frozen_clock=True)
    model.apply_events(events)
    return model


def test_recorded_log_folds_into_counts_per_group() -> None:
    model = replayed(DEMO_LOG)
    (view,) = model.pilots.values()
    assert view.name == "demo" and view.provider == "local" and view.state == "failed"
    groups = view.groups()
    assert (groups["fit"].total, groups["fit"].done, groups["fit"].failed) == (16, 16, 0)
    assert (groups["check"].total, groups["check"].done, groups["check"].failed) == (4, 3, 1)
    totals = view.totals()
    assert (totals.total, totals.done, totals.failed, totals.queued, totals.running) == (20, 19, 1, 0, 0)
    failed = view.tasks["check-1"]
    assert (failed.status, failed.attempt, failed.exit_code) == ("failed", 2, 3)
    assert len(view.tasks) == 20 and [r.index for r in view.tasks.rows()] == list(range(20))
    assert list(view.nodes) == ["vm"] and view.nodes["vm"].gpu_reason
    # the clock of a replay is the events' own
    assert model.now() == max(t for t, _ in view.log)


def test_metrics_events_and_samples_feed_node_history() -> None:
    model = replayed(CLUSTER_LOG)
    (view,) = model.pilots.values()
    node = view.nodes["node0000"]
    assert node.cores == 64 and len(node.gpus) == 2
    assert len(node.cpu) > 10 and node.gpu_util() is not None
    assert node.gpu_memory()[1] == 2 * 40 * 2**30
    # a live sample (MetricSample) reaches the same history; a GPU without readings is N/A
    before = len(node.cpu)
    uuid = next(iter(node.gpus))
    model.apply_metric(MetricSample(pilot=view.id, node="node0000", t=model.now() + 1, cpu_percent=50.0,
                                    memory_used=2**30, memory_total=2**31,
                                    gpus=[GpuMetric(uuid=uuid, utilization=None, memory_used=None)]))
    assert len(node.cpu) == before + 1 and node.gpus[uuid].util_now is None


def test_summaries_stand_in_for_events_not_followed() -> None:
    model = DashboardModel()
    summary = PilotSummary(id="scan-20250101-120000-abcd", name="scan", provider="slurm", state="running",
                           workdir="/w", created=time.time() - 60, updated=time.time(), nodes=4, cores=128, gpus=8,
                           walltime_end=time.time() + 3600, progress=Counts(total=10, done=4, running=2, queued=4),
                           groups={"g": Counts(total=10, done=4, running=2, queued=4)})
    model.apply_status([summary])
    view = model.pilots[summary.id]
    assert not view.hydrated
    assert (view.totals().done, view.totals().queued, view.node_count, view.gpus) == (4, 4, 4, 8)
    left = view.walltime_left(model.now())
    assert left is not None and 3500 < left <= 3600
    # once its events are followed from the start, they count
    model.apply_event(GroupAdded(pilot=summary.id, group="g", total=10), seq=1)
    model.apply_event(TaskStarted(pilot=summary.id, task="t0", group="g", attempt=1, node="n"), seq=2)
    model.apply_event(TaskStarted(pilot=summary.id, task="t0", group="g", attempt=1, node="n"), seq=2)  # again
    view.hydrated = True
    assert view.totals().running == 1 and view.totals().done == 0


def test_unknown_event_types_are_logged_not_fatal() -> None:
    model = DashboardModel()
    model.apply_event({"type": "something-new", "pilot": "p-20250101-120000-0000", "t": 5.0, "x": 1})
    model.apply_event({"type": "no-pilot"})
    (view,) = model.pilots.values()
    assert view.log_total == 1 and name_of(view.id) == "p"


def test_finish_without_a_start_and_node_lost() -> None:
    model = DashboardModel()
    p = "x-20250101-120000-0000"
    model.apply_event(NodeReady(pilot=p, node=NodeInfo(name="n1", cores=4, memory=2**30,
                                                         gpus=[GpuInfo(index=0, uuid="GPU-a")])))
    model.apply_event(TaskFinished(pilot=p, task="t", group="g", attempt=1, node="n1", status="ok", duration=2.0))
    model.apply_event(Metrics(pilot=p, node="n1", cpu_percent=10, memory_used=1, gpus=[{"index": 0, "utilization": 70}]))
    view = model.pilots[p]
    assert view.totals().done == 1 and view.tasks["t"].duration == 2.0
    assert view.nodes["n1"].gpus["GPU-a"].util_now == 70.0


def test_retry_starts_a_new_run() -> None:
    model = replayed(DEMO_LOG)
    (view,) = model.pilots.values()
    p = view.id
    model.apply_event(PilotStateChanged(pilot=p, state="claiming", previous="failed"))
    model.apply_event(GroupAdded(pilot=p, group="check", total=4))
    model.apply_event(TaskStarted(pilot=p, task="check-1", group="check", attempt=3, node="vm"))
    assert view.run == 2
    check = view.groups()["check"]
    assert (check.total, check.done, check.running, check.failed) == (4, 3, 1, 0)


def test_filter_words_and_inversion() -> None:
    model = replayed(DEMO_LOG)
    (view,) = model.pilots.values()
    words, invert = parse_filter("  !Check ")
    assert (words, invert) == (["check"], True)
    hay = [view.tasks.haystack(i) for i in range(len(view.tasks))]
    assert sum(matches(h, ["check"], False) for h in hay) == 4
    assert sum(matches(h, ["check"], True) for h in hay) == 16
    assert sum(matches(h, ["check", "failed"], False) for h in hay) == 1


def test_bars() -> None:
    p = Palette()
    assert bar(0.5, 10, p.done).cell_len == 10
    assert bar(None, 10, p.done).plain.strip() == "N/A"
    assert stacked_bar([(1, p.failed)], 1000, 20).plain.count("█") == 1  # a lone failure stays visible
    assert progress_bar(replayed(DEMO_LOG).pilots.popitem()[1].totals(), 30, p).cell_len == 30
    assert spark([0, 50, 100, None], 4) == "▁▅█ "


def test_backoff_is_exponential_and_capped() -> None:
    source = LiveSource(backoff=0.5, cap=10.0)
    assert [source.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_replay_paces_instant_and_speed(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    p = "r-20250101-120000-0000"
    lines = [encode(GroupAdded(pilot=p, group="g", total=3, t=100.0))]
    lines += [encode(TaskStarted(pilot=p, task=f"t{i}", group="g", attempt=1, node="n", t=100.0 + 0.2 * i))
              for i in range(3)]
    log.write_bytes(b"\n".join(lines) + b"\nnot json\n")
    states: list[Connection] = []

    async def play(speed: float | None) -> tuple[DashboardModel, float]:
        model = DashboardModel()
        source = ReplaySource(log, speed=speed)
        start = time.monotonic()
        await asyncio.wait_for(source.run(model, lambda: None, states.append), 10)
        return model, time.monotonic() - start

    model, took = asyncio.run(play(None))
    assert model.pilots[p].totals().running == 3 and took < 1.0
    assert states[-1].state == "replayed" and "1 unreadable" in states[-1].detail
    model, took = asyncio.run(play(4.0))  # 0.4 s of events at x4
    assert model.pilots[p].totals().running == 3 and 0.05 < took < 2.0
    assert model.now() == pytest.approx(100.4)


def test_app_progress_keeps_the_latest_counts_per_name_out_of_the_event_log() -> None:
    """``app-progress`` events (as the daemon sends them: JSON the core decodes) give each
    app's latest counts per name; they stay out of the event log; a new run starts them
    again."""
    from pilotkit.events import AppProgress, decode, encode

    model = DashboardModel()
    sent = [
        AppProgress(pilot="p", app="ray", name="fit", kind="NORMAL_TASK", total=5, pending=3, running=2, done=0,
                    failed=0),
        AppProgress(pilot="p", app="ray", name="fit", kind="NORMAL_TASK", total=5, pending=0, running=0, done=4,
                    failed=1),
        AppProgress(pilot="p", app="ray", name="Trainer", total=1, pending=0, running=1, done=0, failed=0),
    ]  # fmt: skip
    for seq, event in enumerate(sent, 1):
        model.apply_event(decode(encode(event)), seq)
    view = model.pilots["p"]
    assert view.app_progress == {"ray": {"fit": Counts(total=5, done=4, failed=1),
                                         "Trainer": Counts(total=1, running=1)}}  # fmt: skip
    assert list(view.log) == []
    model.apply_event(PilotStateChanged(pilot="p", state="failed"), 4)
    model.apply_event(GroupAdded(pilot="p", group="g", total=1), 5)  # a retry: run 2
    assert view.run == 2 and view.app_progress == {}
