"""The connection details a Dask pilot publishes in ``<workdir>/dask.json``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec

from pilotkit.api import PilotkitError, Service

from .commands import CONNECTION_FILE


class WorkerInfo(msgspec.Struct, omit_defaults=True):
    """One connected worker, as the scheduler lists it."""

    name: str
    address: str
    host: str
    nthreads: int = 0
    memory_limit: int = 0


class ConnectionInfo(msgspec.Struct, omit_defaults=True):
    """What a client needs to use a pilot's Dask cluster."""

    pilot: str
    scheduler: str
    """``tcp://HOST:PORT``, reachable from the pilot's nodes and its login host."""
    mode: str
    state: str = "running"
    """``running`` while the cluster is up; ``stopped`` once it was shut down."""
    dashboard: str | None = None
    """``http://HOST:PORT/status`` when the scheduler serves a dashboard."""
    workers: list[WorkerInfo] = []
    scheduler_file: str | None = None
    updated: float = msgspec.field(default_factory=time.time)


def write_info(workdir: Path, info: ConnectionInfo) -> Path:
    """Replace ``<workdir>/dask.json`` atomically (a reader never sees half a file)."""
    path = workdir / CONNECTION_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    os.replace(tmp, path)
    return path


def parse_info(data: bytes, where: str) -> ConnectionInfo:
    """Decode a ``dask.json``; a clear error when it is not one."""
    try:
        return msgspec.json.decode(data, type=ConnectionInfo)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PilotkitError(f"{where}: not a Dask connection file: {exc}") from None


def read_info(workdir: Path) -> ConnectionInfo:
    """Read ``<workdir>/dask.json`` (``workdir`` may also name the file itself)."""
    path = workdir if workdir.name == CONNECTION_FILE else workdir / CONNECTION_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PilotkitError(
            f"no {CONNECTION_FILE} in {path.parent}: not a Dask pilot, or its cluster is not up yet"
        ) from None
    except OSError as exc:
        raise PilotkitError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_info(data, str(path))


def dashboard_url(scheduler: str, services: dict[str, Any]) -> str | None:
    """``http://HOST:PORT/status`` from the scheduler's address and its services."""
    port = services.get("dashboard")
    if not isinstance(port, int):
        return None
    host = host_of(scheduler)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/status"


def host_of(address: str) -> str:
    """``tcp://10.0.0.1:8786`` -> ``10.0.0.1`` (IPv6 brackets removed)."""
    rest = address.split("://", 1)[-1]
    host, _, _ = rest.rpartition(":")
    return host.strip("[]")


def port_of(address: str) -> int:
    """``tcp://10.0.0.1:8786`` -> 8786."""
    rest = address.split("://", 1)[-1]
    _, _, port = rest.rpartition(":")
    if not port.isdigit():
        raise PilotkitError(f"'{address}' has no port")
    return int(port)


def workers_from_identity(identity: dict[str, Any]) -> list[WorkerInfo]:
    """The workers of ``client.scheduler_info()``, sorted by name."""
    out = []
    for address, info in identity.get("workers", {}).items():
        out.append(
            WorkerInfo(
                name=str(info.get("name", address)),
                address=address,
                host=str(info.get("host", host_of(address))),
                nthreads=int(info.get("nthreads", 0)),
                memory_limit=int(info.get("memory_limit", 0) or 0),
            )
        )
    return sorted(out, key=lambda w: w.name)


def services(workdir: Path) -> list[Service]:
    """The cluster's addresses while it runs (none before it is up, nor once stopped)."""
    try:
        info = read_info(workdir)
    except PilotkitError:
        return []
    if info.state != "running":
        return []
    found = [Service(name="Dask scheduler", url=info.scheduler)]
    if info.dashboard:
        found.append(Service(name="Dask dashboard", url=info.dashboard))
    return found
