"""Shared helpers: the tunnel of ``pilotkit jupyter open --host`` (through the ``sshd``
fixture of pilotkit.testing), a kernel driven over the server's kernels API (the Jupyter
message protocol on its websocket), headless Chromium, and a look for processes left
behind."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pilotkit_jupyter.connection import read_info

from pilotkit.testing import Pilot, RunResult, RunSpec, Sshd, need, need_binary, wait_for
from pilotkit.testing.chromium import find_chromium, screenshot

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "share" / "examples"
PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]

LAB_WITH_DASK = """[app]
type = "jupyter"
backend = "dask"
[app.dask]
nanny = false
threads = 1
"""
"""The app table of a JupyterLab with a one-thread Dask worker per node behind it."""

DASK_CELL = """
import os, socket
import dask.array as da
from distributed import Client
client = Client(os.environ["DASK_SCHEDULER_ADDRESS"])
x = da.ones((3000, 3000), chunks=(500, 500))
total = int((x + x.T).sum().compute())
hosts = sorted(set(client.run(socket.gethostname).values()))
print("RESULT", total, ",".join(hosts), client.dashboard_link)
client.close()
"""
"""A cell that computes on the Dask cluster and says where its workers run."""


RAY_CELL = """
import os, ray
ray.init()
@ray.remote
def square(x):
    return x * x
print("RESULT", sum(ray.get([square.remote(i) for i in range(100)])), os.environ["RAY_ADDRESS"])
ray.shutdown()
"""
"""A cell that computes on the Ray cluster the kernel finds in ``RAY_ADDRESS``."""


def ray_processes(pilot: str) -> list[str]:
    """Processes carrying the Ray app's mark for ``pilot`` in their environment."""
    mark = f"PILOTKIT_RAY_PILOT={pilot}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def need_jupyter() -> None:
    """Skip (fail under PILOTKIT_REQUIRE_REAL=1) without the Jupyter and Dask parts."""
    for module, hint in (
        ("jupyter_server", "pip install pilotkit-jupyter"),
        ("jupyterlab", "pip install 'pilotkit-jupyter[lab]'"),
        ("jupyter_server_proxy", "pip install jupyter-server-proxy"),
        ("jupyter_client", "pip install jupyter_client"),
        ("ipykernel", "pip install ipykernel"),
        ("distributed", "pip install 'dask[distributed]'"),
        ("aiohttp", "pip install aiohttp"),
    ):
        need(module, importlib.util.find_spec(module) is not None, hint)


@pytest.fixture
def jupyter_parts() -> None:
    """Skips a test without the Jupyter and Dask parts (see :func:`need_jupyter`)."""
    need_jupyter()


def server_state(workdir: Path) -> str | None:
    """The state in the pilot's ``jupyter.json``; None before there is one."""
    try:
        return read_info(workdir).state
    except Exception:
        return None


class Served:
    """A Jupyter pilot that ``run_spec`` runs in the background, its server up."""

    def __init__(self, running: asyncio.Future[RunResult], pilots: list[Pilot]) -> None:
        self.running = running
        self.pilots = pilots

    async def cancel(self, timeout: float) -> RunResult:
        """Cancel the pilot; its result once it has ended."""
        self.pilots[0].cancel("test ends")
        return await asyncio.wait_for(self.running, timeout)


@asynccontextmanager
async def served(run_spec: RunSpec, spec: str, workdir: Path, timeout: float) -> AsyncIterator[Served]:
    """Run ``spec`` in ``workdir`` until its server is running (at most ``timeout``
    seconds); a pilot still running when the block ends (it failed) is cancelled."""
    pilots: list[Pilot] = []
    running = asyncio.ensure_future(run_spec(spec, workdir=workdir, on_pilot=pilots.append))
    try:
        await wait_for(lambda: running.done() or server_state(workdir) == "running", timeout, "the server")
        assert not running.done(), running.result().reason
        yield Served(running, pilots)
    finally:
        if not running.done():
            pilots[0].cancel("test failed")
            await running


class Tunnel:
    """``pilotkit jupyter open --host pilotkit-test`` running in the background."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, dashboard: str | None) -> None:
        self.proc = proc
        self.url = url
        """``http://127.0.0.1:PORT/lab?token=...``"""
        self.dashboard = dashboard
        self.base = url.split("/lab?", 1)[0].split("/tree?", 1)[0]
        self.token = url.rsplit("token=", 1)[1]

    @classmethod
    async def open(cls, sshd: Sshd, workdir: Path) -> Tunnel:
        proc = await asyncio.create_subprocess_exec(
            *PILOTKIT, "jupyter", "open", "--no-browser", "--host", "pilotkit-test",
            "--ssh-config", str(sshd.ssh_config), str(workdir),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        if not url.startswith("http://127.0.0.1:"):
            proc.kill()
            raise AssertionError((url, (await proc.stderr.read()).decode()))
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode().strip()
        dashboard = line.split(": ", 1)[1] if line.startswith("Dask dashboard: ") else None
        return cls(proc, url, dashboard)

    async def close(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(2)  # SIGINT, as Ctrl-C
        try:
            return await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()


async def run_cell(aiohttp: Any, base: str, token: str, code: str, timeout: float = 60) -> tuple[str, str]:
    """Start a kernel through the server's REST API, run ``code`` over the kernel's
    websocket (Jupyter messages made by jupyter_client's Session), shut the kernel down.
    Returns the reply's status and the cell's stdout."""
    from jupyter_client.session import Session

    headers = {"Authorization": f"token {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{base}/api/kernels", json={"name": "python3"}) as response:
            assert response.status == 201, await response.text()
            kernel = (await response.json())["id"]
        try:
            session = Session(username="test")
            request = session.msg("execute_request", {"code": code, "silent": False, "store_history": False})
            request["channel"] = "shell"
            out: list[str] = []
            status = ""
            async with http.ws_connect(
                f"{base}/api/kernels/{kernel}/channels?session_id={session.session}"
            ) as ws:
                await ws.send_str(json.dumps(request, default=str))
                deadline = time.monotonic() + timeout
                while not status:
                    message = json.loads(await ws.receive_str(timeout=max(1.0, deadline - time.monotonic())))
                    if message.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                        continue
                    kind = message["msg_type"]
                    if kind == "stream":
                        out.append(message["content"]["text"])
                    elif kind == "error":
                        out.append("\n".join(message["content"]["traceback"]))
                    elif kind == "execute_reply":
                        status = message["content"]["status"]
            return status, "".join(out)
        finally:
            async with http.delete(f"{base}/api/kernels/{kernel}") as response:
                assert response.status == 204, await response.text()


async def get_text(aiohttp: Any, url: str, token: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as http:
        async with http.get(url) as response:
            return response.status, await response.text()


def chromium() -> str:
    path = find_chromium()
    if path is None:
        need_binary("chromium", "apt-get install chromium")
        raise AssertionError("unreachable")
    return path


def processes_of(workdir: Path) -> list[str]:
    """Command lines of live processes that name ``workdir`` (the server, its kernels,
    the Dask services all do); the test cluster's nodes share this PID namespace."""
    mark = str(workdir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark in cmdline and state != "Z":
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


async def check_lab_with_dask(sshd: Sshd, workdir: Path, tmp_path: Path) -> list[str]:
    """Through ``pilotkit jupyter open --host``'s tunnel to a running Lab + Dask pilot: run
    :data:`DASK_CELL` in a kernel, load the Dask dashboard through the proxy and the Lab page
    in headless Chromium (``tmp_path/jupyterlab.png`` and ``dask-dashboard.png`` are kept).
    Returns the workers' hosts."""
    import aiohttp
    from pilotkit_jupyter.connection import read_info

    browser = chromium()
    info = read_info(workdir)
    assert info.lab and info.backend == "dask" and info.dask_scheduler and info.dask_dashboard
    tunnel = await Tunnel.open(sshd, workdir)
    try:
        assert tunnel.url.endswith(f"/lab?token={info.token}") and info.base_url not in tunnel.url
        status, out = await run_cell(aiohttp, tunnel.base, tunnel.token, DASK_CELL)
        assert status == "ok", out
        words = out.split("RESULT ", 1)[1].split()
        assert words[0] == "18000000" and words[2] == info.dask_dashboard, out
        assert tunnel.dashboard == f"{tunnel.base}{info.dask_dashboard}"
        code, page = await get_text(aiohttp, tunnel.dashboard, tunnel.token)
        assert code == 200 and "Dask" in page and 'href="statics/' in page, page[:300]
        code, _ = await get_text(aiohttp, tunnel.dashboard.replace("/status", "/workers"), tunnel.token)
        assert code == 200, "the dashboard's relative links stay under the proxy"
        # the page draws only once Bokeh's websocket session through the proxy is up
        board = tmp_path / "dask-dashboard.png"
        await screenshot(
            aiohttp, browser, f"{tunnel.dashboard}?token={tunnel.token}", board, tmp_path / "chromium-dashboard",
            ready_js="!!(window.Bokeh && Bokeh.documents.length && Bokeh.documents[0].roots().length)",
            ready_timeout=45,
        )  # fmt: skip
        print(f"Dask dashboard screenshot: {board}")
        shot = tmp_path / "jupyterlab.png"
        title = await screenshot(
            aiohttp, browser, tunnel.url, shot, tmp_path / "chromium",
            ready_js="!!document.querySelector('.jp-LabShell .jp-Launcher')", ready_timeout=45,
        )  # fmt: skip
        print(f"JupyterLab screenshot: {shot}")
        assert "JupyterLab" in title and shot.stat().st_size > 20_000
    finally:
        assert await tunnel.close() == 0, "Ctrl-C ends the tunnel cleanly"
    return words[1].split(",")
