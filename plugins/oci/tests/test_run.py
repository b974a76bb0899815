"""The wrapper's argument parsing (its running is covered by test_runc.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from pilotkit_oci.run import parse_args
from pilotkit_oci.runtime import WRAPPER


def test_parse_args() -> None:
    argv = ["--runc", "/usr/sbin/runc", "--root", "/r", "--bundles", "/b", "--config", "{}"]
    assert parse_args(argv) == (
        {"--runc": "/usr/sbin/runc", "--root": "/r", "--bundles": "/b", "--config": "{}"},
        [],
    )
    assert parse_args([*argv, "--", "--no-new-keyring"])[1] == ["--no-new-keyring"]


@pytest.mark.parametrize(
    "argv", [[], ["--runc", "x"], ["--runc", "x", "--root", "r", "--bundles", "b", "--cfg", "{}"]]
)
def test_parse_args_refuses_anything_else(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match="usage"):
        parse_args(argv)


def test_a_missing_runc_exits_127_and_cleans_up(tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    argv = ["--runc", str(tmp_path / "no-runc"), "--root", str(tmp_path / "r"), "--bundles", str(bundles)]
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(WRAPPER), *argv, "--config", "{}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 127
    assert "cannot run" in done.stderr
    deadline = time.monotonic() + 10
    while any(bundles.iterdir()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
