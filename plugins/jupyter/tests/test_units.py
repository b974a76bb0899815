"""The pure parts: command lines, spec checks, the connection file, the ``jupyter open``
command on a working directory. No server is started."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pilotkit_jupyter import JupyterApp
from pilotkit_jupyter.cli import has_display
from pilotkit_jupyter.commands import (
    dashboard_proxy_path,
    dask_env,
    ray_env,
    remote_proxy_path,
    server_argv,
    server_env,
)
from pilotkit_jupyter.connection import ConnectionInfo, read_info, write_info

from pilotkit.api import App, SpecError
from pilotkit.testing import Plugins, cli, parse_spec
from pilotkit.testing.contracts import AppContract

EXAMPLES = Path(__file__).resolve().parents[3] / "share" / "examples"


class TestJupyterAppContract(AppContract):
    @pytest.fixture
    def app_cls(self) -> type[App]:
        return JupyterApp


def test_server_command_line_keeps_the_token_off_it(tmp_path: Path) -> None:
    argv = server_argv("/py", lab=True, host="10.213.0.11", port=0, root_dir=tmp_path)
    assert argv[:4] == ["/py", "-m", "jupyterlab", "--no-browser"]
    assert "--ServerApp.ip=10.213.0.11" in argv and "--ServerApp.port=0" in argv
    assert f"--ServerApp.root_dir={tmp_path}" in argv
    assert server_argv("/py", lab=False, host="h", port=8888, root_dir=tmp_path)[2] == "jupyter_server"
    env = server_env("secret", tmp_path / "rt", tmp_path / "jupyter.json")
    assert env["JUPYTER_TOKEN"] == "secret" and not any("secret" in a for a in argv)


def test_dask_dashboard_goes_through_the_proxy() -> None:
    assert dashboard_proxy_path("http://10.213.0.11:8787/status") == "/proxy/8787/status"
    assert dashboard_proxy_path(None) is None
    env = dask_env("tcp://10.213.0.11:40001", "http://10.213.0.11:8787/status")
    assert env == {
        "DASK_SCHEDULER_ADDRESS": "tcp://10.213.0.11:40001",
        "DASK_DISTRIBUTED__DASHBOARD__LINK": "/proxy/8787/status",
    }


def test_ray_dashboard_goes_through_the_proxy_on_the_nodes_address(tmp_path: Path) -> None:
    assert remote_proxy_path("http://10.213.0.11:8265") == "/proxy/10.213.0.11:8265/"
    assert remote_proxy_path("http://[fd00::1]:8265") == "/proxy/[fd00::1]:8265/"
    assert remote_proxy_path(None) is None and remote_proxy_path("http://h") is None
    assert ray_env("10.213.0.11:6379") == {"RAY_ADDRESS": "10.213.0.11:6379"}
    argv = server_argv("/py", lab=True, host="h", port=0, root_dir=tmp_path, proxy_hosts=("10.213.0.11",))
    allowed = [a.split("=", 1)[1] for a in argv if a.startswith("--ServerProxy.host_allowlist=")]
    assert allowed == ["['localhost', '127.0.0.1', '10.213.0.11']"]
    assert not any("host_allowlist" in a for a in server_argv("/py", lab=True, host="h", port=0, root_dir=tmp_path))


def _problems(text: str, tmp_path: Path, plugins: Plugins) -> list[str]:
    source = tmp_path / "spec.toml"
    source.write_text(text)
    try:
        parse_spec(text, source, plugins)
    except SpecError as exc:
        return [f"{p.key}: {p.message}" for p in exc.problems]
    return []


def test_spec_checks(tmp_path: Path, pilotkit_plugins: Plugins) -> None:
    head = 'name = "nb"\n[app]\ntype = "jupyter"\n'
    assert _problems(head, tmp_path, pilotkit_plugins) == []
    assert _problems(head + 'backend = "dask"\n[app.dask]\nthreads = 2\n', tmp_path, pilotkit_plugins) == []
    assert _problems(head + 'backend = "ray"\n[app.ray]\ndashboard = true\n', tmp_path, pilotkit_plugins) == []
    ray = head + 'backend = "ray"\n[app.ray]\n'
    assert _problems(ray + 'script = "x.py"\n', tmp_path, pilotkit_plugins)[0] == (
        "app.ray.script: set by the Jupyter app: remove it"
    )
    assert _problems(ray + 'temp_dir = "' + "x" * 41 + '"\n', tmp_path, pilotkit_plugins) == [
        "app.ray.temp_dir: at most 40 characters: Ray's socket paths below it must stay short"
    ]
    wrong = _problems(ray + 'dashboard = "yes"\n', tmp_path, pilotkit_plugins)
    assert wrong and wrong[0].startswith("app.ray.dashboard: Expected `bool"), wrong
    assert _problems(head + "[app.ray]\ndashboard = true\n", tmp_path, pilotkit_plugins) == [
        'app.ray: Ray options need backend = "ray"'
    ]
    assert _problems(head + 'notebook_dir = "nope"\n', tmp_path, pilotkit_plugins) == [
        f"app.notebook_dir: no such folder: {tmp_path / 'nope'}"
    ]
    assert _problems(head + "[app.dask]\nthreads = 2\n", tmp_path, pilotkit_plugins) == [
        'app.dask: Dask options need backend = "dask"'
    ]
    dask = head + 'backend = "dask"\n[app.dask]\n'
    assert _problems(dask + 'script = "x.py"\n', tmp_path, pilotkit_plugins)[0] == (
        "app.dask.script: set by the Jupyter app: remove it"
    )
    assert _problems(dask + 'interface = "ib0"\nhost = "h"\n', tmp_path, pilotkit_plugins) == [
        "app.dask.interface: set 'interface' or 'host', not both"
    ]
    wrong = _problems(dask + 'threads = "many"\n', tmp_path, pilotkit_plugins)
    assert wrong and wrong[0].startswith("app.dask.threads: Expected `int"), wrong
    typo = _problems(head + 'notebook_directory = "."\n', tmp_path, pilotkit_plugins)
    assert typo and typo[0].startswith("app.notebook_directory: unknown key"), typo


def test_bad_spec_is_one_located_line_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "nb.toml"
    spec.write_text('name = "nb"\n[app]\ntype = "jupyter"\nbackend = "dask"\n[app.dask]\nthreads = 0\n')
    out = subprocess.run(
        [sys.executable, "-m", "pilotkit.cli.main", "run", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    assert f"{spec}:6" in out.stderr and "app.dask.threads" in out.stderr, out.stderr


def test_the_example_is_valid(pilotkit_plugins: Plugins) -> None:
    from pilotkit.testing import load_spec

    resolved = load_spec(EXAMPLES / "jupyter-dask.toml", pilotkit_plugins)
    assert resolved.app_cls is JupyterApp and resolved.app_options.backend == "dask"
    notebook = json.loads((EXAMPLES / "jupyter-dask.ipynb").read_text())
    assert notebook["nbformat"] == 4 and notebook["cells"]


def _info(state: str = "running") -> ConnectionInfo:
    return ConnectionInfo(
        pilot="nb-1", state=state, url="http://10.213.0.11:8888/lab?token=tok",
        base_url="http://10.213.0.11:8888/", token="tok", host="10.213.0.11", port=8888, node="node1",
        lab=True, backend="dask", dask_scheduler="tcp://10.213.0.11:40001", dask_dashboard="/proxy/8787/status",
    )  # fmt: skip


def test_connection_file_is_private_and_round_trips(tmp_path: Path) -> None:
    path = write_info(tmp_path, _info())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "it holds the token"
    assert read_info(tmp_path) == read_info(path)
    assert read_info(tmp_path).page("http://127.0.0.1:5555/") == "http://127.0.0.1:5555/lab?token=tok"


def test_open_prints_the_url(tmp_path: Path, pilotkit_plugins: Plugins) -> None:
    write_info(tmp_path, _info())
    runner = CliRunner()
    plain = runner.invoke(cli, ["jupyter", "open", "--no-browser", str(tmp_path)])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip() == "http://10.213.0.11:8888/lab?token=tok"
    assert "Dask dashboard: http://10.213.0.11:8888/proxy/8787/status" in plain.stderr
    as_json = runner.invoke(
        cli, ["jupyter", "open", "--json", "--no-browser", str(tmp_path / "jupyter.json")]
    )
    data = json.loads(as_json.stdout)
    assert data["open"] == data["url"] and data["state"] == "running" and data["node"] == "node1"


def test_open_without_a_display_opens_no_browser(
    tmp_path: Path, pilotkit_plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    write_info(tmp_path, _info())
    out = CliRunner().invoke(cli, ["jupyter", "open", str(tmp_path)])
    assert out.exit_code == 0 and "no browser to open here" in out.stderr


def test_open_errors_are_one_line(
    tmp_path: Path, pilotkit_plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_info(tmp_path, _info(state="stopped"))
    runner = CliRunner()
    stopped = runner.invoke(cli, ["jupyter", "open", "--no-browser", str(tmp_path)])
    assert stopped.exit_code == 2
    assert stopped.stderr.strip() == f"error: the Jupyter server of {tmp_path} is stopped"
    (tmp_path / "jupyter.json").write_text("{}")
    broken = runner.invoke(cli, ["jupyter", "open", "--no-browser", str(tmp_path)])
    assert broken.exit_code == 2 and "not a Jupyter connection file" in broken.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = runner.invoke(cli, ["jupyter", "open", "--no-browser", str(empty)])
    assert missing.exit_code == 2 and "no jupyter.json" in missing.stderr
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))  # no daemon there
    unknown = runner.invoke(cli, ["jupyter", "open", "--no-browser", "nb-20260101-000000-abcd"])
    assert unknown.exit_code == 2 and len(unknown.stderr.strip().splitlines()) == 1


def test_entry_point(tmp_path: Path) -> None:
    info = Plugins().load().info["jupyter"]
    assert info.error is None and info.source == "pilotkit-jupyter"
    assert set(info.hooks) == {"pilotkit_register_apps", "pilotkit_add_commands"}
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    write_info(tmp_path, _info())
    out = subprocess.run(
        [sys.executable, "-m", "pilotkit.cli.main", "jupyter", "open", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "http://10.213.0.11:8888/lab?token=tok"


def test_services_are_the_url_and_the_cluster_while_running(tmp_path: Path) -> None:
    assert JupyterApp.services(tmp_path) == [], "nothing before jupyter.json is written"
    write_info(tmp_path, _info())
    assert [(s.name, s.url) for s in JupyterApp.services(tmp_path)] == [
        ("Jupyter", "http://10.213.0.11:8888/lab?token=tok"),
        ("Dask scheduler", "tcp://10.213.0.11:40001"),
        ("Dask dashboard", "http://10.213.0.11:8888/proxy/8787/status"),
    ]
    ray = _info()
    ray.backend, ray.dask_scheduler, ray.dask_dashboard = "ray", None, None
    ray.ray_address, ray.ray_client = "10.213.0.11:6379", "ray://10.213.0.11:10001"
    ray.ray_dashboard = "/proxy/10.213.0.11:8265/"
    write_info(tmp_path, ray)
    assert [s.name for s in JupyterApp.services(tmp_path)] == ["Jupyter", "Ray client", "Ray dashboard"]
    write_info(tmp_path, _info("stopped"))
    assert JupyterApp.services(tmp_path) == []
    (tmp_path / "jupyter.json").write_text("{not json")
    assert JupyterApp.services(tmp_path) == [], "a bad file is no service, not an error"


def test_open_prints_the_ray_dashboard_through_the_proxy(tmp_path: Path) -> None:
    info = _info()
    info.backend, info.dask_scheduler, info.dask_dashboard = "ray", None, None
    info.ray_address, info.ray_dashboard = "10.213.0.11:6379", "/proxy/10.213.0.11:8265/"
    write_info(tmp_path, info)
    out = CliRunner().invoke(cli, ["jupyter", "open", "--no-browser", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == "http://10.213.0.11:8888/lab?token=tok"
    assert "Ray dashboard: http://10.213.0.11:8888/proxy/10.213.0.11:8265/" in out.stderr
