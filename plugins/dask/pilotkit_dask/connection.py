"""The connection details a Dask pilot publishes in ``<workdir>/dask.json``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec

from pilotkit.api import ConnectionFile, PilotkitError, Service

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


FILE = ConnectionFile(CONNECTION_FILE, ConnectionInfo, "Dask")
"""``<workdir>/dask.json``: written atomically, read here or over SSH."""
write_info = FILE.write
parse_info = FILE.parse
read_info = FILE.read


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
