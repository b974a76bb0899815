"""The connection details a Jupyter pilot publishes in ``<workdir>/jupyter.json``."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from pilotkit.api import ConnectionFile, PilotkitError, Service

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


FILE = ConnectionFile(CONNECTION_FILE, ConnectionInfo, "Jupyter", "server", private=True)
"""``<workdir>/jupyter.json``: written atomically, mode 0600; read here or over SSH."""
write_info = FILE.write
parse_info = FILE.parse
read_info = FILE.read


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
