"""Scan sources (fixed lists, random search, registered optimisers), metrics, failure
reports and the futures that wake the app."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pilotkit_mpi import optimiser, report, watch
from pilotkit_mpi.optimiser import OptimiserSettings, PointList, RandomSearch

from pilotkit.builtin.tasks import Distribution
from pilotkit.errors import PilotkitError
from pilotkit.events import TaskFinished

SPACE = {"lr": Distribution(loguniform=[1e-4, 1e-1]), "layers": Distribution(choice=[2, 4, 8])}


def test_random_search_is_seeded_and_stays_in_the_space() -> None:
    first = RandomSearch(OptimiserSettings(SPACE, seed=5)).suggest(4)
    assert len(first) == 4 and first == RandomSearch(OptimiserSettings(SPACE, seed=5)).suggest(4)
    assert RandomSearch(OptimiserSettings(SPACE, seed=5)).suggest(0) == []
    batches = RandomSearch(OptimiserSettings(SPACE, seed=5))
    assert len(batches.suggest(2) + batches.suggest(2)) == 4
    for point in first:
        assert 1e-4 <= point["lr"] <= 1e-1 and point["layers"] in (2, 4, 8)
    search = RandomSearch(OptimiserSettings(SPACE, goal="max"))
    search.observe({"lr": 0.1}, 1.0)
    search.observe({"lr": 0.2}, None)
    search.observe({"lr": 0.3}, 3.0)
    assert search.best is not None and search.best.params == {"lr": 0.3}


def test_point_list_hands_out_each_point_once() -> None:
    points = PointList([{"a": 1}, {"a": 2}, {"a": 3}])
    assert points.suggest(2) == [{"a": 1}, {"a": 2}]
    assert points.suggest(5) == [{"a": 3}]
    assert points.suggest(1) == [] and points.total == 3


def test_registration_and_lookup() -> None:
    def make(settings: OptimiserSettings) -> optimiser.Optimiser:
        return RandomSearch(settings)

    optimiser.register_optimiser("test-made", make)
    try:
        assert "test-made" in optimiser.available() and "random" in optimiser.available()
        assert optimiser.load_optimiser("test-made") is make
        with pytest.raises(PilotkitError, match="already registered"):
            optimiser.register_optimiser("test-made", RandomSearch)
    finally:
        optimiser.unregister_optimiser("test-made")
    with pytest.raises(PilotkitError, match=r"unknown optimiser 'test-made'; available: .*random"):
        optimiser.load_optimiser("test-made")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.5", 0.5),
        ('{"metric": 3}', 3.0),
        ('{"loss": 1, "metric": -2.5}', -2.5),
        ("{}", None),
        ("nan", None),
        ("x", None),
        ("", None),
        ("true", None),
    ],
)
def test_parse_metric(text: str, value: float | None) -> None:
    assert report.parse_metric(text) == value


def test_read_metric_of_a_missing_file(tmp_path: Path) -> None:
    assert report.read_metric(tmp_path / "none.json") is None
    (tmp_path / "m.json").write_text('{"loss": 0.25}')
    assert report.read_metric(tmp_path / "m.json", "loss") == 0.25


SRUN_STDERR = """\
srun: error: node3: task 2: Exited with exit code 3
srun: launch/slurm: _step_signal: Terminating StepId=12.3
slurmstepd: error: *** STEP 12.3 ON node1 CANCELLED AT 2026-01-01T00:00:00 ***
srun: error: node1: tasks 0-1: Killed
"""

OMPI_STDERR = """\
--------------------------------------------------------------------------
mpirun detected that one or more processes exited with non-zero status, thus causing
the job to be terminated. The first process to do so was:

  Process name: [[6202,1],1]
  Exit code:    3
--------------------------------------------------------------------------
"""


OMPI_SIGNAL_STDERR = """\
--------------------------------------------------------------------------
mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 11 (Segmentation fault).
--------------------------------------------------------------------------
"""


def test_rank_failures_from_srun_and_openmpi() -> None:
    srun = report.rank_failures(SRUN_STDERR)
    assert [(f.ranks, f.node, f.exit_code, f.signal) for f in srun] == [
        ("2", "node3", 3, None),
        ("0-1", "node1", None, 9),
    ]
    (ompi,) = report.rank_failures(OMPI_STDERR)
    assert (ompi.ranks, ompi.exit_code) == ("1", 3)
    (signalled,) = report.rank_failures(OMPI_SIGNAL_STDERR)
    assert (signalled.ranks, signalled.node, signalled.signal) == ("1", "vm", 11)
    line = report.summarise(srun, 3)
    assert line.startswith("exit 3; rank 2 on node3: Exited with exit code 3")
    assert report.summarise([], None) == "no exit code"


def test_read_tail(tmp_path: Path) -> None:
    path = tmp_path / "err"
    path.write_text("a" * 100 + "END")
    assert report.read_tail(path, 5) == "aaEND"
    assert report.read_tail(tmp_path / "missing") == "" and report.read_tail(None) == ""


async def test_watch_resolves_only_final_finishes() -> None:
    future = watch.expect("p1", "t1")
    event: dict[str, Any] = {
        "pilot": "p1",
        "task": "t1",
        "group": "g",
        "attempt": 1,
        "node": "n",
        "status": "failed",
    }
    watch.finished(TaskFinished(**event, final=False))
    assert not future.done()
    watch.finished(TaskFinished(**{**event, "pilot": "other"}))
    assert not future.done()
    watch.finished(TaskFinished(**event))
    assert (await asyncio.wait_for(future, 1)).status == "failed"
    other = watch.expect("p1", "t2")
    watch.forget("p1")
    assert other.cancelled()
