"""The connection details a Jupyter pilot publishes in ``<workdir>/jupyter.json``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec

from pilotkit.api import PilotkitError, Service

CONNECTION_FILE = "jupyter.json"
"""In the pilot's working directory; readable by its owner only (it holds the token)."""


class ConnectionInfo(msgspec.Struct, omit_defaults=True):
    """What a browser needs to use a pilot's Jupyter server."""

    pilot: str
    state: str
    """``starting``, ``running`` while the server is up, ``stopped`` once it ended."""
    url: str = ""
    """``http://HOST:PORT/lab?token=...``: open it from the login node (or tunnel to it)."""
    base_url: str = ""
    """``http://HOST:PORT/`` (no token)."""
    token: str = ""
    host: str = ""
    port: int = 0
    node: str = ""
    """The node the server runs on (the allocation's first)."""
    root_dir: str = ""
    lab: bool = False
    backend: str = "none"
    dask_scheduler: str | None = None
    """``tcp://HOST:PORT`` of the Dask cluster behind the kernels."""
    dask_dashboard: str | None = None
    """The Dask dashboard's path on the server (``/proxy/PORT/status``), through jupyter-server-proxy."""
    ray_address: str | None = None
    """``HOST:PORT`` of the Ray cluster's GCS behind the kernels (their ``RAY_ADDRESS``)."""
    ray_client: str | None = None
    """``ray://HOST:PORT``: the Ray cluster's client server."""
    ray_dashboard: str | None = None
    """The Ray dashboard's path on the server (``/proxy/HOST:PORT/``), through jupyter-server-proxy."""
    updated: float = msgspec.field(default_factory=time.time)

    def page(self, base: str) -> str:
        """The notebook page under another base URL (a tunnel's ``http://127.0.0.1:PORT/``)."""
        path = "lab" if self.lab else "tree"
        return f"{base.rstrip('/')}/{path}?token={self.token}"


def write_info(workdir: Path, info: ConnectionInfo) -> Path:
    """Replace ``<workdir>/jupyter.json`` atomically, mode 0600."""
    path = workdir / CONNECTION_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    os.replace(tmp, path)
    return path


def parse_info(data: bytes, where: str) -> ConnectionInfo:
    """Decode a ``jupyter.json``; a clear error when it is not one."""
    try:
        return msgspec.json.decode(data, type=ConnectionInfo)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PilotkitError(f"{where}: not a Jupyter connection file: {exc}") from None


def read_info(workdir: Path) -> ConnectionInfo:
    """Read ``<workdir>/jupyter.json`` (``workdir`` may also name the file itself)."""
    path = workdir if workdir.name == CONNECTION_FILE else workdir / CONNECTION_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PilotkitError(
            f"no {CONNECTION_FILE} in {path.parent}: not a Jupyter pilot, or its server is not up yet"
        ) from None
    except OSError as exc:
        raise PilotkitError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_info(data, str(path))


def services(workdir: Path) -> list[Service]:
    """The server's URL with its token, and the cluster behind its kernels, while it runs
    (dashboards through the server's proxy)."""
    try:
        info = read_info(workdir)
    except PilotkitError:
        return []
    if info.state != "running" or not info.url:
        return []
    base = info.base_url.rstrip("/")
    found = [Service(name="Jupyter", url=info.url)]
    if info.dask_scheduler:
        found.append(Service(name="Dask scheduler", url=info.dask_scheduler))
    if info.dask_dashboard:
        found.append(Service(name="Dask dashboard", url=base + info.dask_dashboard))
    if info.ray_client:
        found.append(Service(name="Ray client", url=info.ray_client))
    elif info.ray_address:
        found.append(Service(name="Ray address", url=info.ray_address))
    if info.ray_dashboard:
        found.append(Service(name="Ray dashboard", url=base + info.ray_dashboard))
    return found
