"""``pilotkit jupyter open``: the URL of a pilot's Jupyter server, or a tunnel to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import webbrowser
from pathlib import Path
from typing import Any

import click
import msgspec

from pilotkit.api import (
    PilotkitError,
    connect_daemon,
    forward_port,
    import_asyncssh,
    read_remote_file,
    ssh_connect,
    until_interrupted,
)

from .connection import CONNECTION_FILE, ConnectionInfo, parse_info, read_info


@click.group("jupyter")
def jupyter_group() -> None:
    """The Jupyter servers of pilots that run ``[app] type = "jupyter"``."""


@jupyter_group.command("open")
@click.argument("pilot")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--host",
    metavar="[USER@]HOST",
    help="The pilot runs there: read its details over SSH and forward a local port to the "
    "server on its node (stays in the foreground until Ctrl-C).",
)
@click.option(
    "--ssh-config", type=click.Path(dir_okay=False), metavar="FILE", help="SSH config file for --host."
)
@click.option(
    "--local-port", type=int, default=0, show_default=True, help="Local port of the tunnel (0: any free one)."
)
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
def open_command(
    pilot: str, as_json: bool, host: str | None, ssh_config: str | None, local_port: int, no_browser: bool
) -> None:
    """Print the URL (with its token) of PILOT's Jupyter server and open it in a browser
    when there is one. PILOT is a pilot's working directory, or its id when a pilotkit
    daemon runs it.

    \b
    From a laptop, through the login node to the compute node:
      pilotkit jupyter open --host me@login /scratch/me/pilotkit-runs/nb-1
    prints http://127.0.0.1:PORT/lab?token=... while it runs.
    """
    if host is None:
        info = asyncio.run(_local_info(pilot))
        url = _show(info, as_json, local=None)
        if not no_browser:
            _browse(url)
        return
    asyncio.run(_tunnel(pilot, host, ssh_config, local_port, as_json, browse=not no_browser))


async def _local_info(pilot: str) -> ConnectionInfo:
    path = Path(pilot).expanduser()
    if await asyncio.to_thread(path.exists):
        info = await asyncio.to_thread(read_info, path)
    else:
        workdir = await _workdir_from_daemon(pilot, host=None, ssh_config=None)
        info = await asyncio.to_thread(read_info, Path(workdir))
    return _running(info, pilot)


async def _workdir_from_daemon(pilot: str, host: str | None, ssh_config: str | None) -> str:
    try:
        async with connect_daemon(host=host, ssh_config=ssh_config) as client:
            detail = await client.pilot(pilot)
    except PilotkitError as exc:
        raise PilotkitError(
            f"'{pilot}' is not a pilot working directory, and asking the daemon failed: {exc}"
        ) from None
    return str(detail.summary.workdir)


def _running(info: ConnectionInfo, pilot: str) -> ConnectionInfo:
    if info.state != "running":
        raise PilotkitError(f"the Jupyter server of {pilot} is {info.state}")
    return info


def _show(info: ConnectionInfo, as_json: bool, local: str | None) -> str:
    """Print the page's URL (JSON: every detail); return the URL."""
    url = info.page(local) if local is not None else info.url
    if as_json:
        data: dict[str, Any] = msgspec.to_builtins(info)
        data["open"] = url
        if local is not None:
            data["tunnel"] = local
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(url)
    if info.dask_dashboard:
        base = local or info.base_url
        click.echo(f"Dask dashboard: {base.rstrip('/')}{info.dask_dashboard}", err=True)
    if info.ray_dashboard:
        base = local or info.base_url
        click.echo(f"Ray dashboard: {base.rstrip('/')}{info.ray_dashboard}", err=True)
    return url


def has_display() -> bool:
    """A graphical browser can be shown here (not a terminal-only login node, where
    ``webbrowser`` would start a text browser in the foreground)."""
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def _browse(url: str) -> None:
    """Open ``url`` in a browser when there is a display for one."""
    opened = False
    if has_display():
        try:
            opened = webbrowser.open(url)
        except webbrowser.Error:
            opened = False
    if not opened:
        click.echo("no browser to open here: open the URL above", err=True)


async def _tunnel(
    pilot: str, host: str, ssh_config: str | None, local_port: int, as_json: bool, browse: bool
) -> None:
    asyncssh = import_asyncssh()
    conn = await ssh_connect(host, ssh_config=ssh_config)
    try:
        if "/" in pilot or pilot.startswith("~"):
            workdir = pilot
        else:
            workdir = await _workdir_from_daemon(pilot, host=host, ssh_config=ssh_config)
        info = _running(await _remote_info(conn, workdir, host), pilot)
        port = await forward_port(conn, info.host, info.port, local_port=local_port)
        local = f"http://127.0.0.1:{port}/"
        url = _show(info, as_json, local=local)
        click.echo(f"forwarding {local} to {info.base_url} through {host}; Ctrl-C to stop", err=True)
        if browse:
            await asyncio.to_thread(_browse, url)
        await until_interrupted(conn)
    except asyncssh.Error as exc:
        raise PilotkitError(f"ssh {host}: {exc.reason}") from None
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), 2.0)


async def _remote_info(conn: Any, workdir: str, host: str) -> ConnectionInfo:
    """Read ``jupyter.json`` of a working directory on the SSH host (over SFTP)."""
    path = workdir if workdir.endswith(CONNECTION_FILE) else f"{workdir.rstrip('/')}/{CONNECTION_FILE}"
    try:
        data = await read_remote_file(conn, path, target=host)
    except PilotkitError as exc:
        if str(exc).endswith("no such file"):
            raise PilotkitError(
                f"{host}:{path}: no such file: not a Jupyter pilot, or its server is not up yet"
            ) from None
        raise
    return parse_info(data, f"{host}:{path}")
