"""Ray pilots on this machine (the default local provider), with real Ray."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest
from pilotkit_ray.connection import read_info
from pilotkit_ray.progress import SUMMARY_PATH, parse_summary

from pilotkit.api import AppProgress, PilotState
from pilotkit.testing import Pilot, RunSpec, need
from pilotkit.testing.localdaemon import PILOTKIT, local_daemon, until

from .conftest import EXAMPLES, FAST, need_ray, ray_processes

pytestmark = pytest.mark.ray


@pytest.fixture(autouse=True)
def _ray() -> None:
    need_ray()


def load_example() -> ModuleType:
    """``share/examples/ray_scan.py`` as a module (its fit is the reference)."""
    spec = importlib.util.spec_from_file_location("ray_scan_example", EXAMPLES / "ray_scan.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_spec(max_mse: str) -> str:
    """The example's spec, with its script's path made absolute and another threshold."""
    example = tomllib.loads((EXAMPLES / "ray-scan.toml").read_text())
    app = example["app"]
    args = [max_mse if a == "0.05" else a for a in app["args"]]
    return (
        f'name = "ray-scan"\n[pilot]\ngrace = "10s"\n[app]\ntype = "ray"\n'
        f'script = "{EXAMPLES / app["script"]}"\nargs = {json.dumps(args)}\ndashboard = true\n{FAST}'
    )


async def test_example_scan_and_its_exit_code_decides(run_spec: RunSpec, tmp_path: Path) -> None:
    pilots: list[Pilot] = []
    run = await run_spec(example_spec("1e-9"), on_pilot=pilots.append)
    assert run.state is PilotState.FAILED, run.reason
    assert run.reason == "1 task(s) failed"
    by_task = {r.task: r for r in run.results()}
    assert by_task["ray-script"].exit_code == 1, "no fit reaches 1e-9: the script's exit code is the result"
    assert by_task["ray-head"].status == "stopped"
    assert "15 fits on 1 node(s)" in Path(by_task["ray-script"].stdout).read_text()
    result = json.loads((run.workdir / "tasks" / "ray-script" / "scan.json").read_text())
    fit = load_example().fit
    for done in result["fits"]:
        expected = fit(done["degree"], done["alpha"], 400, 0)["val_mse"]
        assert done["val_mse"] == pytest.approx(expected, rel=1e-9)
    assert result["best"]["val_mse"] == min(f["val_mse"] for f in result["fits"])
    node = pilots[0].nodes[0]
    resources = result["resources"]
    assert resources["CPU"] == node.cores, "exactly the cores the agent found"
    assert resources["memory"] + resources["object_store_memory"] == pytest.approx(node.memory, rel=0.01)
    assert resources["object_store_memory"] == 80 * 1024**2
    info = read_info(run.workdir)
    assert info.state == "stopped" and info.mode == "batch"
    assert info.dashboard is not None and info.dashboard.startswith("http://")
    progress = [e for e in run.events if isinstance(e, AppProgress) and e.name == "fit"]
    assert progress and progress[-1].total == progress[-1].done == 15, progress[-1:]
    assert {e.app for e in progress} == {"ray"}
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


def _state(workdir: Path) -> str | None:
    try:
        return read_info(workdir).state
    except Exception:
        return None


def _running_tasks(dashboard: str) -> int:
    """Running tasks, from Ray's state API on the pilot's dashboard."""
    with urllib.request.urlopen(dashboard + SUMMARY_PATH, timeout=10) as answer:
        return sum(counts[3] for counts in parse_summary(json.load(answer)).values())


def test_interactive_by_pilot_id_through_the_daemon_and_drain_waits_for_running_tasks(tmp_path: Path) -> None:
    spec = tmp_path / "interactive.toml"
    spec.write_text(
        f'name = "ray-interactive"\n[pilot]\ngrace = "10s"\n[app]\ntype = "ray"\nmode = "interactive"\ndashboard = true\n{FAST}'
    )
    workdir = tmp_path / "pilot"
    with local_daemon(tmp_path) as daemon:
        cli = daemon.cli
        submitted = cli("submit", "--workdir", str(workdir), str(spec))
        assert submitted.returncode == 0, submitted.stderr
        pilot = submitted.stdout.strip()
        until(lambda: _state(workdir) == "running", 90, "Ray")
        connect = cli("ray", "connect", "--json", pilot)
        assert connect.returncode == 0, connect.stderr
        data = json.loads(connect.stdout)
        assert data["pilot"] == pilot and data["state"] == "running" and data["client"].startswith("ray://")
        assert [n["name"] for n in data["nodes"]] == [n.name for n in read_info(workdir).nodes]
        plain = cli("ray", "connect", pilot)
        assert plain.stdout.strip() == data["client"] and data["address"] in plain.stderr
        described = cli("describe", pilot)
        assert described.returncode == 0, described.stderr
        services = described.stdout.split("\nServices\n", 1)[1].split("\nFiles", 1)[0].splitlines()
        assert [line.split() for line in services] == [
            ["Ray", "client", data["client"]], ["Ray", "address", data["address"]],
            ["Ray", "dashboard", data["dashboard"]],
        ], described.stdout  # fmt: skip
        # A driver on this machine, outside the pilot's tasks (the Ray Client through a
        # tunnel is tested in test_connect.py), with a task still running at the drain.
        driver = subprocess.Popen(
            [sys.executable, "-c", SLOW, data["address"]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert ray_processes(pilot), "Ray runs, with the pilot's mark"
            until(lambda: _running_tasks(data["dashboard"]) == 1, 60, "the slow task to run")
            assert cli("drain", pilot).returncode == 0
            out, err = driver.communicate(timeout=60)
        finally:
            driver.kill()
        assert driver.returncode == 0, err[-2000:]
        assert json.loads(out.splitlines()[-1]) == {"slow": "done"}, "Ray stayed up for it after the drain"
        until(lambda: _state(workdir) == "stopped", 60, "Ray to stop")
        until(lambda: not ray_processes(pilot), 30, "no Ray process")
        info = read_info(workdir)
        assert info.temp_dir is not None and not Path(info.temp_dir).exists()
        stopped = cli("ray", "connect", pilot)
        assert stopped.returncode == 2 and "is stopped" in stopped.stderr
        assert "Services" not in cli("describe", pilot).stdout, "a stopped cluster serves nothing"


async def test_walltime_drain_gives_the_script_its_grace(run_spec: RunSpec, tmp_path: Path) -> None:
    script = tmp_path / "long.py"
    script.write_text(LONG)
    spec = (
        f'name = "ray-walltime"\n[resources]\nwalltime = "30s"\n[pilot]\ndrain_margin = "6s"\ngrace = "5s"\n'
        f'[app]\ntype = "ray"\nscript = "{script}"\nargs = ["{tmp_path}"]\n{FAST}'
    )
    run = await run_spec(spec)
    assert run.state is PilotState.WALLTIME_EXPIRED, run.reason
    assert (tmp_path / "started").exists(), "the script ran on Ray before the walltime"
    assert (tmp_path / "terminated").exists(), "it was told to stop (SIGTERM) and had time to say so"
    assert ray_processes(run.pilot_id) == []
    assert read_info(run.workdir).state == "stopped"


SLOW = """
import json, sys, time, ray
ray.init(sys.argv[1])
@ray.remote
def slow():
    time.sleep(5)
    return "done"
print(json.dumps({"slow": ray.get(slow.remote())}))
"""

LONG = """
import pathlib, signal, sys, time, ray
out = pathlib.Path(sys.argv[1])
def stop(signum, frame):
    (out / "terminated").write_text(str(time.time()))
    sys.exit(0)
ray.init()
signal.signal(signal.SIGTERM, stop)  # after ray.init(), which installs its own
@ray.remote
def forever():
    time.sleep(600)
ref = forever.remote()
(out / "started").write_text(str(time.time()))
while True:
    ray.wait([ref], timeout=0.2)
"""


async def test_ray_gets_the_nodes_gpus_and_mig_slices_fake_nvml(
    run_spec: RunSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GPU here: NVML is a fake (one whole GPU, one in MIG mode with 2 instances);
    Ray itself is real and is started with what the agent found."""
    from pilotkit import probe
    from pilotkit.gpu import detect_gpus
    from pilotkit.testing.fake_nvml import FakeGpu, FakeNVML

    nvml = FakeNVML([FakeGpu(), FakeGpu(mig_enabled=True, mig_instances=2)])
    monkeypatch.setattr(probe, "gpu_report", lambda: detect_gpus(nvml=nvml, env={}))
    script = tmp_path / "gpus.py"
    script.write_text(GPUS)
    pilots: list[Pilot] = []
    spec = f'name = "ray-gpus"\n[pilot]\ngrace = "10s"\n[app]\ntype = "ray"\nscript = "{script}"\n{FAST}'
    run = await run_spec(spec, on_pilot=pilots.append)
    assert run.state is PilotState.DONE, run.reason
    gpus = pilots[0].nodes[0].gpus
    assert len(gpus) == 3 and sum(g.uuid.startswith("MIG-") for g in gpus) == 2
    (script_result,) = [r for r in run.results() if r.task == "ray-script"]
    seen = json.loads(Path(script_result.stdout).read_text().splitlines()[-1])
    assert seen["resources"]["GPU"] == 3
    assert seen["resources"]["MIG"] == 2
    assert sorted(seen["visible"]) == sorted(g.uuid for g in gpus), "each GPU task got one of the node's GPUs"


GPUS = """
import json, os, ray
ray.init()
@ray.remote(num_gpus=1, num_cpus=0)
def visible():
    import time
    time.sleep(2)
    return os.environ["CUDA_VISIBLE_DEVICES"]
print(json.dumps({"resources": ray.cluster_resources(), "visible": ray.get([visible.remote() for _ in range(3)])}))
"""


async def test_modin_example_runs_pandas_code_on_ray(run_spec: RunSpec, tmp_path: Path) -> None:
    """share/examples/modin-ray.toml, smaller: Modin's group-by on Ray gives pandas' answer."""
    need("Modin", importlib.util.find_spec("modin") is not None, "pip install 'pilotkit-ray[modin]'")
    need("pyarrow", importlib.util.find_spec("pyarrow") is not None, "pip install 'pilotkit-ray[modin]'")
    example = tomllib.loads((EXAMPLES / "modin-ray.toml").read_text())["app"]
    spec = (
        f'name = "modin-ray"\n[pilot]\ngrace = "10s"\n[app]\ntype = "ray"\n'
        f'script = "{EXAMPLES / example["script"]}"\nargs = ["--rows", "50000"]\n{FAST}'
    )
    run = await run_spec(spec)
    by_task = {r.task: r for r in run.results()}
    assert run.state is PilotState.DONE, (run.reason, Path(by_task["ray-script"].stderr).read_text()[-2000:])
    summary = json.loads((run.workdir / "tasks" / "ray-script" / "summary.json").read_text())
    assert summary["same_as_pandas"] is True and summary["rows"] == 50000
    assert 0 < summary["selected"] < 50000 and summary["groups"] > 10
    assert summary["resources"]["CPU"] >= 1
    assert ray_processes(run.pilot_id) == []
