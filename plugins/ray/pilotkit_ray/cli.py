"""``pilotkit ray connect``: where a pilot's Ray cluster is, or a tunnel to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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

from .commands import CONNECTION_FILE
from .connection import ConnectionInfo, host_of, parse_info, port_of, read_info


@click.group("ray")
def ray_group() -> None:
    """The Ray clusters of pilots that run ``[app] type = "ray"``."""


@ray_group.command("connect")
@click.argument("pilot")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--host",
    metavar="[USER@]HOST",
    help="The pilot runs there: read its details over SSH and forward local ports to the "
    "Ray Client server and the dashboard (stays in the foreground until Ctrl-C).",
)
@click.option(
    "--ssh-config", type=click.Path(dir_okay=False), metavar="FILE", help="SSH config file for --host."
)
@click.option(
    "--local-port", type=int, default=0, show_default=True, help="Local port of the tunnel (0: any free one)."
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
        info = asyncio.run(_local_info(pilot))
        _print(info, as_json, local=None)
        return
    asyncio.run(_tunnel(pilot, host, ssh_config, local_port, as_json))


# --------------------------------------------------------------------------- finding the details


async def _local_info(pilot: str) -> ConnectionInfo:
    path = Path(pilot).expanduser()
    if await asyncio.to_thread(path.exists):
        info = await asyncio.to_thread(read_info, path)
    else:
        workdir = await _workdir_from_daemon(pilot, host=None, ssh_config=None)
        info = await asyncio.to_thread(read_info, Path(workdir))
    return _running(info, pilot)


async def _workdir_from_daemon(pilot: str, host: str | None, ssh_config: str | None) -> str:
    """Ask the pilotkit daemon (here, or on ``host``) for the pilot's working directory."""
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
        raise PilotkitError(f"the Ray cluster of {pilot} is {info.state}")
    return info


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
    asyncssh = import_asyncssh()
    conn = await ssh_connect(host, ssh_config=ssh_config)
    try:
        if "/" in pilot or pilot.startswith("~"):
            workdir = pilot
        else:
            workdir = await _workdir_from_daemon(pilot, host=host, ssh_config=ssh_config)
        info = _running(await _remote_info(conn, workdir, host), pilot)
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
    except asyncssh.Error as exc:
        raise PilotkitError(f"ssh {host}: {exc.reason}") from None
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), 2.0)


async def _remote_info(conn: Any, workdir: str, host: str) -> ConnectionInfo:
    """Read ``ray.json`` of a working directory on the SSH host (over SFTP)."""
    path = workdir if workdir.endswith(CONNECTION_FILE) else f"{workdir.rstrip('/')}/{CONNECTION_FILE}"
    try:
        data = await read_remote_file(conn, path, target=host)
    except PilotkitError as exc:
        if str(exc).endswith("no such file"):
            raise PilotkitError(
                f"{host}:{path}: no such file: not a Ray pilot, or its cluster is not up yet"
            ) from None
        raise
    return parse_info(data, f"{host}:{path}")
