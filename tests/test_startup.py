"""`pilotkit run` on the local default stays light: it must not import the dashboard,
SSH, Dask or other heavy packages, whatever plugins are installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import EXAMPLES

HEAVY = ("textual", "asyncssh", "dask", "distributed", "numpy", "cryptography")

PROBE = """
import json, runpy, sys
sys.argv = ["pilotkit", "run", "-q", "--workdir", sys.argv[1], sys.argv[2]]
try:
    runpy.run_module("pilotkit.cli.main", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_local_run_imports_nothing_heavy(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "w"), str(EXAMPLES / "hello.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    loaded = {name.split(".")[0] for name in report["modules"]}
    assert not loaded & set(HEAVY), f"pilotkit run imported {sorted(loaded & set(HEAVY))}"
