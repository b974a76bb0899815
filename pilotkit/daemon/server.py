"""The daemon's lifecycle: start-up, serve, shut down, as separate phases.

Start-up takes the one-daemon lock (cleaning a crashed daemon's socket and pid file),
opens the state database, restores the pilots (resuming local ones, re-attaching batch
ones), then listens. Serving waits for a reason to stop. Shutting down stops listening,
lets local pilots drain for ``shutdown_timeout`` seconds (then stops their tasks),
detaches batch pilots (their allocations keep running), ends every stream, closes the
connections and the database, and marks this run clean.

Signals: the first SIGTERM or SIGINT shuts down as above; a second one forces it (tasks
are killed at once). SIGHUP does not stop the daemon; it reopens the log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import queue
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..plugins import Plugins
from ..protocol import DaemonInfo
from .dispatch import Api
from .metrics import LocalSampler, MetricsBuffer
from .pilots import PilotManager
from .runtime_dir import DaemonLock, RuntimeFiles, ensure_private_dir
from .store import Store
from .transport import Connection, Listeners, server_tls

log = logging.getLogger("pilotkit.daemon")


@dataclass
class DaemonConfig:
    runtime_dir: Path
    state_dir: Path
    tcp: tuple[str, int] | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shutdown_timeout: float = 30.0
    """Seconds local pilots may drain at shutdown before their tasks are stopped."""
    metrics_interval: float = 1.0
    gpu_metrics: bool = True

    @property
    def database(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "daemon.log"


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.files = RuntimeFiles(config.runtime_dir)
        self.lock = DaemonLock(self.files)
        self.started = time.time()
        self.should_exit = asyncio.Event()
        self.force_exit = asyncio.Event()
        self.on_hangup: list[object] = []
        self._signals = 0
        self._background: list[asyncio.Task[None]] = []
        self.store: Store | None = None
        self.manager: PilotManager | None = None
        self.api: Api | None = None
        self.listeners: Listeners | None = None
        self.metrics = MetricsBuffer()
        self.run_id = 0
        self.crashes = 0
        self.tcp_port: int | None = None

    # ------------------------------------------------------------------ phases

    async def run(self) -> None:
        await self.startup()
        try:
            await self.serve()
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        config = self.config
        ensure_private_dir(config.runtime_dir)
        self.lock.acquire()
        try:
            await self._startup()
        except BaseException:
            if self.listeners is not None:
                self.listeners.close()
            if self.store is not None:
                await self.store.close()
            self.lock.release()
            raise

    async def _startup(self) -> None:
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = self.store = Store(config.database)
        await store.open()
        crashed = await self._record_start(store)
        plugins = await asyncio.to_thread(lambda: Plugins().load())
        for name, error in plugins.errors.items():
            log.warning("plugin %s failed to load and is skipped: %s", name, error)
        manager = self.manager = PilotManager(store, plugins, self.metrics, config.state_dir)
        await manager.load()
        token = self._write_token() if config.tcp is not None else None
        self.api = Api(manager, self.metrics, info=self.info, request_shutdown=self.request_shutdown, token=token)
        await manager.recover(crashed)
        self.listeners = Listeners(self.api, self._serve_connection)
        await self.listeners.unix(self.files.socket)
        if config.tcp is not None:
            host, port = config.tcp
            tls = None
            if config.tls_cert is not None and config.tls_key is not None:
                tls = server_tls(config.tls_cert, config.tls_key)
            self.tcp_port = await self.listeners.tcp(host, port, tls)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal, sig)
        sampler = LocalSampler(
            self.metrics, manager.runs.live_local, interval=config.metrics_interval, gpus=config.gpu_metrics
        )
        self._background = [asyncio.ensure_future(sampler.run()), asyncio.ensure_future(self._progress())]
        log.info(
            "pilotkit daemon %s ready (pid %d): %s; state %s; %d pilot(s) known",
            __version__, os.getpid(), ", ".join(self.listeners.addresses), config.database, len(manager.records),
        )

    async def serve(self) -> None:
        await self.should_exit.wait()

    async def shutdown(self) -> None:
        log.info("shutting down")
        if self.listeners is not None:
            self.listeners.close()
        if self.manager is not None:
            await self.manager.shutdown(self.config.shutdown_timeout, self.force_exit)
            self.manager.recorder.hub.close_all()
        self.metrics.hub.close_all()
        if self.api is not None:
            connections = list(self.api.connections)
            if connections:
                await asyncio.sleep(0.05)  # let the streams send their end
                await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
        if self.listeners is not None:
            await self.listeners.wait_closed()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(BaseException):
                await task
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if self.store is not None:
            if self.manager is not None:
                await self.manager.snapshot_progress()
            await self.store.commit(
                "UPDATE daemon_runs SET ended = ?, clean = 1 WHERE id = ?", (time.time(), self.run_id)
            )
            await self.store.close()
        with contextlib.suppress(FileNotFoundError):
            self.files.token.unlink()
        self.lock.release()
        log.info("stopped")

    # ------------------------------------------------------------------ helpers

    async def _record_start(self, store: Store) -> bool:
        """Record this run; True when the previous one did not shut down cleanly."""
        rows = await store.query("SELECT id, clean FROM daemon_runs ORDER BY id DESC LIMIT 1")
        crashed = bool(rows) and not rows[0][1]
        ((unclean,),) = await store.query("SELECT count(*) FROM daemon_runs WHERE clean = 0")
        self.crashes = int(unclean)
        self.run_id = (rows[0][0] + 1) if rows else 1
        await store.commit(
            "INSERT INTO daemon_runs (id, pid, host, started) VALUES (?, ?, ?, ?)",
            (self.run_id, os.getpid(), socket.gethostname(), self.started),
        )
        if crashed:
            log.warning("the previous daemon did not shut down cleanly: restoring its pilots")
        return crashed

    def _write_token(self) -> bytes:
        token = secrets.token_bytes(32)
        path = self.files.token
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, token.hex().encode() + b"\n")
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return token

    async def _serve_connection(self, conn: Connection) -> None:
        assert self.api is not None
        if self.should_exit.is_set():
            await conn.close()
            return
        self.api.connections.add(conn)
        await conn.serve()

    async def _progress(self) -> None:
        assert self.manager is not None
        while True:
            await asyncio.sleep(PilotManager.PROGRESS_EVERY)
            await self.manager.snapshot_progress()

    def info(self) -> DaemonInfo:
        return DaemonInfo(
            pid=os.getpid(), host=socket.gethostname(), version=__version__, started=self.started,
            connections=len(self.api.connections) if self.api else 0,
            requests=self.api.requests if self.api else 0,
            events=self.manager.recorder.recorded if self.manager else 0,
            crashes=self.crashes,
        )

    def request_shutdown(self, force: bool = False) -> None:
        if force:
            self.force_exit.set()
        self.should_exit.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        if sig is signal.SIGHUP:
            log.info("SIGHUP: the daemon keeps running; log file reopened")
            for reopen in self.on_hangup:
                if callable(reopen):
                    reopen()
            return
        self._signals += 1
        if self._signals == 1:
            log.info("%s: shutting down (local pilots drain; send it again to force)", sig.name)
            self.should_exit.set()
        else:
            log.warning("%s again: forcing the shutdown", sig.name)
            self.request_shutdown(force=True)


# --------------------------------------------------------------------------- logging


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the log thread; drops them (counted) rather than block."""

    dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class DaemonLogging:
    """The daemon logs through a bounded queue to a thread that writes the files, so a
    slow disk never blocks the event loop."""

    def __init__(self, log_file: Path, *, console: bool) -> None:
        self.log_file = log_file
        logger = logging.getLogger("pilotkit")
        logger.setLevel(logging.DEBUG)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.file = logging.FileHandler(log_file)
        self.file.setLevel(logging.INFO)
        self.file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        targets: list[logging.Handler] = [*logger.handlers, self.file]
        if console:
            stream = logging.StreamHandler(sys.stderr)
            stream.setLevel(logging.INFO)
            stream.setFormatter(logging.Formatter("pilotkit daemon: %(message)s"))
            targets.append(stream)
        self._moved = list(logger.handlers)
        for handler in self._moved:
            logger.removeHandler(handler)
        self.queue: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=10_000)
        self.handler = _DroppingQueueHandler(self.queue)
        logger.addHandler(self.handler)
        self.listener = logging.handlers.QueueListener(self.queue, *targets, respect_handler_level=True)
        self.listener.start()

    def reopen(self) -> None:
        """After log rotation: the next record opens the file again."""
        with self.file.lock or contextlib.nullcontext():
            self.file.close()

    def stop(self) -> None:
        self.listener.stop()
        logger = logging.getLogger("pilotkit")
        logger.removeHandler(self.handler)
        for handler in self._moved:
            logger.addHandler(handler)
        self.file.close()


def run_daemon(config: DaemonConfig, *, console: bool = True) -> None:
    """Run a daemon in this process until it is told to stop (the ``pilotkit daemon``
    command). Raises :class:`~pilotkit.errors.PilotkitError` when it cannot start."""
    logs = DaemonLogging(config.log_file, console=console)

    async def main() -> None:
        daemon = Daemon(config)
        daemon.on_hangup.append(logs.reopen)
        await daemon.run()

    try:
        asyncio.run(main())
    finally:
        logs.stop()
