"""``pilotkit jupyter open``: the URL of a pilot's Jupyter server, or a tunnel to it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import webbrowser
from typing import Any

import click
import msgspec

from pilotkit.api import forward_port, ssh_session, tunnel_options, until_interrupted

from .connection import FILE, ConnectionInfo


@click.group("jupyter")
def jupyter_group() -> None:
    """The Jupyter servers of pilots that run ``[app] type = "jupyter"``."""


@jupyter_group.command("open")
@click.argument("pilot")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@tunnel_options(
    "The pilot runs there: read its details over SSH and forward a local port to the "
    "server on its node (stays in the foreground until Ctrl-C)."
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
        info = asyncio.run(FILE.find(pilot))
        url = _show(info, as_json, local=None)
        if not no_browser:
            _browse(url)
        return
    asyncio.run(_tunnel(pilot, host, ssh_config, local_port, as_json, browse=not no_browser))


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
    async with ssh_session(host, ssh_config=ssh_config) as conn:
        info = await FILE.find_remote(conn, pilot, host, ssh_config)
        port = await forward_port(conn, info.host, info.port, local_port=local_port)
        local = f"http://127.0.0.1:{port}/"
        url = _show(info, as_json, local=local)
        click.echo(f"forwarding {local} to {info.base_url} through {host}; Ctrl-C to stop", err=True)
        if browse:
            await asyncio.to_thread(_browse, url)
        await until_interrupted(conn)
