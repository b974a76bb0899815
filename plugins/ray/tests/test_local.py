"""Ray pilots on this machine (the default local provider), with real Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pilotkit_ray.connection import read_info

from pilotkit.api import PilotState
from pilotkit.testing import RunSpec

from .conftest import FAST, need_ray, ray_processes

pytestmark = pytest.mark.ray
PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]


@pytest.fixture(autouse=True)
def _ray() -> None:
    need_ray()


async def test_script_runs_on_the_cluster_and_its_exit_code_decides(
    run_spec: RunSpec, tmp_path: Path
) -> None:
    script = tmp_path / "analysis.py"
    script.write_text(
        "import json, os, sys, ray\n"
        "ray.init()\n"
        "@ray.remote\n"
        "def square(x):\n"
        "    return x * x\n"
        "total = sum(ray.get([square.remote(i) for i in range(10)]))\n"
        "print(json.dumps({'address': os.environ['RAY_ADDRESS'], 'total': total,\n"
        "                  'resources': ray.cluster_resources()}))\n"
        "sys.exit(3)\n"
    )
    spec = f'name = "ray-fails"\n[pilot]\ngrace = "10s"\n[app]\ntype = "ray"\nscript = "{script}"\n{FAST}'
    nodes = []
    run = await run_spec(spec, on_pilot=lambda pilot: nodes.append(pilot))
    assert run.state is PilotState.FAILED, run.reason
    assert run.reason == "1 task(s) failed"
    by_task = {r.task: r for r in run.results()}
    assert by_task["ray-script"].exit_code == 3
    assert by_task["ray-head"].status == "stopped"
    out = json.loads(Path(by_task["ray-script"].stdout).read_text().splitlines()[-1])
    info = read_info(run.workdir)
    assert out["address"] == info.address and out["total"] == 285
    node = nodes[0].nodes[0]
    resources = out["resources"]
    assert resources["CPU"] == node.cores, "exactly the cores the agent found"
    assert resources["memory"] + resources["object_store_memory"] == pytest.approx(node.memory, rel=0.01)
    assert resources["object_store_memory"] == 80 * 1024**2
    assert info.state == "stopped" and info.mode == "batch"
    assert ray_processes(run.pilot_id) == [], "Ray is stopped when the pilot ends"
    assert info.temp_dir is not None and not Path(info.temp_dir).exists()


def test_bad_spec_is_one_located_line_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "bad"\n[app]\ntype = "ray"\nmode = "interactive"\nobject_store_memory = "1MiB"\n')
    done = subprocess.run([*PILOTKIT, "validate", str(spec)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {spec}:5: app.object_store_memory: Ray needs at least 75MiB"
    spec.write_text('name = "bad"\n[app]\ntype = "ray"\nscript = "gone.py"\n')
    done = subprocess.run([*PILOTKIT, "run", str(spec)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {spec}:4: app.script: no such file: {tmp_path / 'gone.py'}"
