"""``pilotkit deploy --app IMAGE``: the spec and manifest it writes, and that it runs them
with ``pilotkit run`` (here the real k3s app, which stops at the preflight where k3s is
missing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pilotkit_k3s.deploy import app_name

from pilotkit.testing import cli, load_spec, plugins_with


def test_names_from_images() -> None:
    assert app_name("daskdev/dask:latest") == "dask"
    assert app_name("ghcr.io/org/My_Tool@sha256:abc") == "my-tool"
    assert app_name("registry:5000/x/busybox:1.36") == "busybox"


def test_dry_run_writes_a_job_spec(tmp_path: Path) -> None:
    out = tmp_path / "d"
    result = CliRunner().invoke(
        cli,
        ["deploy", "--app", "daskdev/dask:latest", "--replicas", "6", "--gpus-per-replica", "1", "--nodes", "3",
         "--provider", "slurm", "--walltime", "1h", "--command", "sh", "--command", "-c", "--command", "echo hi",
         "--out", str(out), "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job = yaml.safe_load((out / "app.yaml").read_text())
    assert job["kind"] == "Job" and job["spec"]["parallelism"] == job["spec"]["completions"] == 6
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "daskdev/dask:latest" and container["command"] == ["sh", "-c", "echo hi"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert job["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    assert "&id" not in (out / "app.yaml").read_text()
    spec = load_spec(out / "pilot.toml", plugins_with(entry_points=True))
    assert spec.spec.resources.nodes == 3 and spec.app_options.mode == "batch"
    assert spec.app_options.manifests == ["app.yaml"]


def test_a_bare_walltime_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "d"
    result = CliRunner().invoke(
        cli, ["deploy", "--app", "busybox", "--walltime", "90", "--out", str(out), "--dry-run"]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--walltime': 90 has no unit: write '90s' or '90m'" in result.output
    assert not out.exists()


def test_deployment_stays_up(tmp_path: Path) -> None:
    out = tmp_path / "d"
    result = CliRunner().invoke(
        cli,
        [
            "deploy",
            "--app",
            "nginx",
            "--kind",
            "deployment",
            "--replicas",
            "2",
            "--out",
            str(out),
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    deployment = yaml.safe_load((out / "app.yaml").read_text())
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 2
    assert 'mode = "interactive"' in (out / "pilot.toml").read_text()


def test_deploy_runs_the_pilot(tmp_path: Path) -> None:
    if shutil.which("k3s") is not None:
        pytest.skip("k3s is on PATH: this test expects the preflight to refuse")
    result = CliRunner().invoke(
        cli, ["deploy", "--app", "busybox", "--out", str(tmp_path / "d"), "--workdir", str(tmp_path / "run")]
    )
    assert result.exit_code == 1, result.output
    assert "MISSING  k3s binary" in result.output
    assert (tmp_path / "run" / "results.jsonl").exists()
