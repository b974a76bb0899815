"""Adaptive search with real Optuna and real trial processes on the local pilot: TPE
against random search, ASHA pruning, a kill -9 and --resume, bad search tables."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from pilotkit.events import TaskReport
from pilotkit.results import read_results
from pilotkit.states import PilotState
from pilotkit.testing import need
from pilotkit.testing.plugin import RunSpec

HERE = Path(__file__).resolve().parent
QUADRATIC = HERE / "quadratic.py"
OPTIMUM = {"x": 1.5, "y": -0.5, "z": 2.0}
PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]


def spec(*, sampler: str = "tpe", trials: int = 40, pruner: str = "none", steps: int = 0, sleep: float = 0.0,
         seed: int = 1, extra: str = "") -> str:  # fmt: skip
    return f"""name = "tune"
[resources]
cores = 2
[pilot]
grace = "2s"
[[app.groups]]
name = "t"
command = "{sys.executable} {QUADRATIC} --x {{x}} --y {{y}} --z {{z}} --steps {steps} --sleep {sleep}"
[app.groups.search]
sampler = "{sampler}"
trials = {trials}
objective = "loss"
pruner = "{pruner}"
seed = {seed}
report_interval = "0.05s"
{extra}[app.groups.search.params]
x = {{ uniform = [-5, 5] }}
y = {{ uniform = [-5, 5] }}
z = {{ uniform = [-5, 5] }}
"""


def quadratic(p: dict[str, float]) -> float:
    return sum((p[k] - v) ** 2 for k, v in OPTIMUM.items())


def random_search_best(trials: int, seed: int) -> float:
    """The best loss of one random search of ``trials`` trials (in-process: the same
    sampler and budget, no processes)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(lambda t: quadratic({k: t.suggest_float(k, -5, 5) for k in OPTIMUM}), n_trials=trials)
    return float(study.best_value)


def best(results: list) -> float:  # type: ignore[type-arg]
    return min(r.metrics["loss"] for r in results if r.outcome == "ok")


async def test_tpe_beats_the_median_random_search(run_spec: RunSpec) -> None:
    run = await run_spec(spec(sampler="tpe", trials=40, seed=0))
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    assert len(results) == 40 and {r.outcome for r in results} == {"ok"}
    assert sorted(r.task for r in results) == [f"t-{i:02d}" for i in range(40)]
    for r in results:
        assert r.metrics["loss"] == pytest.approx(quadratic(r.params))
    tpe = best(results)
    randoms = [random_search_best(40, seed) for seed in range(10)]
    median = statistics.median(randoms)
    print(f"\nTPE best loss {tpe:.3f}; random search best over 10 seeds: median {median:.3f}, "
          f"min {min(randoms):.3f}, max {max(randoms):.3f}")
    assert tpe < median
    study = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run.workdir / "search" / "t.journal"))))  # fmt: skip
    assert len(study.trials) == 40 and study.best_value == pytest.approx(tpe)
    summary = [e.message for e in run.events if getattr(e, "source", None) == "search"]
    assert summary and "40 trial(s) asked, 40 told" in summary[-1]


async def test_asha_prunes_and_saves_task_time(run_spec: RunSpec) -> None:
    plain = await run_spec(spec(trials=40, steps=8, sleep=0.03, seed=2), workdir=None)
    plain_results = plain.results()
    pruned = await run_spec(spec(trials=40, steps=8, sleep=0.03, seed=2, pruner="asha"),
                            workdir=plain.workdir.with_name("asha"))  # fmt: skip
    assert pruned.state is PilotState.DONE, pruned.reason
    results = pruned.results()
    outcomes = [r.outcome for r in results]
    assert len(results) == 40 and set(outcomes) <= {"ok", "pruned"}
    n_pruned = outcomes.count("pruned")
    plain_time = sum(r.duration for r in plain_results)
    pruned_time = sum(r.duration for r in results)
    print(f"\nASHA: {n_pruned}/40 pruned; task time {pruned_time:.1f}s vs {plain_time:.1f}s without; "
          f"best {best(results):.3f} vs {best(plain_results):.3f}")
    assert n_pruned >= 10
    assert pruned_time < plain_time
    assert best(results) < best(plain_results) + 3.0  # the loss ranges over 0..~90
    reports = [e for e in pruned.events if isinstance(e, TaskReport)]
    assert reports and any(e.pruned for e in reports)
    for r in results:
        if r.outcome == "pruned":
            assert r.exit_code != 0  # stopped by its SIGTERM (None: by the signal)


async def test_grid_sampler_stops_at_the_end_of_its_grid(run_spec: RunSpec) -> None:
    text = spec(sampler="grid", trials=10).replace(
        "x = { uniform = [-5, 5] }\ny = { uniform = [-5, 5] }\nz = { uniform = [-5, 5] }",
        "x = { choice = [1.5, 0] }\ny = { choice = [-0.5, 1] }\nz = { randint = [2, 2] }",
    )
    run = await run_spec(text)
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    assert len(results) == 4 and best(results) == 0
    assert sorted((r.params["x"], r.params["y"]) for r in results) == [(0, -0.5), (0, 1), (1.5, -0.5), (1.5, 1)]


async def test_a_trial_that_fails_is_told_failed(run_spec: RunSpec, tmp_path: Path) -> None:
    script = tmp_path / "flaky.py"
    script.write_text(
        "import json, os, sys\nx = float(sys.argv[1])\n"
        "if x > 0: sys.exit(3)\n"
        "open(os.environ['PILOTKIT_METRICS'], 'a').write(json.dumps({'loss': -x}) + '\\n')\n"
    )
    text = (f'name = "f"\n[resources]\ncores = 2\n[[app.groups]]\nname = "f"\ncommand = "{sys.executable} {script} {{x}}"\n'
            '[app.groups.search]\nsampler = "random"\ntrials = 8\nobjective = "loss"\nseed = 2\n'
            "[app.groups.search.params]\nx = { uniform = [-1, 1] }\n")  # fmt: skip
    run = await run_spec(text)
    results = run.results()
    assert len(results) == 8
    failed = [r for r in results if r.outcome == "failed"]
    assert failed and all(r.params["x"] > 0 for r in failed) and all(r.attempts == 1 for r in failed)
    study = optuna.load_study(study_name="f", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run.workdir / "search" / "f.journal"))))  # fmt: skip
    states = {t.number: t.state.name for t in study.trials}
    assert sorted(n for n, s in states.items() if s == "FAIL") == sorted(int(r.task[2:]) for r in failed)
    assert run.state is PilotState.FAILED


RUN_ENV = {**os.environ, "PILOTKIT_SOCKET": "/nonexistent"}


def killed_after(tmp_path: Path, text: str, results: int) -> tuple[Path, Path]:
    """``pilotkit run`` of ``text`` killed with -9 once ``results`` results are in: (the
    spec file, the workdir)."""
    spec_path = tmp_path / "tune.toml"
    spec_path.write_text(text)
    workdir = tmp_path / "run"
    proc = subprocess.Popen([*PILOTKIT, "run", "--quiet", "--workdir", str(workdir), str(spec_path)],
                            env=RUN_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    path = workdir / "results.jsonl"
    deadline = time.monotonic() + 60
    while not (path.exists() and len(path.read_text().splitlines()) >= results) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return spec_path, workdir


def resume(spec_path: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PILOTKIT, "run", "--quiet", "--resume", "--workdir", str(workdir), str(spec_path)],
                          env=RUN_ENV, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_kill_9_then_resume_loses_and_repeats_no_trial(tmp_path: Path) -> None:
    spec_path, workdir = killed_after(tmp_path, spec(trials=16, steps=4, sleep=0.1, seed=5), 5)
    results = workdir / "results.jsonl"
    env = RUN_ENV
    before = {r.task: r for r in read_results(results)}
    assert 5 <= len(before) < 16
    resumed = resume(spec_path, workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "best trial: t-" in resumed.stderr
    after = read_results(results)
    tasks = [r.task for r in after]
    assert sorted(tasks) == [f"t-{i:02d}" for i in range(16)]  # none lost, none twice
    for r in after:
        if r.task in before:
            assert r == before[r.task]  # finished before the kill: not run again
        assert r.metrics["loss"] == pytest.approx(quadratic(r.params))
    study = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(workdir / "search" / "t.journal"))))  # fmt: skip
    assert [t.number for t in study.trials] == list(range(16))
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    for t in study.trials:  # each trial ran with the parameters the study gave it
        (r,) = [r for r in after if r.task == f"t-{t.number:02d}"]
        assert r.params == pytest.approx(t.params) and t.value == pytest.approx(r.metrics["loss"])
    listed = json.loads(subprocess.run([*PILOTKIT, "results", str(workdir), "--json"], env=env,
                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
    assert [row["metrics"]["loss"] for row in listed] == sorted(row["metrics"]["loss"] for row in listed)


def test_a_trial_killed_while_being_asked_is_finished_not_skipped(tmp_path: Path) -> None:
    """A kill -9 between Optuna's writes of a new trial and of its parameters leaves a
    running trial with some parameters: ``--resume`` draws the rest and runs it under its
    own number, so no trial number is skipped and none is left failed."""
    spec_path, workdir = killed_after(tmp_path, spec(trials=8, sleep=0.3, seed=3), 2)
    results = workdir / "results.jsonl"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(workdir / "search" / "t.journal")))  # fmt: skip
    study = optuna.load_study(study_name="t", storage=storage)
    torn = study.ask()  # what the killed run's ask had written: the trial and one parameter
    x = torn.suggest_float("x", -5, 5)
    resumed = resume(spec_path, workdir)
    assert resumed.returncode == 0, resumed.stderr
    after = read_results(results)
    assert sorted(r.task for r in after) == [f"t-{i}" for i in range(8)]  # none skipped, none twice
    (finished,) = [r for r in after if r.task == f"t-{torn.number}"]
    assert finished.params["x"] == x and set(finished.params) == {"x", "y", "z"}
    assert finished.metrics["loss"] == pytest.approx(quadratic(finished.params))
    study = optuna.load_study(study_name="t", storage=storage)
    assert [t.number for t in study.trials] == list(range(8))
    assert {t.state.name for t in study.trials} == {"COMPLETE"}


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ('sampler = "tpe"', 'sampler = "tpee"', "unknown sampler 'tpee' (did you mean 'tpe'?)"),
        ('pruner = "none"', 'pruner = "ashaa"', "unknown pruner 'ashaa'"),
        ('objective = "loss"', 'objective = "loss"\ndirection = "down"', "'down': expected minimize or maximize"),
        ('sampler = "tpe"', 'sampler = "grid"', "the grid sampler needs choice"),
        ("x = { uniform = [-5, 5] }", "x = { uniform = [5, -5] }", "uniform needs [low, high]"),
        ('objective = "loss"', 'objective = ["loss", "acc"]\ndirection = ["minimize", "maximize"]\n'
         'pruner = "median"', "pruning needs a single objective"),
    ],
)
def test_bad_search_tables_are_located(tmp_path: Path, change: str, key: str, message: str) -> None:
    text = spec().replace('pruner = "none"\n', "")
    text = text.replace(change, key) if change in text else text.replace('objective = "loss"', f'objective = "loss"\n{key}')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = subprocess.run([*PILOTKIT, "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and str(path) in out.stderr and "Traceback" not in out.stderr
    line = next(x for x in out.stderr.splitlines() if message in x)
    assert "app.groups[0].search" in line and f"{path}:" in line


def test_html_report_draws_optunas_plots_with_plotly(tmp_path: Path) -> None:
    """With plotly, ``pilotkit results --html`` has Optuna's plots of the study (plotly.js
    inline, nothing fetched); without it (made here with ``sys.modules['plotly'] = None``:
    a fake absence) the inline SVG ones."""
    need("plotly", importlib.util.find_spec("plotly") is not None, "pip install 'pilotkit-optuna[plots]'")
    (tmp_path / "tune.toml").write_text(spec(trials=6, steps=3))
    workdir = tmp_path / "run"
    ran = subprocess.run([*PILOTKIT, "run", "--quiet", "--workdir", str(workdir), str(tmp_path / "tune.toml")],
                         env={**os.environ, "PILOTKIT_SOCKET": "/nonexistent"}, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    report = tmp_path / "r.html"
    out = subprocess.run([*PILOTKIT, "results", str(workdir), "--html", str(report)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = report.read_text()
    assert text.count("plotly-graph-div") == 4  # history, slices, importances, intermediate values
    assert "Optimization History Plot" in text and "Intermediate Values Plot" in text
    assert "loss against trial" not in text  # not the SVG ones
    assert "src=\"http" not in text and "<td>t-5</td>" in text
    code = ("import sys; sys.modules['plotly'] = None; sys.argv[0] = 'pilotkit'; "
            "from pilotkit.cli.main import main; main()")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, "results", str(workdir), "--html", str(report)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = report.read_text()
    assert "plotly-graph-div" not in text and text.count("<title>loss against") == 4  # trial, x, y, z


async def test_reports_of_a_trial_quicker_than_the_poller_reach_the_study(run_spec: RunSpec) -> None:
    """Every intermediate report is told before the trial's end, even when the poller
    (``report_interval``) never saw the trial running."""
    text = spec(trials=3, steps=4).replace('report_interval = "0.05s"', 'report_interval = "30s"')
    run = await run_spec(text)
    assert run.state is PilotState.DONE, run.reason
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run.workdir / "search" / "t.journal"))
    )
    trials = optuna.load_study(study_name="t", storage=storage).trials
    assert [sorted(t.intermediate_values) for t in trials] == [[0, 1, 2, 3]] * 3
