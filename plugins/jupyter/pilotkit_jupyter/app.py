"""``[app] type = "jupyter"``: a Jupyter server on the allocation's first node.

It listens on that node's address with a random token and no password, its root in the
pilot's working directory (or ``notebook_dir``), and stays up until the pilot drains, reaches
its walltime or is cancelled. With ``backend = "dask"`` the ``dask`` app runs beside it in
interactive mode, and every kernel gets ``DASK_SCHEDULER_ADDRESS``; the Dask dashboard is
served through the Jupyter server (jupyter-server-proxy) at ``/proxy/PORT/status``. With
``backend = "ray"`` the ``ray`` app does, kernels get ``RAY_ADDRESS``, and Ray's dashboard
(``[app.ray] dashboard = true``) is at ``/proxy/HOST:PORT/``.
The details (URL with token, state) are in ``<workdir>/jupyter.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pilotkit.api import App, AppContext, Log, PilotkitError, Service, SpecProblem, parse_duration, python_for

from .backend import check_backend, make_backend_app, read_connection
from .commands import (
    RUNTIME_DIR,
    dashboard_proxy_path,
    dask_env,
    ray_env,
    remote_proxy_path,
    server_argv,
    server_env,
    url_host,
)
from .connection import CONNECTION_FILE, ConnectionInfo, write_info
from .options import JupyterOptions, check_options, notebook_path, use_lab
from .server import JupyterServer

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

log = logging.getLogger("pilotkit.jupyter")


class JupyterApp(App):
    """A Jupyter server on the first node, optionally with a Dask or Ray cluster behind its kernels."""

    id = "jupyter"
    Options = JupyterOptions
    description = "a Jupyter server on the first node (JupyterLab if installed), with Dask or Ray behind it"

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        options: JupyterOptions = spec.app_options
        problems = check_options(options, spec)
        if options.backend != "none":
            table = options.dask if options.backend == "dask" else options.ray
            problems += check_backend(options.backend, table, spec)
        return problems

    def say(self, ctx: AppContext, level: str, message: str) -> None:
        log.log(logging.WARNING if level == "warn" else logging.getLevelName(level.upper()), message)
        ctx.emit(Log(pilot=ctx.pilot.pilot_id, level=level, message=message, source="jupyter"))

    @classmethod
    def services(cls, workdir: Path) -> list[Service]:
        """What the pilot serves now, from its connection file in ``workdir``."""
        from .connection import services

        return services(workdir)

    async def run(self, ctx: AppContext) -> None:
        options: JupyterOptions = self.options
        workdir = ctx.pilot.workdir
        node = ctx.nodes[0]
        host = options.host or node.address or node.name
        lab = use_lab(options)
        root = notebook_path(options.notebook_dir, self.spec.base_dir) if options.notebook_dir else workdir
        info = ConnectionInfo(
            pilot=ctx.pilot.pilot_id, state="starting", node=node.name, root_dir=str(root), lab=lab,
            backend=options.backend,
        )  # fmt: skip
        await asyncio.to_thread(write_info, workdir, info)
        token = secrets.token_urlsafe(32)
        env = {
            **self.spec.spec.env,
            **options.env,
            **server_env(token, workdir / RUNTIME_DIR, workdir / CONNECTION_FILE),
        }
        cluster_run: asyncio.Future[None] | None = None
        server: JupyterServer | None = None
        containerised = self.spec.runtime_cls is not None and self.spec.spec.image is not None
        proxy_hosts: tuple[str, ...] = ()
        try:
            if options.backend != "none":
                table = options.dask if options.backend == "dask" else options.ray
                cluster_up = asyncio.Event()
                cluster_ctx = AppContext(ctx.pilot, ctx.nodes, ctx.pool, cluster_up.set)
                cluster_app = make_backend_app(options.backend, table, self.spec)
                cluster_run = asyncio.ensure_future(cluster_app.run(cluster_ctx))
                if not await _until(ctx, cluster_up.wait(), cluster_run):
                    return
                published = await asyncio.to_thread(read_connection, options.backend, workdir)
                proxy_hosts = _use_cluster(options.backend, published, env, info)
            argv = server_argv(
                python_for(options, containerised), lab=lab, host=host, port=options.port, root_dir=root,
                proxy_hosts=proxy_hosts,
            )  # fmt: skip
            server = JupyterServer(ctx, argv, env, node.name, workdir / RUNTIME_DIR)
            watchers = [cluster_run] if cluster_run is not None else []
            starting = server.start(parse_duration(options.ready_timeout))
            running = await _until(ctx, starting, *watchers)
            if running is False:
                return
            assert isinstance(running, dict)
            port = int(running["port"])
            base = f"http://{url_host(host)}:{port}/"
            info.base_url, info.token, info.host, info.port = base, token, host, port
            info.url = info.page(base)
            info.state = "running"
            path = await asyncio.to_thread(write_info, workdir, info)
            ctx.running()
            self.say(
                ctx,
                "info",
                f"Jupyter{'Lab' if lab else ' server'} at {base} on {node.name} (token in {path}); "
                f"open it with: pilotkit jupyter open {workdir}",
            )
            stopped = asyncio.ensure_future(server.until_stopped())
            try:
                await _until(ctx, stopped, *watchers)
            finally:
                stopped.cancel()
            if not ctx.draining.is_set():
                if not server.running():
                    raise PilotkitError(f"the Jupyter server stopped ({await server.exit_report()})")
                raise PilotkitError(f"the {options.backend.capitalize()} cluster behind the Jupyter server stopped")
        finally:
            try:
                if server is not None:
                    await server.stop()
                if cluster_run is not None:
                    await _end(ctx, cluster_run)  # re-raises the cluster's error, if it had one
            finally:
                info.state = "stopped"
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(write_info, workdir, info)


def _use_cluster(name: str, published: dict[str, Any], env: dict[str, str], info: ConnectionInfo) -> tuple[str, ...]:
    """Point the kernels (``env``) and ``jupyter.json`` (``info``) at the cluster the
    ``name`` app published; returns the hosts besides localhost the proxy must reach."""
    if name == "dask":
        env.update(dask_env(published["scheduler"], published.get("dashboard")))
        info.dask_scheduler = published["scheduler"]
        info.dask_dashboard = dashboard_proxy_path(published.get("dashboard"))
        return ()
    env.update(ray_env(published["address"]))
    info.ray_address = published["address"]
    info.ray_client = published.get("client")
    info.ray_dashboard = remote_proxy_path(published.get("dashboard"))
    dashboard_host = urlsplit(published.get("dashboard") or "").hostname
    return (dashboard_host,) if dashboard_host else ()


async def _until(ctx: AppContext, main: Awaitable[Any], *watchers: asyncio.Future[Any]) -> Any:
    """``main``'s result; False when the pilot drains first; a watcher's error (or a
    :class:`PilotkitError`) when one of ``watchers`` ends first."""
    work: asyncio.Future[Any] = asyncio.ensure_future(main)
    drained = asyncio.ensure_future(ctx.draining.wait())
    try:
        await asyncio.wait({work, drained, *watchers}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            return work.result()
        if drained.done():
            return False
        for watcher in watchers:
            if watcher.done():
                watcher.result()
        raise PilotkitError("the cluster behind the Jupyter server stopped")
    finally:
        for future in (work, drained):
            if not future.done():
                future.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await future


async def _end(ctx: AppContext, cluster_run: asyncio.Future[None]) -> None:
    """Let the cluster's app shut its cluster down: it does on a drain; otherwise cancel it."""
    if not cluster_run.done() and not ctx.draining.is_set():
        cluster_run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cluster_run
