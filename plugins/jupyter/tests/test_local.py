"""Jupyter pilots on the local provider: a real JupyterLab with a real Dask cluster behind
it, reached through ``pilotkit jupyter open --host``'s SSH tunnel (share/testsshd), a cell
run over the kernel protocol, the Dask dashboard through jupyter-server-proxy, the Lab page
in headless Chromium; and a walltime drain that ends a bare server cleanly."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
from pathlib import Path

import pytest
from pilotkit_jupyter.connection import read_info

from pilotkit.api import PilotState
from pilotkit.testing import RunSpec, Sshd, need
from pilotkit.testing import wait_for as wait

from .conftest import (
    LAB_WITH_DASK,
    RAY_CELL,
    check_lab_with_dask,
    processes_of,
    ray_processes,
    served,
    server_state,
)

pytestmark = [pytest.mark.dask, pytest.mark.usefixtures("jupyter_parts")]

LAB_DASK = f"""name = "nb-local"
[pilot]
grace = "3s"
{LAB_WITH_DASK}"""


@pytest.mark.sshd
async def test_lab_with_dask_through_the_tunnel(sshd: Sshd, run_spec: RunSpec, tmp_path: Path) -> None:
    workdir = tmp_path / "pilot"
    async with served(run_spec, LAB_DASK, workdir, 90) as server:
        hosts = await check_lab_with_dask(sshd, workdir, tmp_path)
        assert hosts == [socket.gethostname()]
        run = await server.cancel(60)
    assert run.state is PilotState.CANCELLED, run.reason
    assert read_info(workdir).state == "stopped"
    assert processes_of(workdir) == [], "evict leaves no Jupyter, kernel or Dask process"


async def test_walltime_drain_ends_a_bare_server_cleanly(run_spec: RunSpec, tmp_path: Path) -> None:
    workdir = tmp_path / "pilot"
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    spec = (
        'name = "nb-walltime"\n[resources]\nwalltime = "14s"\n[pilot]\ndrain_margin = "3s"\ngrace = "2s"\n'
        f'[app]\ntype = "jupyter"\nlab = false\nnotebook_dir = "{notebooks}"\n'
    )
    running = asyncio.ensure_future(run_spec(spec, workdir=workdir))
    await wait(lambda: running.done() or server_state(workdir) == "running", 30, "the server")
    assert not running.done(), running.result().reason
    info = read_info(workdir)
    assert not info.lab and info.root_dir == str(notebooks) and info.url.endswith(f"/tree?token={info.token}")
    assert len(info.token) >= 32
    run = await asyncio.wait_for(running, 40)
    assert run.state is PilotState.WALLTIME_EXPIRED, run.reason
    assert read_info(workdir).state == "stopped"
    assert processes_of(workdir) == []
    assert processes_of(notebooks) == []


async def test_a_killed_server_fails_the_pilot_naming_its_log(run_spec: RunSpec, tmp_path: Path) -> None:
    workdir = tmp_path / "pilot"
    spec = 'name = "nb-kill"\n[pilot]\ngrace = "2s"\n[app]\ntype = "jupyter"\nlab = false\n'
    running = asyncio.ensure_future(run_spec(spec, workdir=workdir))
    await wait(lambda: running.done() or server_state(workdir) == "running", 30, "the server")
    assert not running.done(), running.result().reason
    server_file = next((workdir / "jupyter-runtime").glob("jpserver-*.json"))
    os.kill(json.loads(server_file.read_text())["pid"], signal.SIGKILL)
    run = await asyncio.wait_for(running, 30)
    assert run.state is PilotState.FAILED
    assert "the Jupyter server stopped" in run.reason and "jupyter-server" in run.reason, run.reason
    assert read_info(workdir).state == "stopped"
    assert processes_of(workdir) == []


async def test_a_dask_cluster_that_cannot_start_fails_the_pilot_before_the_server(
    run_spec: RunSpec, tmp_path: Path
) -> None:
    workdir = tmp_path / "pilot"
    spec = (
        'name = "nb-nodask"\n[pilot]\ngrace = "2s"\n[app]\ntype = "jupyter"\nbackend = "dask"\n'
        '[app.dask]\npython = "/nonexistent/python3"\n'
    )
    run = await asyncio.wait_for(run_spec(spec, workdir=workdir), 60)
    assert run.state is PilotState.FAILED
    assert "Dask scheduler stopped before it was ready" in run.reason, run.reason
    assert read_info(workdir).state == "stopped" and not read_info(workdir).url
    assert not (workdir / "tasks" / "jupyter-server").exists(), "no server without its cluster"
    assert processes_of(workdir) == []


def test_open_by_pilot_id_through_the_daemon(tmp_path: Path) -> None:
    from pilotkit.testing.localdaemon import local_daemon, until

    spec = tmp_path / "nb.toml"
    spec.write_text('name = "nb-daemon"\n[pilot]\ngrace = "2s"\n[app]\ntype = "jupyter"\nlab = false\n')
    workdir = tmp_path / "pilot"
    with local_daemon(tmp_path, unset=("DISPLAY", "WAYLAND_DISPLAY")) as daemon:
        cli = daemon.cli
        submitted = cli("submit", "--workdir", str(workdir), str(spec))
        assert submitted.returncode == 0, submitted.stderr
        pilot = submitted.stdout.strip()
        until(lambda: server_state(workdir) == "running", 60, "the server")
        opened = cli("jupyter", "open", "--json", pilot)
        assert opened.returncode == 0, opened.stderr
        data = json.loads(opened.stdout)
        assert data["pilot"] == pilot and data["open"] == read_info(workdir).url
        assert "no browser to open here" in opened.stderr
        described = cli("describe", pilot)
        assert described.returncode == 0, described.stderr
        assert f"Services\n  Jupyter          {data['open']}\nFiles" in described.stdout, described.stdout
        assert cli("drain", pilot).returncode == 0
        until(lambda: server_state(workdir) == "stopped", 60, "the server to stop")
        stopped = cli("jupyter", "open", "--no-browser", pilot)
        assert stopped.returncode == 2 and "is stopped" in stopped.stderr
        assert "Services" not in cli("describe", pilot).stdout, "a stopped server serves nothing"
    assert processes_of(workdir) == []


@pytest.mark.ray
async def test_lab_with_ray_runs_a_cell_on_ray_and_proxies_its_dashboard(
    run_spec: RunSpec, tmp_path: Path
) -> None:
    import aiohttp

    from .conftest import get_text, run_cell

    need("Ray", importlib.util.find_spec("ray") is not None, "pip install 'pilotkit-jupyter[ray]'")
    need("Ray's dashboard", importlib.util.find_spec("aiohttp_cors") is not None, "pip install 'ray[default]'")
    workdir = tmp_path / "pilot"
    spec = (
        'name = "nb-ray"\n[pilot]\ngrace = "3s"\n[app]\ntype = "jupyter"\nbackend = "ray"\n'
        '[app.ray]\ndashboard = true\nobject_store_memory = "80MiB"\n'
    )
    async with served(run_spec, spec, workdir, 90) as server:
        info = read_info(workdir)
        ray_json = json.loads((workdir / "ray.json").read_text())
        assert info.backend == "ray" and info.ray_address == ray_json["address"]
        assert info.ray_client == ray_json["client"] and ray_json["dashboard"]
        base = info.base_url.rstrip("/")
        status, out = await run_cell(aiohttp, base, info.token, RAY_CELL)
        assert status == "ok", out
        assert out.split("RESULT ", 1)[1].split() == ["328350", ray_json["address"]], out
        dashboard_host = ray_json["dashboard"].split("://", 1)[1]
        assert info.ray_dashboard == f"/proxy/{dashboard_host}/"
        code, page = await get_text(aiohttp, f"{base}{info.ray_dashboard}", info.token)
        assert code == 200 and "Ray" in page, page[:300]
        code, version = await get_text(aiohttp, f"{base}{info.ray_dashboard}api/version", info.token)
        assert code == 200 and "ray_version" in version, version[:300]
        run = await server.cancel(60)
    assert run.state is PilotState.CANCELLED, run.reason
    assert read_info(workdir).state == "stopped"
    assert json.loads((workdir / "ray.json").read_text())["state"] == "stopped"
    assert processes_of(workdir) == [], "no Jupyter server or kernel left"
    await wait(lambda: ray_processes(run.pilot_id) == [], 10, "Ray's processes to end")
