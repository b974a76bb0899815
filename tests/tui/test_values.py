"""A scan's parameters (and the tasks' metrics, where the daemon sends them) as columns of
the task table, sortable, with the best trial: from a real daemon, and ``pilotkit tasks``
showing the same parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotkit.client import Target
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.live import LiveSource
from pilotkit.tui.model import PilotView
from pilotkit.tui.screens.pilot import PilotScreen
from pilotkit.tui.widgets.task_table import TaskTable

from .conftest import SIZE

SPEC = """name = "scan"
[app]
type = "tasks"
[[app.groups]]
name = "fit"
command = ["true", "{lr}", "{model}"]
[app.groups.grid]
lr = [0.1, 0.01, 0.001]
model = ["a", "b"]
"""


async def test_parameters_are_columns_sortable(tui_daemon: Any, tmp_path: Path) -> None:
    spec = tmp_path / "scan.toml"
    spec.write_text(SPEC)
    pilot = tui_daemon.submit(spec)
    tui_daemon.wait_state(pilot, {"done"})
    page = json.loads(tui_daemon.cli("tasks", pilot, "--json").stdout)
    params = {t["task"]: t["params"] for t in page["tasks"]}
    assert len(params) == 6 and sorted({p["lr"] for p in params.values()}) == [0.001, 0.01, 0.1]
    text = tui_daemon.cli("tasks", pilot).stdout
    assert "lr=0.001 model=a" in text

    app = PilotkitApp(LiveSource(Target(socket=str(tui_daemon.socket)), poll=0.3), pilot=pilot)
    async with app.run_test(size=SIZE) as ui:
        await app.until(lambda: isinstance(app.screen, PilotScreen))
        table = app.screen.query_one(TaskTable)
        await app.until(lambda: [label for label, _ in table.columns][:4] == ["task", "status", "lr", "model"], 20)
        # s cycles the fixed sorts, then each parameter
        for _ in range(6):
            await ui.press("s")
        assert table.sort_key == "param:lr"
        await ui.pause()
        rows = [table.row(i) for i in range(table.row_count())]
        values = [params[r.task]["lr"] for r in rows if r is not None]
        assert values == sorted(values) and len(values) == 6
        assert "lr↓" in table.header()
        await ui.press("S")
        values = [params[r.task]["lr"] for r in (table.row(i) for i in range(6)) if r is not None]
        assert values == sorted(values, reverse=True)
        assert str(table.row_cells(5)[2]) == "0.001"


@dataclass
class Reported:
    """A task as a daemon that records metrics lists it (``metrics`` besides ``params``)."""

    task: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


async def test_metric_column_and_best_trial_from_reported_values() -> None:
    """Metrics are read where a task record has them; without any, no column."""
    view = PilotView("scan-20260101-120000-abcd")
    for i in range(4):
        view.tasks.add(f"fit-{i}", "fit")
    view.apply_values([Reported("fit-0", {"lr": 0.1}, {"loss": 0.5}),
                       Reported("fit-1", {"lr": 0.01}, {"loss": 0.2, "acc": 0.9}),
                       Reported("fit-2", {"lr": 0.001}, {"loss": "nan?"}),
                       Reported("fit-3", {"lr": 0.0001})])  # type: ignore[list-item]
    assert list(view.tasks.param_keys) == ["lr"] and list(view.tasks.metric_keys) == ["loss", "acc"]

    app = PilotkitApp(LiveSource(Target(socket="/nonexistent/pilotkit.sock"), retries=0))
    async with app.run_test(size=SIZE) as ui:
        table = TaskTable(id="values")
        await app.screen.mount(table)
        table.sync(view, 0.0)
        assert [label for label, _ in table.columns][:5] == ["task", "status", "lr", "loss", "acc"]
        table.set_sort("metric:loss")
        await ui.pause()
        order = [r.task for r in (table.row(i) for i in range(4)) if r is not None]
        assert order == ["fit-1", "fit-0", "fit-2", "fit-3"]  # numbers in order, a word, then none
        assert "best loss: fit-1 (0.2, least); 4 task(s), by loss" in table.describe_view()
        table.set_sort("metric:acc", reverse=True)
        assert "best acc: fit-1 (0.9, greatest)" in table.describe_view()
        table.set_sort("param:lr")
        assert table.best() is None

    plain = PilotView("plain-20260101-120000-abcd")
    plain.tasks.add("t-0", "g")
    plain.apply_values([Reported("t-0")])  # type: ignore[list-item]
    assert not plain.tasks.param_keys and not plain.tasks.metric_keys


async def test_best_so_far_is_the_objective_over_time() -> None:
    """The caption of a table sorted by a metric draws that metric's best value so far,
    in the order the tasks ended (not the order of their names); reversed, the greatest."""
    view = PilotView("tune-20260101-120000-abcd")
    losses = {"t-0": 5.0, "t-1": 3.0, "t-2": 4.0, "t-3": 1.0, "t-4": 2.0}
    ends = {"t-0": 10.0, "t-1": 20.0, "t-2": 30.0, "t-3": 50.0, "t-4": 40.0}
    for name in losses:
        view.tasks.add(name, "t")
        view.tasks.end[view.tasks.ids[name]] = ends[name]
    view.apply_values([Reported(name, {}, {"loss": loss}) for name, loss in losses.items()])  # type: ignore[misc]
    app = PilotkitApp(LiveSource(Target(socket="/nonexistent/pilotkit.sock"), retries=0))
    async with app.run_test(size=SIZE):
        table = TaskTable(id="values")
        await app.screen.mount(table)
        table.sync(view, 0.0)
        table.set_sort("metric:loss")
        # ended: 5, 3, 4, 2, 1 -> best so far 5, 3, 3, 2, 1
        assert table.best_so_far("loss") == "█▅▅▃▁"
        assert table.describe_view().startswith("best loss █▅▅▃▁: t-3 (1, least); 5 task(s)")
        assert table.best_so_far("loss", width=3) == "█▅▁"
        table.set_sort("metric:loss", reverse=True)
        assert table.best_so_far("loss") == "▁▁▁▁▁"  # the first was the greatest
        view.tasks.end[view.tasks.ids["t-4"]] = None  # still running: not drawn
        view.tasks_version += 1
        table.set_sort("metric:loss", reverse=False)
        assert table.best_so_far("loss") == "█▅▅▁"
