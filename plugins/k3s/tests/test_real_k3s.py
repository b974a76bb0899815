"""A real k3s: a 1-node cluster, one Job, its log collected, and a node that keeps
nothing after evict. Runs wherever ``k3s`` is on PATH (and the preflight passes);
elsewhere it skips saying why. k3s is in neither Debian nor PyPI, so CI has none: this
is not a PILOTKIT_REQUIRE_REAL failure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pilotkit_k3s.preflight import render, run_checks

from pilotkit.api import PilotState
from pilotkit.testing import RunSpec

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "hello"},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "echo hello from k3s"]}
                ],
            }
        },
    },
}


def _real_k3s() -> None:
    if shutil.which("k3s") is None:
        pytest.skip(
            "no k3s on PATH (k3s is in neither Debian nor PyPI; put a release binary on PATH to run this)"
        )
    report = run_checks()
    if report.missing:
        pytest.skip("k3s is on PATH but this machine cannot run it:\n" + render(report))


async def test_real_k3s_one_node_one_job(run_spec: RunSpec, tmp_path: Path) -> None:
    _real_k3s()
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    data = tmp_path / "k3s-data"
    spec = (
        'name = "k3s-real"\n[provider]\ntype = "local"\n[app]\ntype = "k3s"\n'
        f'manifests = ["{tmp_path / "job.yaml"}"]\ndata_dir = "{data}"\n'
    )
    run = await run_spec(spec, workdir=tmp_path / "run")
    assert run.state is PilotState.DONE, run.reason
    (result,) = [r for r in run.results() if r.task == "job-hello"]
    assert result.exit_code == 0
    assert "hello from k3s" in (tmp_path / "run" / "tasks" / "job-hello" / "attempt-1.out").read_text()
    assert not data.exists() or not any(data.iterdir()), "the node keeps nothing"
    assert not Path("/sys/class/net/cni0").exists() and not Path("/sys/class/net/flannel.1").exists()
