"""The connection details a Ray pilot publishes in ``<workdir>/ray.json``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec

from pilotkit.api import PilotkitError, Service

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


def write_info(workdir: Path, info: ConnectionInfo) -> Path:
    """Replace ``<workdir>/ray.json`` atomically (a reader never sees half a file)."""
    path = workdir / CONNECTION_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    os.replace(tmp, path)
    return path


def parse_info(data: bytes, where: str) -> ConnectionInfo:
    """Decode a ``ray.json``; a clear error when it is not one."""
    try:
        return msgspec.json.decode(data, type=ConnectionInfo)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PilotkitError(f"{where}: not a Ray connection file: {exc}") from None


def read_info(workdir: Path) -> ConnectionInfo:
    """Read ``<workdir>/ray.json`` (``workdir`` may also name the file itself)."""
    path = workdir if workdir.name == CONNECTION_FILE else workdir / CONNECTION_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PilotkitError(
            f"no {CONNECTION_FILE} in {path.parent}: not a Ray pilot, or its cluster is not up yet"
        ) from None
    except OSError as exc:
        raise PilotkitError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_info(data, str(path))


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
