"""An async client for the pilotkit daemon (used by the CLI and the dashboard).

::

    async with connect() as client:                      # this machine's daemon
        pilot = await client.submit(Path("scan.toml").read_text(), path="scan.toml")
        async for item in client.events(pilot.pilot):     # replay, then live
            print(item.seq, item.event)

    async with connect(host="me@login.example.org") as client:   # over SSH
        for summary in await client.status():
            print(summary.id, summary.state)

The daemon is reached through its unix socket here, through a stream-local channel of
an SSH connection to another machine (no port is opened there), or through TCP (+TLS)
with the daemon's token. Errors from the daemon raise :class:`DaemonError` (a
:class:`~pilotkit.errors.PilotkitError`: the CLI prints its one line) carrying the
protocol's error code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from . import __version__
from .errors import PilotkitError
from .events import AnyEvent
from .events import decode as decode_event
from .protocol import (
    HEADER,
    MAX_FRAME,
    CampaignParams,
    CampaignResult,
    ControlResult,
    DescribeResult,
    ErrorCode,
    ErrorReply,
    EventsParams,
    FailuresParams,
    FailuresResult,
    HeartbeatParams,
    HelloParams,
    HelloResult,
    LogsParams,
    MetricSample,
    MetricsParams,
    NodesParams,
    NodesResult,
    Ok,
    PilotDetail,
    PilotParams,
    PilotSummary,
    QueueParams,
    QueueResult,
    Request,
    Response,
    RetryParams,
    RetryResult,
    ShutdownParams,
    StatusParams,
    StatusResult,
    StreamDropped,
    StreamEnd,
    StreamEvent,
    StreamLog,
    StreamMessage,
    StreamMetrics,
    SubmitParams,
    SubmitResult,
    SubscribeResult,
    TasksParams,
    TasksResult,
    TimelineParams,
    TimelineResult,
    UnsubscribeParams,
    ValidateParams,
    ValidateResult,
    decode_server,
    encode_frame,
    find_socket,
    runtime_dir,
)
from .vocab import TERMINAL_STATES as TERMINAL_STATES
from .vocab import TOKEN_FILE

T = TypeVar("T", bound=msgspec.Struct)



class DaemonError(PilotkitError):
    """An error reply from the daemon (or the connection to it failing)."""

    def __init__(self, code: str, message: str, data: Any = None, debug: str | None = None) -> None:
        super().__init__(message, title=code)
        self.code = code
        self.data = data
        self.debug = debug


@dataclass
class EventItem:
    """One event from the daemon's log, with its sequence number."""

    seq: int
    event: AnyEvent | dict[str, Any]
    """The typed event, or a plain dict for an event type this client does not know."""
    raw: bytes


@dataclass
class Gap:
    """``count`` items of a stream were dropped because this reader was too slow."""

    count: int


class _Reader(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


class _Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class Stream:
    """The items of one subscription, as they arrive; iterate with ``async for``."""

    QUEUE = 1024

    def __init__(self, client: Client, sub: int) -> None:
        self.client = client
        self.sub = sub
        self.queue: asyncio.Queue[StreamMessage | None] = asyncio.Queue(self.QUEUE)
        self.end_reason: str | None = None
        self.result: SubscribeResult | None = None

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> StreamMessage:
        if self.end_reason is not None:
            raise StopAsyncIteration
        item = await self.queue.get()
        if item is None:
            self.end_reason = self.end_reason or "connection closed"
            if self.client.error is not None:
                raise self.client.error
            raise StopAsyncIteration
        if isinstance(item, StreamEnd):
            self.end_reason = item.reason
            self.client._streams.pop(self.sub, None)
            raise StopAsyncIteration
        return item

    async def close(self) -> None:
        """Stop the stream (unsubscribe) unless it has ended."""
        if self.client._streams.pop(self.sub, None) is not None and self.end_reason is None:
            self.end_reason = "closed"
            with contextlib.suppress(PilotkitError, ConnectionError, OSError):
                await self.client.call("unsubscribe", UnsubscribeParams(sub=self.sub), Ok)


class Client:
    """One connection to a daemon; see :func:`connect`."""

    def __init__(self, reader: _Reader, writer: _Writer, *, where: str, on_close: Callable[[], Any] | None = None):
        self.where = where
        self._reader = reader
        self._writer = writer
        self._on_close = on_close
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Response | ErrorReply]] = {}
        self._streams: dict[int, Stream] = {}
        self._read_task: asyncio.Task[None] | None = None
        self.error: DaemonError | None = None
        """Why the connection ended, once it has."""
        self.server: HelloResult | None = None

    async def start(self, token: str | None = None) -> HelloResult:
        self._read_task = asyncio.ensure_future(self._read_loop())
        self.server = await self.call(
            "hello", HelloParams(client=f"pilotkit {__version__}", token=token), HelloResult
        )
        return self.server

    async def close(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(BaseException):
                await self._read_task
            self._read_task = None
        with contextlib.suppress(Exception):
            self._writer.close()
        if self._on_close is not None:
            with contextlib.suppress(Exception):
                result = self._on_close()
                if asyncio.iscoroutine(result):
                    await result

    # ------------------------------------------------------------------ plumbing

    async def _read_loop(self) -> None:
        error: DaemonError | None = None
        try:
            while True:
                header = await self._reader.readexactly(4)
                (size,) = HEADER.unpack(header)
                if size > MAX_FRAME:
                    raise DaemonError(ErrorCode.FRAME_TOO_LARGE.value, f"the daemon sent a frame of {size} bytes")
                message = decode_server(await self._reader.readexactly(size))
                if isinstance(message, (Response, ErrorReply)):
                    future = self._pending.pop(message.id, None) if message.id is not None else None
                    if future is not None:
                        if not future.done():
                            future.set_result(message)
                    elif isinstance(message, ErrorReply):
                        info = message.error
                        error = DaemonError(info.code, info.message, info.data, info.debug)
                    continue
                stream = self._streams.get(message.sub)
                if stream is not None:
                    await stream.queue.put(message)
        except DaemonError as exc:
            error = exc
        except (asyncio.IncompleteReadError, ConnectionError, OSError, msgspec.DecodeError, EOFError):
            pass
        finally:
            self.error = error or DaemonError("closed", f"the connection to the daemon ({self.where}) closed")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self.error)
            self._pending.clear()
            for stream in list(self._streams.values()):
                with contextlib.suppress(asyncio.QueueFull):
                    stream.queue.put_nowait(None)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def _send(self, request: Request) -> None:
        if self.error is not None:
            raise self.error
        self._writer.write(encode_frame(request))
        await self._writer.drain()

    async def call(self, method: str, params: msgspec.Struct | None, result_type: type[T]) -> T:
        """Send a request and wait for its result (raises :class:`DaemonError`)."""
        rid = self._new_id()
        future: asyncio.Future[Response | ErrorReply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        body = msgspec.Raw(msgspec.json.encode(params)) if params is not None else msgspec.Raw(b"{}")
        try:
            await self._send(Request(method=method, id=rid, params=body))
            reply = await future
        finally:
            self._pending.pop(rid, None)
        if isinstance(reply, ErrorReply):
            info = reply.error
            raise DaemonError(info.code, info.message, info.data, info.debug)
        return msgspec.json.decode(reply.result, type=result_type)

    async def notify(self, method: str, params: msgspec.Struct) -> None:
        """Send a request without an id: no reply, not even an error."""
        await self._send(Request(method=method, params=msgspec.Raw(msgspec.json.encode(params))))

    async def subscribe(self, method: str, params: msgspec.Struct) -> Stream:
        """Open a stream; its items arrive on the returned :class:`Stream`."""
        rid = self._new_id()
        stream = Stream(self, rid)
        self._streams[rid] = stream
        future: asyncio.Future[Response | ErrorReply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await self._send(Request(method=method, id=rid, params=msgspec.Raw(msgspec.json.encode(params))))
            reply = await future
        except BaseException:
            self._streams.pop(rid, None)
            raise
        finally:
            self._pending.pop(rid, None)
        if isinstance(reply, ErrorReply):
            self._streams.pop(rid, None)
            info = reply.error
            raise DaemonError(info.code, info.message, info.data, info.debug)
        stream.result = msgspec.json.decode(reply.result, type=SubscribeResult)
        return stream

    # ------------------------------------------------------------------ methods

    async def submit(
        self, spec: str, *, path: str | None = None, workdir: str | None = None, profile: str | None = None,
        to: str | None = None,
    ) -> SubmitResult:
        params = SubmitParams(spec=spec, path=path, workdir=workdir, profile=profile, to=to)
        return await self.call("submit", params, SubmitResult)

    async def validate(self, spec: str, *, path: str | None = None, profile: str | None = None) -> ValidateResult:
        """Check a spec with the daemon's plugins, as ``submit`` would, without running
        it. ``path``: where the spec lives on the daemon's machine (file name in the
        problems, ``{spec_dir}``). An invalid spec is a result (``valid`` false, every
        problem in ``problems``), not an error."""
        return await self.call("validate", ValidateParams(spec=spec, path=path, profile=profile), ValidateResult)

    async def status(self, pilot: str | None = None) -> list[PilotSummary]:
        return (await self.call("status", StatusParams(pilot=pilot), StatusResult)).pilots

    async def status_full(self, pilot: str | None = None) -> StatusResult:
        return await self.call("status", StatusParams(pilot=pilot), StatusResult)

    async def pilot(self, pilot: str) -> PilotDetail:
        return await self.call("pilot", PilotParams(pilot=pilot), PilotDetail)

    async def campaign(self, campaign: str) -> CampaignResult:
        return await self.call("campaign", CampaignParams(campaign=campaign), CampaignResult)

    async def tasks(
        self, pilot: str, *, status: list[str] | None = None, group: str | None = None, offset: int = 0,
        limit: int = 100,
    ) -> TasksResult:
        params = TasksParams(pilot=pilot, status=status, group=group, offset=offset, limit=limit)
        return await self.call("tasks", params, TasksResult)

    async def queue(self, pilot: str, *, limit: int = 200, window: float = 300.0) -> QueueResult:
        """What waits in ``pilot`` and why; its rate and ETA against the walltime."""
        return await self.call("queue", QueueParams(pilot=pilot, limit=limit, window=window), QueueResult)

    async def describe(self, pilot: str) -> DescribeResult:
        """A pilot's spec, resources, job, nodes and files."""
        return await self.call("describe", PilotParams(pilot=pilot), DescribeResult)

    async def failures(self, pilot: str, *, limit: int = 1000) -> FailuresResult:
        """Failed tasks grouped by outcome, exit code and the last line of their stderr."""
        return await self.call("failures", FailuresParams(pilot=pilot, limit=limit), FailuresResult)

    async def timeline(self, pilot: str, *, limit: int = 20_000, min_gap: float = 1.0) -> TimelineResult:
        """Which task ran on which node and when, in rows per node, with idle gaps."""
        return await self.call("timeline", TimelineParams(pilot=pilot, limit=limit, min_gap=min_gap), TimelineResult)

    async def nodes(self, pilot: str) -> NodesResult:
        """Each node now: cores, memory, GPUs with their tasks, the tasks running there."""
        return await self.call("nodes", NodesParams(pilot=pilot), NodesResult)

    async def drain(self, pilot: str) -> ControlResult:
        return await self.call("drain", PilotParams(pilot=pilot), ControlResult)

    async def cancel(self, pilot: str) -> ControlResult:
        return await self.call("cancel", PilotParams(pilot=pilot), ControlResult)

    async def retry(self, pilot: str, *, failed: bool = True, tasks: list[str] | None = None) -> RetryResult:
        """Run a finished pilot again: its failed tasks (only ``tasks`` of them, if given)
        and its unfinished ones."""
        return await self.call("retry", RetryParams(pilot=pilot, failed=failed, tasks=tasks or []), RetryResult)

    async def shutdown(self, *, force: bool = False) -> None:
        await self.call("shutdown", ShutdownParams(force=force), Ok)

    async def heartbeat(self, sample: HeartbeatParams) -> None:
        await self.notify("agent.heartbeat", sample)

    async def events(
        self, pilot: str | None = None, *, since: int = 0, follow: bool = True, types: list[str] | None = None,
    ) -> AsyncIterator[EventItem | Gap]:
        """Stored events after ``since``, then (``follow``) live ones until the pilot
        finishes. A :class:`Gap` says how many live events this reader was too slow for."""
        stream = await self.subscribe("events", EventsParams(pilot=pilot, since=since, follow=follow, types=types))
        try:
            async for item in stream:
                if isinstance(item, StreamEvent):
                    yield EventItem(item.seq, _decode_event(item.event), bytes(item.event))
                elif isinstance(item, StreamDropped):
                    yield Gap(item.count)
        finally:
            await stream.close()

    async def metrics(self, pilot: str | None = None, *, history: bool = True) -> AsyncIterator[MetricSample | Gap]:
        stream = await self.subscribe("metrics", MetricsParams(pilot=pilot, history=history))
        try:
            async for item in stream:
                if isinstance(item, StreamMetrics):
                    yield item.sample
                elif isinstance(item, StreamDropped):
                    yield Gap(item.count)
        finally:
            await stream.close()

    async def logs(
        self, pilot: str, task: str | None = None, *, stderr: bool = False, attempt: int | None = None,
        tail: int = 100, follow: bool = False,
    ) -> AsyncIterator[str]:
        """Text of a task's stdout (or stderr) or of the pilot's log, as it is written."""
        async for item in self.log_items(pilot, task, stderr=stderr, attempt=attempt, tail=tail, follow=follow):
            yield item.data

    async def log_items(
        self, pilot: str, task: str | None = None, *, stderr: bool = False, attempt: int | None = None,
        tail: int = 100, follow: bool = False,
    ) -> AsyncIterator[StreamLog]:
        """As :meth:`logs`, each piece with the time its lines were written (``times``)."""
        params = LogsParams(
            pilot=pilot, task=task, stream="stderr" if stderr else "stdout", attempt=attempt, tail=tail,
            follow=follow,
        )
        stream = await self.subscribe("logs", params)
        try:
            async for item in stream:
                if isinstance(item, StreamLog):
                    yield item
        finally:
            await stream.close()

    async def wait(self, pilot: str, on_state: Callable[[str, str | None], None] | None = None) -> PilotSummary:
        """Until ``pilot`` has finished; ``on_state(state, reason)`` sees each change."""
        async for item in self.events(pilot, types=["pilot-state"]):
            if isinstance(item, EventItem) and on_state is not None:
                event = item.event
                state = getattr(event, "state", None)
                if isinstance(state, str):
                    on_state(state, getattr(event, "reason", None))
        (summary,) = await self.status(pilot)
        return summary


def _decode_event(raw: msgspec.Raw) -> AnyEvent | dict[str, Any]:
    try:
        return decode_event(bytes(raw))
    except (msgspec.ValidationError, msgspec.DecodeError):
        value = msgspec.json.decode(bytes(raw))
        return value if isinstance(value, dict) else {"value": value}


# --------------------------------------------------------------------------- connecting


@dataclass
class Target:
    """Where the daemon is. Default: this machine's unix socket."""

    host: str | None = None
    """``[user@]host`` (or an alias of the SSH config) to reach over SSH."""
    socket: str | None = None
    """The daemon's unix socket (here, or on ``host``)."""
    ssh_config: str | None = None
    remote_command: str | None = None
    """How to run pilotkit on ``host`` to ask for its socket (default ``pilotkit``)."""
    tcp: str | None = None
    """``HOST:PORT`` of a daemon listening on TCP."""
    token: str | None = None
    """TCP: the token (hex); default ``$PILOTKIT_TOKEN`` or the local runtime dir's."""
    tls_ca: str | None = None
    """TCP: use TLS, trusting this CA file (or the system's with ``tls_ca=''``)."""


@asynccontextmanager
async def connect(host: str | None = None, **options: Any) -> AsyncIterator[Client]:
    """Connect to a daemon (see :class:`Target` for the options), say hello, yield the
    client, close it after."""
    target = Target(host=host, **options)
    client = await open_client(target)
    try:
        yield client
    finally:
        await client.close()


async def open_client(target: Target) -> Client:
    token: str | None = None
    if target.host:
        client = await _ssh_client(target)
    elif target.tcp:
        client, token = await _tcp_client(target)
    else:
        client = await _unix_client(Path(target.socket) if target.socket else find_socket())
    try:
        await client.start(token)
    except BaseException:
        await client.close()
        raise
    return client


async def _unix_client(path: Path) -> Client:
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except FileNotFoundError:
        raise PilotkitError(
            f"no pilotkit daemon is running (no socket at {path}); start one with 'pilotkit daemon --detach'"
        ) from None
    except ConnectionRefusedError:
        raise PilotkitError(f"no pilotkit daemon answers at {path} (a stale socket)") from None
    except PermissionError:
        raise PilotkitError(f"cannot reach the daemon at {path}: permission denied") from None
    except OSError as exc:
        raise PilotkitError(f"cannot reach the daemon at {path}: {exc.strerror or exc}") from None
    return Client(reader, writer, where=str(path))


async def _tcp_client(target: Target) -> tuple[Client, str]:
    assert target.tcp is not None
    host, sep, port = target.tcp.rpartition(":")
    if not sep or not port.isdigit():
        raise PilotkitError(f"--tcp wants HOST:PORT, got '{target.tcp}'")
    host = host.strip("[]") or "127.0.0.1"
    token = target.token or os.environ.get("PILOTKIT_TOKEN")
    if token is None:
        path = runtime_dir() / TOKEN_FILE
        try:
            token = (await asyncio.to_thread(path.read_text)).strip()
        except OSError:
            raise PilotkitError(f"no token: give --token or PILOTKIT_TOKEN (the daemon writes it to {path})") from None
    context: ssl.SSLContext | None = None
    if target.tls_ca is not None:
        context = ssl.create_default_context(cafile=target.tls_ca or None)
    try:
        reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
    except (OSError, ssl.SSLError) as exc:
        raise PilotkitError(f"cannot reach the daemon at {host}:{port}: {exc}") from None
    return Client(reader, writer, where=f"{host}:{port}"), token


async def _ssh_client(target: Target) -> Client:
    from .ssh import import_asyncssh, ssh_connect

    asyncssh = import_asyncssh()

    assert target.host is not None
    where = target.host
    conn = await ssh_connect(target.host, ssh_config=target.ssh_config)
    try:
        paths = [target.socket] if target.socket else await _remote_sockets(conn, target)
        tried: list[str] = []
        for path in paths:
            try:
                reader, writer = await conn.open_unix_connection(path)
            except asyncssh.ChannelOpenError as exc:
                tried.append(f"{path}: {exc.reason}")
                continue

            async def close_connection() -> None:
                conn.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.wait_closed(), 2.0)

            return Client(reader, writer, where=f"{where}:{path}", on_close=close_connection)
        raise PilotkitError(f"ssh {where}: no pilotkit daemon is running there (tried {'; '.join(tried)})")
    except BaseException:
        conn.close()
        raise


async def _remote_sockets(conn: Any, target: Target) -> list[str]:
    """Ask the remote pilotkit where its daemon's socket is; without a pilotkit on the
    remote PATH, try the default places for the remote uid."""
    command = target.remote_command or "pilotkit"
    result = await conn.run(f"{command} daemon --socket-path", check=False, timeout=60)
    out = str(result.stdout or "").strip().splitlines()
    if result.exit_status == 0 and out:
        return [out[-1].strip()]
    result = await conn.run("id -u", check=False, timeout=30)
    uid = str(result.stdout or "").strip()
    if result.exit_status != 0 or not uid.isdigit():
        raise PilotkitError(f"ssh {target.host}: cannot find the daemon's socket (pilotkit and 'id -u' failed)")
    return [f"/tmp/pilotkit-{uid}/daemon.sock", f"/run/user/{uid}/pilotkit/daemon.sock"]
