"""The benchmark command (share/bench/bench.py) runs end to end on a tiny N: its row 1
prints pilotkit, xargs and their ratio, a missing peer is a named skip, and a bad
``--only`` is one line. No timing is asserted: speed lives in the benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "share" / "bench" / "bench.py"


def bench(*args: str, tmp: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra)
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120, cwd=tmp, env=env
    )


def test_quick_row_1_prints_pilotkit_xargs_ratio_and_a_named_skip(tmp_path: Path) -> None:
    missing = tmp_path / "no-peers" / "bin" / "python"
    out = bench("--quick", "--only", "1", "--tasks", "20", "--peers-python", str(missing),
                "--json", str(tmp_path / "samples.json"), tmp=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "(1) 20 x /bin/true, 2 slots, local" in text
    assert "pilotkit: first start to last end" in text
    assert "pilotkit run: whole process" in text
    assert "xargs -P2: whole process" in text
    assert "ratio span / xargs" in text and "below 1 pilotkit is better" in text
    assert "goal: whole pilotkit run <= 1.3 x xargs:" in text
    assert f"skipped: HyperQueue not installed ({missing} does not exist): see share/bench/README.md" in text
    assert "Traceback" not in out.stderr
    record = json.loads((tmp_path / "samples.json").read_text())
    (row,) = record["rows"]
    assert row["row"] == 1 and row["error"] is None
    assert len(row["samples"]["pilotkit: first start to last end"]) == 1
    assert len(row["samples"]["xargs -P2: whole process"]) == 1
    assert len(row["ratios"]["ratio span / xargs"]) == 1
    assert row["skipped"] and "HyperQueue not installed" in row["skipped"][0]
    assert record["machine"]["cores"]


def test_peer_environment_without_hyperqueue_is_a_named_skip(tmp_path: Path) -> None:
    # A Python that exists but lacks the package: this test's own interpreter.
    out = bench("--quick", "--only", "2", "--tasks", "5", "--peers-python", sys.executable, tmp=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"skipped: HyperQueue not installed (no hyperqueue in {sys.executable}): see share/bench/README.md" in out.stdout
    assert "    pilotkit run " in out.stdout


def test_missing_test_cluster_is_a_named_skip(tmp_path: Path) -> None:
    out = bench("--quick", "--only", "4,5", tmp=tmp_path, PILOTKIT_TESTCLUSTER=str(tmp_path / "no-cluster"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("skipped: Slurm test cluster") == 2, out.stdout
    assert "pilotkit: 3 node agents ready" not in out.stdout


def test_bad_only_is_one_line_exit_2(tmp_path: Path) -> None:
    out = bench("--only", "1,42", tmp=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "bench.py: --only '1,42': expected row numbers among 1, 2, 3, 4, 5, 6, 7, 8, 9"
    ]
