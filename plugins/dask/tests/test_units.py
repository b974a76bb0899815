"""The pure parts: worker layout, command lines, spec checks, progress, connection files,
the ``dask connect`` command on a working directory. No cluster is started."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from pilotkit_dask import DaskApp
from pilotkit_dask.commands import plan_workers, scheduler_argv, worker_argv
from pilotkit_dask.connection import (
    ConnectionInfo,
    WorkerInfo,
    dashboard_url,
    host_of,
    port_of,
    read_info,
    write_info,
)
from pilotkit_dask.datasets import dataset_file
from pilotkit_dask.options import DaskOptions
from pilotkit_dask.progress import ProgressTracker

from pilotkit.api import App, AppProgress, GpuInfo, NodeInfo, PilotkitError, SpecError, script_argv
from pilotkit.api import encode_event as encode
from pilotkit.testing import Plugins, cli, parse_spec
from pilotkit.testing.contracts import AppContract

from .conftest import need_dask

GiB = 1024**3


class TestDaskAppContract(AppContract):
    @pytest.fixture
    def app_cls(self) -> type[App]:
        return DaskApp


# --------------------------------------------------------------------------- layout and argv


def test_one_worker_per_cpu_node_with_all_its_cores() -> None:
    nodes = [
        NodeInfo(name="node1", cores=8, memory=32 * GiB),
        NodeInfo(name="node2", cores=4, memory=16 * GiB),
    ]
    plans = plan_workers(nodes)
    assert [(p.node, p.name, p.threads, p.cores, p.gpus, p.memory_limit) for p in plans] == [
        ("node1", "node1", 8, 8, 0, 32 * GiB),
        ("node2", "node2", 4, 4, 0, 16 * GiB),
    ]
    assert plans[0].task_id == "dask-worker-node1"
    assert [p.threads for p in plan_workers(nodes, threads=2)] == [2, 2]


def test_one_worker_per_gpu_sharing_the_node() -> None:
    gpus = [GpuInfo(index=i, uuid=f"GPU-{i}") for i in range(4)]
    nodes = [NodeInfo(name="gpu1", cores=16, memory=64 * GiB, gpus=gpus)]
    plans = plan_workers(nodes)
    assert [p.name for p in plans] == ["gpu1-gpu0", "gpu1-gpu1", "gpu1-gpu2", "gpu1-gpu3"]
    assert {(p.gpus, p.threads, p.memory_limit) for p in plans} == {(1, 1, 16 * GiB)}
    assert sum(p.cores for p in plans) <= 16
    argv = worker_argv("py", Path("/w/s.json"), plans[0], DaskOptions())
    assert argv[argv.index("--resources") + 1] == "GPU=1"


def test_scheduler_listens_on_the_head_node() -> None:
    argv = scheduler_argv("/usr/bin/python3", Path("/w/dask-scheduler.json"), DaskOptions(), "node1")
    assert argv[:3] == ["/usr/bin/python3", "-m", "distributed.cli.dask_scheduler"]
    assert argv[argv.index("--scheduler-file") + 1] == "/w/dask-scheduler.json"
    assert argv[argv.index("--host") + 1] == "node1"
    assert argv[argv.index("--port") + 1] == "0"
    assert argv[argv.index("--dashboard-address") + 1] == ":0"
    by_interface = scheduler_argv("p", Path("s"), DaskOptions(interface="ib0", dashboard=False), "node1")
    assert "--host" not in by_interface and by_interface[by_interface.index("--interface") + 1] == "ib0"
    assert "--no-dashboard" in by_interface
    by_host = scheduler_argv("p", Path("s"), DaskOptions(host="10.0.0.5", scheduler_port=8786), "node1")
    assert by_host[by_host.index("--host") + 1] == "10.0.0.5" and "8786" in by_host


def test_worker_command_line() -> None:
    (plan,) = plan_workers([NodeInfo(name="node2", cores=2, memory=4 * GiB)])
    argv = worker_argv("py", Path("/w/s.json"), plan, DaskOptions(nanny=False, ready_timeout="90s"))
    assert argv[:3] == ["py", "-m", "distributed.cli.dask_worker"]
    pairs = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert pairs["--scheduler-file"] == "/w/s.json"
    assert pairs["--name"] == "node2" and pairs["--nthreads"] == "2" and pairs["--nworkers"] == "1"
    assert pairs["--memory-limit"] == str(4 * GiB)
    assert (
        "--no-nanny" in argv and "--death-timeout" in argv and argv[argv.index("--death-timeout") + 1] == "90"
    )
    assert "--interface" not in argv and "--resources" not in argv


def test_script_command_line(tmp_path: Path) -> None:
    options = DaskOptions(script="ana.py", args=["--n", "3"])
    assert script_argv("py", options, tmp_path) == ["py", str(tmp_path / "ana.py"), "--n", "3"]
    assert script_argv("py", DaskOptions(module="pkg.ana"), tmp_path) == ["py", "-m", "pkg.ana"]


# --------------------------------------------------------------------------- spec checks


def _problems(text: str, tmp_path: Path, plugins: Plugins) -> list[str]:
    source = tmp_path / "spec.toml"
    source.write_text(text)
    try:
        parse_spec(text, source, plugins)
    except SpecError as exc:
        return [
            f"{p.key}: {p.message}" + (f" ({p.suggestion})" if p.suggestion else "") for p in exc.problems
        ]
    return []


def test_spec_checks(tmp_path: Path, pilotkit_plugins: Plugins) -> None:
    (tmp_path / "ana.py").write_text("print('hi')\n")
    head = 'name = "d"\n[app]\ntype = "dask"\n'
    assert _problems(head + 'script = "ana.py"\n', tmp_path, pilotkit_plugins) == []
    assert _problems(head + 'mode = "interactive"\n', tmp_path, pilotkit_plugins) == []
    assert _problems(head, tmp_path, pilotkit_plugins) == [
        "app: batch mode needs exactly one of 'script' or 'module'"
    ]
    assert _problems(head + 'script = "ana.py"\nmodule = "m"\n', tmp_path, pilotkit_plugins) == [
        "app: batch mode needs exactly one of 'script' or 'module'"
    ]
    missing = _problems(head + 'script = "nope.py"\n', tmp_path, pilotkit_plugins)
    assert missing == [f"app.script: no such file: {tmp_path / 'nope.py'}"]
    interactive = _problems(head + 'mode = "interactive"\nscript = "ana.py"\n', tmp_path, pilotkit_plugins)
    assert interactive and interactive[0].startswith("app.mode: interactive mode runs no script")
    assert _problems(head + 'mode = "interactive"\nargs = ["x"]\n', tmp_path, pilotkit_plugins) == [
        "app.args: 'args' needs a 'script' or 'module'"
    ]
    both = _problems(
        head + 'mode = "interactive"\ninterface = "ib0"\nhost = "h"\n', tmp_path, pilotkit_plugins
    )
    assert both == ["app.interface: set 'interface' or 'host', not both"]
    typo = _problems(head + 'mode = "interactive"\nworker_restart = 2\n', tmp_path, pilotkit_plugins)
    assert typo == ["app.worker_restart: unknown key (worker_restarts)"]
    bad_mode = _problems(head + 'mode = "batchy"\nscript = "ana.py"\n', tmp_path, pilotkit_plugins)
    assert bad_mode and bad_mode[0].startswith("app.mode:")


def test_the_examples_are_valid(pilotkit_plugins: Plugins) -> None:
    from pilotkit.testing import load_spec

    from .conftest import EXAMPLES

    for name in ("dask-analysis.toml", "dask-interactive.toml"):
        resolved = load_spec(EXAMPLES / name, pilotkit_plugins)
        assert resolved.app_cls is DaskApp


# --------------------------------------------------------------------------- progress


def test_progress_events_only_for_changes() -> None:
    tracker = ProgressTracker("p1")
    first = tracker.changes({"sum": [4, 4, 0, 0, 0], "load": [2, 0, 1, 1, 0]})
    assert [(e.name, e.total, e.pending, e.running, e.done, e.failed) for e in first] == [
        ("load", 2, 0, 1, 1, 0),
        ("sum", 4, 4, 0, 0, 0),
    ]
    assert tracker.changes({"sum": [4, 4, 0, 0, 0], "load": [2, 0, 1, 1, 0]}) == []
    (changed,) = tracker.changes({"sum": [4, 2, 2, 0, 0], "load": [2, 0, 1, 1, 0]})
    assert changed.name == "sum" and changed.running == 2
    data = json.loads(encode(changed))
    assert data["type"] == "app-progress" and data["app"] == "dask" and data["pilot"] == "p1" and data["name"] == "sum"


def test_scheduler_plugin_counts_transitions() -> None:
    need_dask()
    from pilotkit_dask.scheduler_side import PrefixProgress

    plugin = PrefixProgress()
    steps = [
        ("inc-1", "released", "waiting"),
        ("inc-2", "released", "waiting"),
        ("inc-3", "released", "waiting"),
        ("inc-1", "waiting", "processing"),
        ("inc-2", "waiting", "processing"),
    ]
    for key, start, finish in steps:
        plugin.transition(key, start, finish)
    assert plugin.snapshot() == {"inc": [3, 1, 2, 0, 0]}
    plugin.transition("inc-1", "processing", "memory")
    plugin.transition("inc-2", "processing", "erred")
    plugin.transition("inc-1", "memory", "released")  # finished, then released: still done
    plugin.transition("inc-1", "released", "forgotten")
    assert plugin.snapshot() == {"inc": [3, 1, 0, 1, 1]}
    plugin.transition("inc-3", "waiting", "forgotten")  # cancelled before it ran
    assert plugin.snapshot() == {"inc": [2, 0, 0, 1, 1]}
    plugin.transition("old-9", "memory", "forgotten")  # from before the plugin: ignored
    assert "old" not in plugin.snapshot() or plugin.snapshot()["old"][0] == 0


# --------------------------------------------------------------------------- connection files


def _info(state: str = "running") -> ConnectionInfo:
    return ConnectionInfo(
        pilot="p-1",
        scheduler="tcp://10.213.0.11:40001",
        mode="interactive",
        state=state,
        dashboard="http://10.213.0.11:40002/status",
        workers=[WorkerInfo(name="node1", address="tcp://10.213.0.11:40003", host="10.213.0.11", nthreads=2)],
    )


def test_connection_file_round_trip(tmp_path: Path) -> None:
    path = write_info(tmp_path, _info())
    assert path == tmp_path / "dask.json" and not list(tmp_path.glob(".*tmp"))
    assert (
        read_info(tmp_path) == read_info(path) == msgspec.json.decode(path.read_bytes(), type=ConnectionInfo)
    )
    with pytest.raises(PilotkitError, match=r"no dask\.json"):
        read_info(tmp_path / "elsewhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "dask.json").write_text("{}")
    with pytest.raises(PilotkitError, match="not a Dask connection file"):
        read_info(tmp_path / "bad")


def test_addresses() -> None:
    assert host_of("tcp://10.0.0.1:8786") == "10.0.0.1" and port_of("tcp://10.0.0.1:8786") == 8786
    assert host_of("tcp://[fe80::1]:8786") == "fe80::1"
    assert dashboard_url("tcp://10.0.0.1:8786", {"dashboard": 8787}) == "http://10.0.0.1:8787/status"
    assert dashboard_url("tcp://[::1]:8786", {"dashboard": 1}) == "http://[::1]:1/status"
    assert dashboard_url("tcp://10.0.0.1:8786", {}) is None
    with pytest.raises(PilotkitError):
        port_of("tcp://host")


def test_dataset_file_names(tmp_path: Path) -> None:
    assert dataset_file(tmp_path, "mass_histogram") == tmp_path / "mass_histogram.pickle"
    assert dataset_file(tmp_path, "../../etc/x y") == tmp_path / "_.._etc_x_y.pickle"
    assert dataset_file(tmp_path, "..").parent == tmp_path


def test_progress_event_is_a_pilotkit_event() -> None:
    event = AppProgress(pilot="p", app="dask", name="x", total=1, pending=0, running=0, done=1, failed=0)
    data = json.loads(encode(event))
    assert data["type"] == "app-progress" and data["done"] == 1


# --------------------------------------------------------------------------- pilotkit dask connect


def test_connect_prints_the_address(tmp_path: Path, pilotkit_plugins: Plugins) -> None:
    write_info(tmp_path, _info())
    runner = CliRunner()
    plain = runner.invoke(cli, ["dask", "connect", str(tmp_path)])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip() == "tcp://10.213.0.11:40001"
    as_json = runner.invoke(cli, ["dask", "connect", "--json", str(tmp_path / "dask.json")])
    data = json.loads(as_json.stdout)
    assert data["address"] == data["scheduler"] == "tcp://10.213.0.11:40001"
    assert data["workers"][0]["name"] == "node1" and data["dashboard"].endswith("/status")


def test_connect_errors_are_one_line(
    tmp_path: Path, pilotkit_plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_info(tmp_path, _info(state="stopped"))
    runner = CliRunner()
    stopped = runner.invoke(cli, ["dask", "connect", str(tmp_path)])
    assert (
        stopped.exit_code == 2
        and stopped.stderr.strip() == f"error: the Dask cluster of {tmp_path} is stopped"
    )
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))  # no daemon there
    unknown = runner.invoke(cli, ["dask", "connect", "ana-20260101-000000-abcd"])
    assert unknown.exit_code == 2
    assert "is not a pilot working directory, and asking the daemon failed" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_entry_point_and_command(tmp_path: Path) -> None:
    import subprocess

    plugins = Plugins().load()
    info = plugins.info["dask"]
    assert info.error is None and info.source == "pilotkit-dask"
    assert set(info.hooks) == {"pilotkit_register_apps", "pilotkit_add_commands"}
    write_info(tmp_path, _info())
    out = subprocess.run(
        [sys.executable, "-m", "pilotkit.cli.main", "dask", "connect", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "tcp://10.213.0.11:40001"


def test_services_while_the_cluster_runs(tmp_path: Path) -> None:
    from pilotkit_dask.connection import ConnectionInfo, write_info

    assert DaskApp.services(tmp_path) == []
    info = ConnectionInfo(
        pilot="p", scheduler="tcp://10.0.0.1:8786", mode="interactive", dashboard="http://10.0.0.1:8787/status"
    )
    write_info(tmp_path, info)
    assert [(s.name, s.url) for s in DaskApp.services(tmp_path)] == [
        ("Dask scheduler", "tcp://10.0.0.1:8786"), ("Dask dashboard", "http://10.0.0.1:8787/status"),
    ]  # fmt: skip
    info.state = "stopped"
    write_info(tmp_path, info)
    assert DaskApp.services(tmp_path) == []
