"""Transports: framing, the unix socket and TCP (+TLS) listeners, one connection.

Nothing here knows what a method does: a :class:`Connection` reads frames and hands
each body to a dispatcher (:mod:`pilotkit.daemon.dispatch`); it writes frames and runs
the connection's streams. An SSH client reaches the unix socket through a stream-local
channel of ``sshd``, so the daemon needs no SSH code.

Limits that keep one peer from hurting the daemon: a frame over
:data:`~pilotkit.protocol.MAX_FRAME` gets a ``frame-too-large`` error and the
connection is closed; at most :attr:`Connection.MAX_INFLIGHT` requests run at once per
connection (reading pauses beyond that) and at most :attr:`Connection.MAX_STREAMS`
streams are open. A TCP peer that has not authenticated may send frames of at most
:attr:`Connection.PREAUTH_FRAME` bytes and must authenticate within
:attr:`Connection.AUTH_TIMEOUT` seconds; an authenticated one with no request in
flight and no stream open is closed after :attr:`Connection.IDLE_TIMEOUT` seconds of
silence; at most :attr:`Listeners.MAX_TCP` TCP connections are open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import PilotkitError
from ..protocol import ErrorCode, ErrorInfo, ErrorReply, FrameTooLarge, encode_frame, frame_length

log = logging.getLogger("pilotkit.daemon.transport")

_PEERCRED = struct.Struct("3i")


@dataclass(frozen=True)
class Peer:
    kind: str
    """``unix`` or ``tcp``."""
    uid: int | None = None
    pid: int | None = None
    address: str | None = None

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix peer pid {self.pid} uid {self.uid}"
        return f"tcp peer {self.address}"


class Dispatcher(Protocol):
    async def handle(self, conn: Connection, body: bytes) -> None: ...

    def connection_closed(self, conn: Connection) -> None: ...


class Connection:
    """One client: reads frames, writes frames, owns its streams and request tasks."""

    MAX_INFLIGHT = 64
    MAX_STREAMS = 64
    PREAUTH_FRAME = 64 * 1024
    """TCP: the largest frame before authentication (a ``hello`` is a few hundred bytes)."""
    AUTH_TIMEOUT = 10.0
    """TCP: seconds a new connection has to authenticate."""
    IDLE_TIMEOUT = 600.0
    """TCP: seconds of silence after which an idle authenticated connection is closed."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        dispatcher: Dispatcher,
        *,
        needs_auth: bool = False,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.dispatcher = dispatcher
        self.needs_auth = needs_auth
        self.authenticated = not needs_auth
        self.closing = False
        self._write_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(self.MAX_INFLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self.streams: dict[int, asyncio.Task[None]] = {}
        self._closed = asyncio.Event()

    # ------------------------------------------------------------------ reading

    async def serve(self) -> None:
        reader = self.reader
        try:
            while not self.closing:
                try:
                    async with asyncio.timeout(self._read_timeout()):
                        header = await reader.readexactly(4)
                        size = frame_length(header)
                        if not self.authenticated and size > self.PREAUTH_FRAME:
                            raise FrameTooLarge(size, f"frame of {size} bytes before authentication "
                                                f"(limit {self.PREAUTH_FRAME})")  # fmt: skip
                        body = await reader.readexactly(size)
                except FrameTooLarge as exc:
                    await self.send_error(None, ErrorCode.FRAME_TOO_LARGE, str(exc))
                    break
                except TimeoutError:
                    what = "authenticate" if not self.authenticated else "send a request"
                    log.info("%s: closed: it did not %s in time", self.peer, what)
                    await self.send_error(None, ErrorCode.LIMIT, f"closed: no {what.split()[-1]} in time")
                    break
                await self.dispatcher.handle(self, body)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass  # the peer went away, mid-frame or not
        except Exception:  # a bug: this connection goes, the daemon stays
            log.exception("%s: connection failed", self.peer)
        finally:
            await self.close()

    def _read_timeout(self) -> float | None:
        if not self.needs_auth:
            return None  # the unix socket: only the user's own processes
        if not self.authenticated:
            return self.AUTH_TIMEOUT
        if self.streams or self._tasks:
            return None  # a follower waits on events, not on the peer
        return self.IDLE_TIMEOUT

    # ------------------------------------------------------------------ writing

    async def send(self, data: bytes) -> None:
        """Write one length-prefixed frame."""
        async with self._write_lock:
            self.writer.write(data)
            await self.writer.drain()

    async def send_many(self, frames: list[bytes]) -> None:
        async with self._write_lock:
            self.writer.writelines(frames)
            await self.writer.drain()

    async def send_error(
        self,
        request_id: int | None,
        code: ErrorCode,
        message: str,
        *,
        data: Any = None,
        debug: str | None = None,
    ) -> None:
        reply = ErrorReply(id=request_id, error=ErrorInfo(code=code.value, message=message, data=data, debug=debug))
        with contextlib.suppress(ConnectionError, OSError):
            await self.send(encode_frame(reply))

    # ------------------------------------------------------------------ tasks

    async def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a request handler concurrently; waits while too many run already."""
        await self._slots.acquire()
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("request task failed: %r", task.exception())

    def start_stream(self, sub: int, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self.streams[sub] = task
        task.add_done_callback(lambda t: self._stream_done(sub, t))

    def _stream_done(self, sub: int, task: asyncio.Task[None]) -> None:
        if self.streams.get(sub) is task:
            del self.streams[sub]
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, (ConnectionError, OSError)):
                log.error("stream %d failed: %r", sub, exc)

    def stop_stream(self, sub: int) -> bool:
        task = self.streams.pop(sub, None)
        if task is None:
            return False
        task.cancel()
        return True

    # ------------------------------------------------------------------ closing

    def close_soon(self) -> None:
        """Close after the reply being written (an auth failure...)."""
        self.closing = True

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.closing = True
        pending = list(self.streams.values()) + list(self._tasks)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
        self.dispatcher.connection_closed(self)
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)

    async def wait_closed(self) -> None:
        await self._closed.wait()


# --------------------------------------------------------------------------- listeners


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix socket."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(data)
    return pid, uid, gid


OnConnection = Callable[[Connection], Awaitable[None]]


class Listeners:
    """The daemon's servers; each accepted peer becomes a :class:`Connection`."""

    MAX_TCP = 64
    """TCP connections open at once; one more is refused and closed."""

    def __init__(self, dispatcher: Dispatcher, on_connection: OnConnection) -> None:
        self.dispatcher = dispatcher
        self.on_connection = on_connection
        self._servers: list[asyncio.Server] = []
        self.addresses: list[str] = []
        self.tcp_open = 0

    async def unix(self, path: Path) -> None:
        uid = os.getuid()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            try:
                pid, peer_uid, _ = peer_credentials(sock)
            except OSError:
                writer.close()
                return
            conn = Connection(reader, writer, Peer("unix", uid=peer_uid, pid=pid), self.dispatcher)
            if peer_uid != uid:
                log.warning("refused unix peer pid %d uid %d (not uid %d)", pid, peer_uid, uid)
                await conn.send_error(
                    None, ErrorCode.PERMISSION_DENIED,
                    f"permission denied: this daemon serves uid {uid} only, you are uid {peer_uid}",
                )
                await conn.close()
                return
            await self.on_connection(conn)

        server = await asyncio.start_unix_server(accept, path=str(path))
        os.chmod(path, 0o600)
        self._servers.append(server)
        self.addresses.append(f"unix:{path}")

    async def tcp(self, host: str, port: int, tls: ssl.SSLContext | None) -> int:
        if tls is None and not is_loopback(host):
            raise PilotkitError(
                f"--tcp {host}:{port} is not a loopback address: TLS is required there "
                "(give --tls-cert and --tls-key)"
            )

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            address = writer.get_extra_info("peername")
            where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
            conn = Connection(reader, writer, Peer("tcp", address=where), self.dispatcher, needs_auth=True)
            if self.tcp_open >= self.MAX_TCP:
                log.warning("tcp %s refused: %d connections open already", where, self.tcp_open)
                await conn.send_error(None, ErrorCode.LIMIT, f"too many connections (limit {self.MAX_TCP})")
                await conn.close()
                return
            self.tcp_open += 1
            try:
                await self.on_connection(conn)
            finally:
                self.tcp_open -= 1

        try:
            server = await asyncio.start_server(accept, host, port, ssl=tls)
        except OSError as exc:
            raise PilotkitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._servers.append(server)
        bound = server.sockets[0].getsockname()[1]
        self.addresses.append(f"tcp{'+tls' if tls else ''}:{host}:{bound}")
        return int(bound)

    def close(self) -> None:
        for server in self._servers:
            server.close()

    async def wait_closed(self) -> None:
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise PilotkitError(f"cannot load the TLS certificate {cert} / key {key}: {exc}") from None
    return context


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise PilotkitError(f"--tcp wants HOST:PORT, got '{text}'")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)
