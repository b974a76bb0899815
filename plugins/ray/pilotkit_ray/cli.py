"""``pilotkit ray connect``: where a pilot's Ray cluster is, or a tunnel to it."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import click
import msgspec

from pilotkit.api import forward_port, ssh_session, tunnel_options, until_interrupted

from .connection import FILE, ConnectionInfo, host_of, port_of


@click.group("ray")
def ray_group() -> None:
    """The Ray clusters of pilots that run ``[app] type = "ray"``."""


@ray_group.command("connect")
@click.argument("pilot")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@tunnel_options(
    "The pilot runs there: read its details over SSH and forward local ports to the "
    "Ray Client server and the dashboard (stays in the foreground until Ctrl-C)."
)
def connect_command(
    pilot: str, as_json: bool, host: str | None, ssh_config: str | None, local_port: int
) -> None:
    """Print the Ray Client address (ray://HOST:PORT) of PILOT (a pilot's working
    directory, or its id when a pilotkit daemon runs it).

    \b
    From a laptop, through the login node:
      pilotkit ray connect --host me@login /scratch/me/pilotkit-runs/ray-1
    prints ray://127.0.0.1:PORT for ray.init() while it runs.
    """
    if host is None:
        info = asyncio.run(FILE.find(pilot))
        _print(info, as_json, local=None)
        return
    asyncio.run(_tunnel(pilot, host, ssh_config, local_port, as_json))


def _print(info: ConnectionInfo, as_json: bool, local: str | None, dashboard: str | None = None) -> None:
    if as_json:
        data: dict[str, Any] = msgspec.to_builtins(info)
        data.update(state=info.state, dashboard=info.dashboard)  # defaults are left out of the file
        if local is not None:
            data["tunnel"] = {"client": local, "dashboard": dashboard}
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(local or info.client)
        if local is None:
            click.echo(f"RAY_ADDRESS on the pilot's nodes: {info.address}", err=True)
            if info.dashboard:
                click.echo(f"dashboard: {info.dashboard}", err=True)


# --------------------------------------------------------------------------- the tunnel


async def _tunnel(pilot: str, host: str, ssh_config: str | None, local_port: int, as_json: bool) -> None:
    async with ssh_session(host, ssh_config=ssh_config) as conn:
        info = await FILE.find_remote(conn, pilot, host, ssh_config)
        port = await forward_port(conn, host_of(info.client), port_of(info.client), local_port=local_port)
        local = f"ray://127.0.0.1:{port}"
        dashboard = None
        url = urlsplit(info.dashboard) if info.dashboard else None
        if url is not None and url.hostname and url.port:
            dashboard = f"http://127.0.0.1:{await forward_port(conn, url.hostname, url.port)}{url.path}"
        _print(info, as_json, local=local, dashboard=dashboard)
        click.echo(
            f"forwarding {local} to {info.client} through {host}"
            + (f"; dashboard {dashboard}" if dashboard else "")
            + "; Ctrl-C to stop",
            err=True,
        )
        await until_interrupted(conn)
