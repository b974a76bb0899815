"""The connection details a Ray pilot publishes in ``<workdir>/ray.json``."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from pilotkit.api import ConnectionFile, PilotkitError, Service

from .commands import CONNECTION_FILE


class RayNodeInfo(msgspec.Struct, omit_defaults=True):
    """One Ray node as the pilot started it."""

    name: str
    head: bool
    cpus: int
    gpus: int
    memory: int
    object_store_memory: int
    resources: dict[str, float] = {}


class ConnectionInfo(msgspec.Struct, omit_defaults=True):
    """What a client needs to use a pilot's Ray cluster."""

    pilot: str
    address: str
    """``HOST:PORT`` of the head's GCS: ``RAY_ADDRESS`` for drivers on the pilot's nodes."""
    client: str
    """``ray://HOST:PORT``: the Ray Client server, for ``ray.init`` from outside."""
    mode: str
    state: str = "running"
    """``running`` while the cluster is up; ``stopped`` once it was shut down."""
    dashboard: str | None = None
    """``http://HOST:PORT`` when the head serves Ray's dashboard."""
    nodes: list[RayNodeInfo] = []
    temp_dir: str | None = None
    updated: float = msgspec.field(default_factory=time.time)


FILE = ConnectionFile(CONNECTION_FILE, ConnectionInfo, "Ray")
"""``<workdir>/ray.json``: written atomically, read here or over SSH."""
write_info = FILE.write
parse_info = FILE.parse
read_info = FILE.read


def services(workdir: Path) -> list[Service]:
    """The cluster's addresses while it runs (none before it is up, nor once stopped)."""
    try:
        info = read_info(workdir)
    except PilotkitError:
        return []
    if info.state != "running":
        return []
    found = [Service(name="Ray client", url=info.client), Service(name="Ray address", url=info.address)]
    if info.dashboard:
        found.append(Service(name="Ray dashboard", url=info.dashboard))
    return found


def host_of(address: str) -> str:
    """``ray://10.0.0.1:10001`` or ``10.0.0.1:6379`` -> ``10.0.0.1`` (IPv6 brackets removed)."""
    rest = address.split("://", 1)[-1]
    host, _, _ = rest.rpartition(":")
    return host.strip("[]")


def port_of(address: str) -> int:
    """``ray://10.0.0.1:10001`` -> 10001."""
    rest = address.split("://", 1)[-1].rstrip("/")
    _, _, port = rest.rpartition(":")
    if not port.isdigit():
        raise PilotkitError(f"'{address}' has no port")
    return int(port)
