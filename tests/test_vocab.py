"""The shared words: outcomes to task statuses, counts, exit codes, run-directory
paths, and results.jsonl lines written before ``outcome`` existed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotkit.events import GroupAdded, PilotStateChanged, TaskFinished, TaskStarted
from pilotkit.progress import Progress
from pilotkit.results import ResultsWriter, TaskResult, read_results
from pilotkit.vocab import (
    Counts,
    ExitCode,
    Outcome,
    TaskStatus,
    attempt_log,
    exit_code,
    final_status,
)


@pytest.mark.parametrize(
    ("outcome", "winding_down", "status"),
    [
        ("ok", False, TaskStatus.DONE),
        ("stopped", False, TaskStatus.DONE),
        ("killed", True, TaskStatus.CANCELLED),
        ("killed", False, TaskStatus.FAILED),
        ("cancelled", False, TaskStatus.CANCELLED),
        ("timeout", True, TaskStatus.FAILED),
        ("spawn-error", False, TaskStatus.FAILED),
    ],
)
def test_final_status(outcome: str, winding_down: bool, status: TaskStatus) -> None:
    assert final_status(outcome, winding_down) is status


def test_exit_codes() -> None:
    assert [exit_code(s) for s in ("done", "failed", "walltime-expired", "cancelled", "odd")] == [0, 1, 3, 130, 1]
    assert ExitCode.BAD_INPUT == 2


def test_run_directory_paths(tmp_path: Path) -> None:
    assert attempt_log(tmp_path, "g-0", 2, "err") == tmp_path / "tasks" / "g-0" / "attempt-2.err"


def test_progress_fold_counts_queued_like_the_scheduler() -> None:
    fold = Progress()
    fold.apply(GroupAdded(pilot="p", group="g", total=3))
    fold.apply(TaskStarted(pilot="p", task="g-0", group="g", attempt=1, node="n"))
    fold.apply(TaskFinished(pilot="p", task="g-0", group="g", attempt=1, node="n", status="failed", final=False))
    assert fold.groups["g"] == Counts(total=3, queued=3)
    fold.apply(TaskStarted(pilot="p", task="g-0", group="g", attempt=2, node="n"))
    fold.apply(PilotStateChanged(pilot="p", state="draining"))
    fold.apply(TaskFinished(pilot="p", task="g-0", group="g", attempt=2, node="n", status="killed", final=True))
    assert fold.totals() == Counts(total=3, queued=2, cancelled=1)


def test_results_lines_carry_outcome_and_old_lines_read_back(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    writer = ResultsWriter(path)
    writer.write(TaskResult(task="a", group="g", params={}, status=Outcome.OK, outcome=Outcome.OK, exit_code=0,
                            attempts=1, node="n", start=1.0, end=2.0, duration=1.0, stdout=None, stderr=None))
    writer.close()
    with open(path, "ab") as f:  # a line written by pilotkit 0.1: no outcome
        f.write(b'{"task":"b","group":"g","params":{},"status":"timeout","exit_code":null,"attempts":2,'
                b'"node":"n","start":1.0,"end":3.0,"duration":2.0,"stdout":null,"stderr":null}\n')
    new, old = read_results(path)
    assert '"outcome":"ok"' in path.read_text().splitlines()[0]
    assert (new.status, new.outcome) == ("ok", "ok")
    assert (old.status, old.outcome) == ("timeout", "timeout")
