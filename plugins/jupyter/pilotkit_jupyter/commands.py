"""Pure builders: the Jupyter server's command line and environment.

Nothing here starts a process or touches the network."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

SERVER_TASK = "jupyter-server"
SERVICE_GROUP = "jupyter"
RUNTIME_DIR = "jupyter-runtime"
"""In the pilot's working directory: the server writes ``jpserver-PID.json`` there once it listens."""


def server_argv(
    python: str, *, lab: bool, host: str, port: int, root_dir: Path, proxy_hosts: tuple[str, ...] = ()
) -> list[str]:
    """``jupyter lab`` (or ``jupyter server``) bound to ``host``; the token comes from the
    environment (``JUPYTER_TOKEN``), never the command line, so ``ps`` does not show it.
    ``proxy_hosts``: hosts besides localhost that jupyter-server-proxy may forward to
    (``/proxy/HOST:PORT/``)."""
    # one argument holding a list: the trait (a list or a callable) takes no repeated values
    allow = [f"--ServerProxy.host_allowlist={['localhost', '127.0.0.1', *proxy_hosts]!r}"]
    return [
        python,
        "-m",
        "jupyterlab" if lab else "jupyter_server",
        "--no-browser",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.allow_remote_access=True",
        "--PasswordIdentityProvider.hashed_password=",
        "--ServerApp.allow_root=True",  # containers and test beds run as root; harmless otherwise
        *(allow if proxy_hosts else []),
    ]


def server_env(token: str, runtime_dir: Path, info_file: Path) -> dict[str, str]:
    """What the server (and so every kernel it starts) gets in its environment."""
    return {
        "JUPYTER_TOKEN": token,
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "PILOTKIT_JUPYTER_INFO": str(info_file),
    }


def dask_env(scheduler: str, dashboard: str | None) -> dict[str, str]:
    """What kernels need to use the Dask cluster: its address, and dashboard links that
    go through the Jupyter server (jupyter-server-proxy) instead of to the node."""
    env = {"DASK_SCHEDULER_ADDRESS": scheduler}
    path = dashboard_proxy_path(dashboard)
    if path is not None:
        env["DASK_DISTRIBUTED__DASHBOARD__LINK"] = path
    return env


def dashboard_proxy_path(dashboard: str | None) -> str | None:
    """``http://10.0.0.1:8787/status`` -> ``/proxy/8787/status`` (the scheduler runs on the
    server's node, so the proxy reaches its dashboard on localhost)."""
    if not dashboard:
        return None
    url = urlsplit(dashboard)
    if url.port is None:
        return None
    return f"/proxy/{url.port}{url.path or '/status'}"


def ray_env(address: str) -> dict[str, str]:
    """What kernels need to use the Ray cluster: ``ray.init()`` connects to ``RAY_ADDRESS``."""
    return {"RAY_ADDRESS": address}


def remote_proxy_path(url: str | None) -> str | None:
    """``http://10.0.0.1:8265`` -> ``/proxy/10.0.0.1:8265/``: a service that listens on the
    node's address only (Ray's dashboard), reached by jupyter-server-proxy on that address."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.port is None or parts.hostname is None:
        return None
    return f"/proxy/{url_host(parts.hostname)}:{parts.port}{parts.path or '/'}"


def url_host(host: str) -> str:
    """A host for a URL (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
