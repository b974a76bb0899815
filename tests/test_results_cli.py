"""``pilotkit results`` on a finished run directory (no daemon), and the best trial in
the run summary."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilotkit.testing import need
from pilotkit.testing.plugin import RunSpec

PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]

SPEC = """name = "r"
[[app.groups]]
name = "g"
shell = true
command = "echo '{{\\"loss\\": {a}, \\"acc\\": {b}}}' >> \\"$PILOTKIT_METRICS\\""
[app.groups.grid]
a = [0.5, 0.25]
b = [1, 2]
[[app.groups]]
name = "bad"
commands = ["false"]
"""


def results(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PILOTKIT, "results", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PILOTKIT_SOCKET": "/nonexistent"})  # fmt: skip


@pytest.fixture
async def rundir(run_spec: RunSpec) -> Path:
    run = await run_spec(SPEC)
    return run.workdir


def test_table_sorted_filtered_and_exported(rundir: Path) -> None:
    table = results(str(rundir), "--sort", "loss").stdout.splitlines()
    assert table[0].split() == ["task", "outcome", "duration", "a", "b", "loss", "acc"]
    assert [line.split()[0] for line in table[1:]] == ["g-2", "g-3", "g-0", "g-1", "bad-0"]
    assert table[-1].split()[1] == "failed"
    rows = json.loads(results(str(rundir), "--json", "--sort", "acc", "--desc", "--where", "loss<0.3").stdout)
    assert [(r["task"], r["metrics"]) for r in rows] == [("g-3", {"loss": 0.25, "acc": 2}), ("g-2", {"loss": 0.25, "acc": 1})]
    assert json.loads(results(str(rundir), "--json", "--where", "outcome=failed").stdout)[0]["task"] == "bad-0"
    assert len(json.loads(results(str(rundir), "--json", "--top", "2", "--sort", "loss").stdout)) == 2
    parsed = list(csv.DictReader(io.StringIO(results(str(rundir), "--csv").stdout)))
    assert parsed[0]["task"] == "bad-0" and parsed[1]["loss"] == "0.5" and parsed[1]["outcome"] == "ok"


def test_bad_input_is_one_line_and_exit_2(rundir: Path, tmp_path: Path) -> None:
    bad = results(str(rundir), "--where", "loss~1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--where" in bad.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = results(str(empty))
    assert missing.returncode == 2 and "no results.jsonl" in missing.stderr and "Traceback" not in missing.stderr


def test_newest_run_under_pilotkit_runs_by_default(rundir: Path, tmp_path: Path) -> None:
    (tmp_path / "pilotkit-runs").mkdir()
    os.symlink(rundir, tmp_path / "pilotkit-runs" / "r-1")
    out = results("--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 5


def test_plot_draws_the_metric_against_trial_and_parameters(rundir: Path) -> None:
    need("plotext", importlib.util.find_spec("plotext") is not None, "pip install 'pilotkit[plot]'")
    out = results(str(rundir), "--plot", "--sort", "loss")
    assert out.returncode == 0, out.stderr
    assert "loss against trial" in out.stdout and "loss against a" in out.stdout and "loss against b" in out.stdout
    assert "\x1b[" not in out.stdout  # no colours off a terminal
    bare = results(str(rundir), "--plot")
    assert bare.returncode == 2 and "--sort KEY" in bare.stderr


def test_html_report_is_self_contained(rundir: Path, tmp_path: Path) -> None:
    out = results(str(rundir), "--html", str(tmp_path / "r.html"), "--sort", "loss")
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "r.html").read_text()
    assert text.count("<svg") == 3  # against trial, a and b
    assert "best trial: <b>g-2</b> loss = 0.25" in text and "<td>bad-0</td>" in text
    assert "<script" not in text and "src=" not in text and "href=" not in text
    bad = results(str(rundir), "--html", str(tmp_path / "no" / "such" / "r.html"))
    assert bad.returncode == 2 and "cannot write" in bad.stderr and "Traceback" not in bad.stderr


def test_parquet_export_keeps_the_columns_and_their_types(rundir: Path, tmp_path: Path) -> None:
    need("pyarrow", importlib.util.find_spec("pyarrow") is not None, "pip install 'pilotkit[parquet]'")
    import pyarrow.parquet as pq

    out = results(str(rundir), "--parquet", str(tmp_path / "r.parquet"), "--sort", "loss", "--where", "outcome=ok")
    assert out.returncode == 0, out.stderr
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.column_names == ["task", "group", "outcome", "duration", "attempts", "node", "a", "b", "loss", "acc"]
    rows = table.to_pylist()
    assert [r["task"] for r in rows] == ["g-2", "g-3", "g-0", "g-1"]
    assert rows[0]["loss"] == 0.25 and rows[0]["acc"] == 1 and isinstance(rows[0]["duration"], float)
    assert str(table.schema.field("loss").type) == "double" and str(table.schema.field("acc").type) == "int64"
    bad = results(str(rundir), "--parquet", str(tmp_path / "no" / "such" / "r.parquet"))
    assert bad.returncode == 2 and "cannot write" in bad.stderr and "Traceback" not in bad.stderr


def test_parquet_without_pyarrow_names_the_extra_fake_missing_module(rundir: Path, tmp_path: Path) -> None:
    """pyarrow is installed here, so its absence is made with ``sys.modules['pyarrow'] = None``."""
    code = ("import sys; sys.modules['pyarrow'] = None; sys.argv[0] = 'pilotkit'; "
            "from pilotkit.cli.main import main; main()")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, "results", str(rundir), "--parquet", str(tmp_path / "r.parquet")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "pilotkit[parquet]" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r.parquet").exists()


def test_the_mpi_apps_search_is_found_in_a_spec() -> None:
    from pilotkit.trials import Objective, objective_in, searches_in

    toml = {"app": {"type": "mpi", "search": {"sampler": "gp", "objective": "t", "direction": "maximize"}}}
    recorded = {"app": {"type": "mpi", "options": {"name": "sweep", "search": {"objective": ["t", "m"]}}}}
    assert objective_in(toml) == Objective("t", "maximize") and searches_in(toml) == [("mpi", "gp")]
    assert objective_in(recorded) == Objective("t", "minimize") and searches_in(recorded) == [("sweep", "tpe")]
