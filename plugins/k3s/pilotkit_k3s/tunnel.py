"""A pilot's kubeconfig: read here, or over SSH with a local port forwarded to the API
server on the pilot's first node (the SSH helpers of :mod:`pilotkit.api`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pilotkit.api import (
    PilotkitError,
    forward_port,
    pilot_workdir,
    read_remote_file,
    ssh_session,
    until_interrupted,
)

from .cluster import ClusterInfo, read_cluster_info
from .commands import CONNECTION_FILE, KUBECONFIG_FILE


def _running(info: ClusterInfo, pilot: str) -> ClusterInfo:
    if info.state != "running":
        raise PilotkitError(f"the k3s cluster of {pilot} is {info.state}")
    return info


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PilotkitError(
            f"no {path.name} in {path.parent}: not a k3s pilot, or its cluster is not up yet"
        ) from None
    except OSError as exc:
        raise PilotkitError(f"cannot read {path}: {exc.strerror or exc}") from None


async def local_kubeconfig(pilot: str) -> str:
    """The kubeconfig of a pilot whose working directory this machine sees."""
    path = Path(pilot).expanduser()
    workdir = (
        path if await asyncio.to_thread(path.exists) else Path(await pilot_workdir(pilot))
    )
    info = read_cluster_info(await asyncio.to_thread(_read, workdir / CONNECTION_FILE, "k3s"), str(workdir))
    _running(info, pilot)
    return (await asyncio.to_thread(_read, workdir / KUBECONFIG_FILE, "kubeconfig")).decode()


def tunnelled(kubeconfig: str, local_port: int) -> str:
    """The kubeconfig with its server at ``https://127.0.0.1:PORT``, the certificate still
    checked against the first node's name (``tls-server-name``)."""
    import yaml

    data: dict[str, Any] = yaml.safe_load(kubeconfig)
    for entry in data.get("clusters") or []:
        cluster = entry.setdefault("cluster", {})
        original = urlsplit(str(cluster.get("server", "")))
        if original.hostname:
            cluster.setdefault("tls-server-name", original.hostname)
        cluster["server"] = f"https://127.0.0.1:{local_port}"
    return str(yaml.safe_dump(data, sort_keys=False))


async def tunnel(
    pilot: str, host: str, ssh_config: str | None, local_port: int, emit: Callable[[str], None]
) -> None:
    """Forward a local port through ``host`` to the API server; ``emit`` the kubeconfig
    that uses it; stay until interrupted."""
    import click

    async with ssh_session(host, ssh_config=ssh_config) as conn:
        workdir = (
            pilot
            if "/" in pilot or pilot.startswith("~")
            else await pilot_workdir(pilot, host, ssh_config)
        )
        base = workdir.rstrip("/")
        info = _running(
            read_cluster_info(await _remote(conn, f"{base}/{CONNECTION_FILE}", host), f"{host}:{base}"), pilot
        )
        kubeconfig = (await _remote(conn, f"{base}/{KUBECONFIG_FILE}", host)).decode()
        server = urlsplit(info.server)
        if not server.hostname or not server.port:
            raise PilotkitError(f"{host}:{base}/{CONNECTION_FILE}: no host and port in '{info.server}'")
        port = await forward_port(conn, server.hostname, server.port, local_port=local_port)
        emit(tunnelled(kubeconfig, port))
        click.echo(
            f"forwarding https://127.0.0.1:{port} to {info.server} through {host}; Ctrl-C to stop", err=True
        )
        await until_interrupted(conn)


async def _remote(conn: Any, path: str, host: str) -> bytes:
    try:
        return await read_remote_file(conn, path, target=host)
    except PilotkitError as exc:
        if str(exc).endswith("no such file"):
            raise PilotkitError(
                f"{host}:{path}: no such file: not a k3s pilot, or its cluster is not up yet"
            ) from None
        raise
