"""An adaptive search (real Optuna) survives a kill -9 of the daemon: after the restart
the study goes on with no trial lost or run twice."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pilotkit.results import read_results
from pilotkit.testing.needs import need

from .conftest import DaemonProcess, wait_for, write_spec

QUADRATIC = Path(__file__).resolve().parents[2] / "plugins" / "optuna" / "tests" / "quadratic.py"
SPEC = f"""
name = "search"
[resources]
cores = 2
[[app.groups]]
name = "t"
command = "{sys.executable} {QUADRATIC} --x {{x}} --y {{y}} --z {{z}} --steps 4 --sleep 0.15"
[app.groups.search]
sampler = "tpe"
trials = 10
objective = "loss"
seed = 4
[app.groups.search.params]
x = {{ uniform = [-5, 5] }}
y = {{ uniform = [-5, 5] }}
z = {{ uniform = [-5, 5] }}
"""


def test_search_goes_on_after_a_daemon_crash(daemon: DaemonProcess, tmp_path: Path) -> None:
    need("pilotkit-optuna", importlib.util.find_spec("pilotkit_optuna") is not None, "pip install plugins/optuna")
    import optuna

    pilot = daemon.submit(write_spec(tmp_path, SPEC))
    wait_for(lambda: daemon.status(pilot)["progress"]["done"] >= 3, 60, "three trials done")
    workdir = Path(daemon.status(pilot)["workdir"])
    daemon.kill9()
    before = {r.task: r for r in read_results(workdir / "results.jsonl")}
    daemon.start()
    summary = daemon.wait_state(pilot, {"done"}, timeout=60)
    assert summary["progress"]["done"] == 10 and summary["progress"]["total"] == 10
    after = read_results(workdir / "results.jsonl")
    assert sorted(r.task for r in after) == [f"t-{i}" for i in range(10)]
    for r in after:
        if r.task in before:
            assert r.attempts == before[r.task].attempts  # not run again
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(workdir / "search" / "t.journal"))
    )
    study = optuna.load_study(study_name="t", storage=storage)
    assert [t.number for t in study.trials] == list(range(10))
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
