"""A search sampler of one's own (the ``pilotkit_register_samplers`` hook), with real
trial processes: asked as slots free, told how each trial ended, failures told as
failed, an exhausted sampler ending the group early, a cancel leaving trials untold."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

import pilotkit
from pilotkit.api import SearchSampler, SearchTrial
from pilotkit.events import GroupAdded, TaskStarted
from pilotkit.plugins import Plugins
from pilotkit.progress import Progress
from pilotkit.states import PilotState
from pilotkit.testing.plugin import RunSpec

CALLS: list[tuple[Any, ...]] = []


class Walk(SearchSampler):
    """Proposes x = 0, 1, 2...; stops after ``trials`` or at x = 5 (``exhaust``)."""

    id = "walk"
    exhaust = False

    def open(self) -> list[SearchTrial]:
        self.next = 0
        self.open_trials: set[int] = set()
        CALLS.append(("open", threading.current_thread() is threading.main_thread()))
        return []

    def ask(self) -> SearchTrial | None:
        if self.exhaust and self.next == 5:
            return None
        trial = SearchTrial(number=self.next, params={"x": self.next})
        self.open_trials.add(self.next)
        CALLS.append(("ask", self.next, len(self.open_trials)))
        self.next += 1
        return trial

    def tell(self, number: int, state: str, values: list[float] | None) -> None:
        self.open_trials.discard(number)
        CALLS.append(("tell", number, state, values))


class Exhausting(Walk):
    id = "walk-5"
    exhaust = True


@pilotkit.hookimpl
def pilotkit_register_samplers(register: Any) -> None:
    register(Walk)
    register(Exhausting)


@pytest.fixture
def run_walk(run_spec: RunSpec, pilotkit_plugins: Plugins) -> RunSpec:
    CALLS.clear()
    pilotkit_plugins.register_module("walk", types.SimpleNamespace(pilotkit_register_samplers=pilotkit_register_samplers))
    return run_spec


def spec(tmp_path: Path, sampler: str = "walk", trials: int = 8, sleep: float = 0.1) -> str:
    script = tmp_path / "trial.py"
    script.write_text(
        "import json, os, sys, time\nx = int(sys.argv[1])\ntime.sleep(float(sys.argv[2]))\n"
        "if x == 3: sys.exit(1)\n"
        "if x != 4: open(os.environ['PILOTKIT_METRICS'], 'a').write(json.dumps({'score': x * 10}) + '\\n')\n"
    )
    return (
        f'name = "walk"\n[resources]\ncores = 2\n[pilot]\ngrace = "1s"\n[[app.groups]]\nname = "w"\n'
        f'command = "{sys.executable} {script} {{x}} {sleep}"\n'
        f'[app.groups.search]\nsampler = "{sampler}"\ntrials = {trials}\nobjective = "score"\n'
        'direction = "maximize"\n[app.groups.search.params]\nx = { randint = [0, 100] }\n'
    )


async def test_own_sampler_is_asked_as_slots_free_and_told(run_walk: RunSpec, tmp_path: Path) -> None:
    run = await run_walk(spec(tmp_path))
    assert run.state is PilotState.FAILED  # trials 3 and 4 failed
    by_task = {r.task: r for r in run.results()}
    assert sorted(by_task) == [f"w-{i}" for i in range(8)]
    assert by_task["w-3"].outcome == "failed" and by_task["w-3"].attempts == 1
    assert CALLS[0] == ("open", False)  # in a worker thread
    asks = [c for c in CALLS if c[0] == "ask"]
    tells = {c[1]: c[2:] for c in CALLS if c[0] == "tell"}
    assert len(asks) == 8 and max(c[2] for c in asks) <= 2  # never more trials out than slots
    assert tells[0] == ("complete", [0.0]) and tells[7] == ("complete", [70.0])
    assert tells[3] == ("failed", None)  # exit 1
    assert tells[4] == ("failed", None)  # no score reported
    assert json.loads((run.workdir / "tasks" / "w-5" / "attempt-1.metrics.jsonl").read_text()) == {"score": 50}


async def test_an_exhausted_sampler_ends_the_group_early(run_walk: RunSpec, tmp_path: Path) -> None:
    run = await run_walk(spec(tmp_path, sampler="walk-5", trials=20, sleep=0))
    assert len(run.results()) == 5
    progress = Progress()
    for event in run.events:
        progress.apply(event)
    assert progress.groups["w"].total == 5 and progress.groups["w"].queued == 0
    assert sum(e.total for e in run.events if isinstance(e, GroupAdded)) == 5


async def test_cancel_leaves_running_trials_untold(run_walk: RunSpec, tmp_path: Path) -> None:
    started: list[str] = []

    def on_pilot(pilot: Any) -> None:
        async def cancel() -> None:
            while len(started) < 2:
                await asyncio.sleep(0.02)
            pilot.cancel("test")

        pilot.bus.subscribe(lambda e: started.append(e.task) if isinstance(e, TaskStarted) else None)
        asyncio.get_running_loop().create_task(cancel())

    run = await asyncio.wait_for(run_walk(spec(tmp_path, trials=20, sleep=5), on_pilot=on_pilot), 30)
    assert run.state is PilotState.CANCELLED
    results = run.results()
    cancelled = {r.task for r in results if r.outcome == "cancelled"}
    told = {c[1] for c in CALLS if c[0] == "tell"}
    assert cancelled and not {int(t[2:]) for t in cancelled} & told
    assert len([c for c in CALLS if c[0] == "ask"]) < 20
    progress = Progress()
    for event in run.events:
        progress.apply(event)
    group = progress.groups["w"]
    assert group.queued == 0 and group.running == 0 and group.total == group.done + group.failed + group.cancelled


def test_a_sampler_nobody_registered_is_a_located_error(tmp_path: Path) -> None:
    import os
    import subprocess

    path = tmp_path / "tune.toml"
    path.write_text(spec(tmp_path, sampler="tpe"))
    out = subprocess.run([sys.executable, "-m", "pilotkit.cli.main", "validate", str(path)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PILOTKIT_DISABLE_PLUGINS": "optuna"})  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: {path}:10: app.groups[0].search.sampler: unknown sampler 'tpe'; installed: none "
        "(pip install pilotkit-optuna for tpe, random, cmaes, gp...)"
    ]
