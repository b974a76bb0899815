"""Dispatch: the method-name table and its handlers.

:class:`Api` turns one frame body into a call: decode the envelope, look the method up,
decode its typed params, run the handler, encode the reply. Bad input never reaches a
handler and never closes the connection: it gets a typed error reply. Cheap handlers run
inline in the connection's read loop (``hello``, ``status``, heartbeats); the others run
as tasks, so a slow one does not hold up the next request. Stream methods reply with
the stream's id and then push items until the stream ends or is unsubscribed.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hmac
import logging
import os
import socket
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from .. import __version__
from ..errors import PilotkitError, SpecError
from ..events import PilotStateChanged
from ..protocol import (
    METHODS,
    SUPPORTED_VERSIONS,
    DaemonInfo,
    ErrorCode,
    EventsParams,
    HeartbeatParams,
    HelloParams,
    HelloResult,
    LogsParams,
    MethodSpec,
    MetricSample,
    MetricsParams,
    Ok,
    PilotParams,
    Request,
    Response,
    RetryParams,
    ShutdownParams,
    StatusParams,
    StatusResult,
    StreamDropped,
    StreamEnd,
    StreamEvent,
    StreamLog,
    StreamMetrics,
    SubmitParams,
    SubscribeResult,
    TasksParams,
    UnsubscribeParams,
    encode_frame,
)
from ..states import TaskStatus
from ..vocab import attempt_log
from .metrics import MetricsBuffer
from .pilots import TERMINAL, ApiError, EventItem, PilotManager
from .store import Store
from .streams import Dropped, Subscription
from .transport import Connection

log = logging.getLogger("pilotkit.daemon.dispatch")

_request_decoder = msgspec.json.Decoder(Request)
_state_decoder = msgspec.json.Decoder(PilotStateChanged)


@dataclass
class StreamStart:
    """What a stream handler returns: the reply, then the coroutine that feeds the stream."""

    result: msgspec.Struct
    run: Callable[[], Coroutine[Any, Any, None]]


Handler = Callable[[Connection, "int | None", Any], Any]


@dataclass(frozen=True)
class Entry:
    method: MethodSpec
    handler: Handler
    inline: bool = False
    """A plain function run in the read loop (cheap, no I/O)."""


class Api:
    """The daemon's methods (see ``share/docs/api.md``)."""

    EVENTS_CAPACITY = 8192
    METRICS_CAPACITY = 2048
    LOG_POLL = 0.25
    LOG_CHUNK = 64 * 1024

    def __init__(
        self,
        manager: PilotManager,
        metrics: MetricsBuffer,
        store: Store,
        *,
        info: Callable[[], DaemonInfo],
        request_shutdown: Callable[[bool], None],
        token: bytes | None = None,
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.store = store
        self.info = info
        self.request_shutdown = request_shutdown
        self.token = token
        self.requests = 0
        self.connections: set[Connection] = set()
        self.table: dict[str, Entry] = {}
        for name, handler, inline in (
            ("hello", self.hello, True),
            ("submit", self.submit, False),
            ("status", self.status, True),
            ("list", self.status, True),
            ("pilot", self.pilot, False),
            ("tasks", self.tasks, False),
            ("events", self.events, False),
            ("metrics", self.metrics_stream, False),
            ("logs", self.logs, False),
            ("unsubscribe", self.unsubscribe, True),
            ("drain", self.drain, False),
            ("cancel", self.cancel, False),
            ("retry", self.retry, False),
            ("shutdown", self.shutdown, True),
            ("agent.heartbeat", self.heartbeat, True),
        ):
            self.table[name] = Entry(METHODS[name], handler, inline)
        missing = set(METHODS) - set(self.table)
        assert not missing, f"methods without a handler: {missing}"

    # ------------------------------------------------------------------ dispatching

    async def handle(self, conn: Connection, body: bytes) -> None:
        self.requests += 1
        try:
            request = _request_decoder.decode(body)
        except msgspec.ValidationError as exc:
            await conn.send_error(_salvage_id(body), ErrorCode.INVALID_REQUEST, f"not a valid request: {exc}")
            return
        except msgspec.DecodeError as exc:
            await conn.send_error(None, ErrorCode.PARSE_ERROR, f"frame is not valid JSON: {exc}")
            return
        rid = request.id
        if not conn.authenticated and request.method != "hello":
            await conn.send_error(rid, ErrorCode.UNAUTHENTICATED, "authenticate first: send 'hello' with the token")
            conn.close_soon()
            return
        entry = self.table.get(request.method)
        if entry is None:
            if rid is not None:
                await conn.send_error(
                    rid, ErrorCode.UNKNOWN_METHOD, f"unknown method '{request.method}'",
                    data={"methods": sorted(self.table)},
                )
            return
        try:
            params = msgspec.json.decode(request.params, type=entry.method.params)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            if rid is not None:
                await conn.send_error(rid, ErrorCode.INVALID_PARAMS, f"{request.method}: {exc}")
            return
        if entry.method.stream and rid is None:
            return  # a stream needs an id to be addressed by
        if entry.inline:
            try:
                result = entry.handler(conn, rid, params)
            except Exception as exc:
                await self._fail(conn, rid, exc)
                return
            await self._reply(conn, rid, result)
        else:
            await conn.spawn(self._call(conn, rid, entry, params))

    async def _call(self, conn: Connection, rid: int | None, entry: Entry, params: Any) -> None:
        try:
            result = await entry.handler(conn, rid, params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail(conn, rid, exc)
            return
        await self._reply(conn, rid, result)

    async def _reply(self, conn: Connection, rid: int | None, result: Any) -> None:
        if rid is None:
            return
        stream = result if isinstance(result, StreamStart) else None
        body = stream.result if stream is not None else result
        with contextlib.suppress(ConnectionError, OSError):
            await conn.send(encode_frame(Response(id=rid, result=msgspec.Raw(msgspec.json.encode(body)))))
            if stream is not None:
                conn.start_stream(rid, stream.run())

    async def _fail(self, conn: Connection, rid: int | None, exc: Exception) -> None:
        if isinstance(exc, ApiError):
            if rid is not None or exc.close:
                await conn.send_error(rid, exc.code, exc.message, data=exc.data)
            if exc.close:
                conn.close_soon()
            return
        if rid is None:
            if not isinstance(exc, PilotkitError):
                log.error("notification failed: %r", exc)
            return
        if isinstance(exc, SpecError):
            await conn.send_error(
                rid, ErrorCode.INVALID_SPEC, f"invalid spec: {len(exc.problems)} problem(s)\n{exc.message}",
                data={"problems": [p.to_dict() for p in exc.problems]},
            )
        elif isinstance(exc, PilotkitError):
            await conn.send_error(rid, ErrorCode.FAILED, exc.message)
        else:
            log.exception("internal error in a request")
            await conn.send_error(
                rid, ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}",
                debug="".join(traceback.format_exception(exc)),
            )

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)

    # ------------------------------------------------------------------ methods

    def hello(self, conn: Connection, rid: int | None, params: HelloParams) -> HelloResult:
        if params.protocol not in SUPPORTED_VERSIONS:
            raise ApiError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol {params.protocol} is not supported (this daemon speaks {list(SUPPORTED_VERSIONS)})",
                data={"supported": list(SUPPORTED_VERSIONS)},
            )
        if conn.needs_auth and not conn.authenticated:
            if not _token_ok(self.token, params.token):
                log.warning("%s: wrong token", conn.peer)
                raise ApiError(ErrorCode.AUTH_FAILED, "authentication failed: wrong token", close=True)
            conn.authenticated = True
        return HelloResult(
            protocol=params.protocol, version=__version__, pid=os.getpid(), host=socket.gethostname(),
            uid=os.getuid(), methods=sorted(self.table),
        )

    async def submit(self, conn: Connection, rid: int | None, params: SubmitParams) -> msgspec.Struct:
        result = await self.manager.submit(params)
        log.info("%s submitted pilot %s", conn.peer, result.pilot)
        return result

    def status(self, conn: Connection, rid: int | None, params: StatusParams) -> StatusResult:
        return StatusResult(pilots=self.manager.status(params.pilot), daemon=self.info())

    async def pilot(self, conn: Connection, rid: int | None, params: PilotParams) -> msgspec.Struct:
        return await self.manager.detail(params.pilot)

    async def tasks(self, conn: Connection, rid: int | None, params: TasksParams) -> msgspec.Struct:
        return await self.manager.tasks(params)

    async def drain(self, conn: Connection, rid: int | None, params: PilotParams) -> msgspec.Struct:
        return await self.manager.drain(params.pilot)

    async def cancel(self, conn: Connection, rid: int | None, params: PilotParams) -> msgspec.Struct:
        return await self.manager.cancel(params.pilot)

    async def retry(self, conn: Connection, rid: int | None, params: RetryParams) -> msgspec.Struct:
        return await self.manager.retry(params.pilot, params.failed)

    def shutdown(self, conn: Connection, rid: int | None, params: ShutdownParams) -> Ok:
        log.info("%s asked the daemon to shut down%s", conn.peer, " (force)" if params.force else "")
        asyncio.get_running_loop().call_soon(self.request_shutdown, params.force)
        return Ok()

    def heartbeat(self, conn: Connection, rid: int | None, params: HeartbeatParams) -> Ok:
        self.manager.heartbeat(MetricSample(
            pilot=params.pilot, node=params.node, t=params.t, cpu_percent=params.cpu_percent,
            memory_used=params.memory_used, memory_total=params.memory_total, gpus=params.gpus,
        ))
        return Ok()

    def unsubscribe(self, conn: Connection, rid: int | None, params: UnsubscribeParams) -> Ok:
        if not conn.stop_stream(params.sub):
            raise ApiError(ErrorCode.NOT_FOUND, f"no stream {params.sub} on this connection")
        return Ok()

    def _check_streams(self, conn: Connection, rid: int | None) -> int:
        assert rid is not None
        if rid in conn.streams:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"a stream with id {rid} is already open")
        if len(conn.streams) >= conn.MAX_STREAMS:
            raise ApiError(ErrorCode.LIMIT, f"at most {conn.MAX_STREAMS} streams per connection")
        return rid

    # ------------------------------------------------------------------ streams

    async def events(self, conn: Connection, rid: int | None, params: EventsParams) -> StreamStart:
        sub_id = self._check_streams(conn, rid)
        manager = self.manager
        pilot_id: str | None = None
        finished = False
        if params.pilot is not None:
            record = manager.get(params.pilot)
            pilot_id = record.id
            finished = record.terminal and pilot_id not in manager.live
        types = frozenset(params.types) if params.types else None
        accept: Callable[[EventItem], bool] | None = None
        if types is not None:
            # A one-pilot stream still takes the pilot's state changes: it ends on the last.
            wanted = types | {"pilot-state"} if pilot_id is not None else types

            def accept(item: EventItem) -> bool:
                return item[1] in wanted

        sub: Subscription[EventItem] = Subscription(self.EVENTS_CAPACITY, accept)
        live = params.follow and not finished
        if live:
            manager.events.add(pilot_id, sub)
        upto = manager.seq

        async def run() -> None:
            try:
                last = await self._replay(conn, sub_id, pilot_id, params.since, upto, types)
                reason = "replayed"
                if live:
                    reason = await self._live_events(conn, sub_id, sub, pilot_id, last, types)
                await conn.send(encode_frame(StreamEnd(sub=sub_id, reason=reason)))
            finally:
                if live:
                    manager.events.remove(pilot_id, sub)

        return StreamStart(SubscribeResult(sub=sub_id, seq=upto), run)

    async def _replay(
        self, conn: Connection, sub_id: int, pilot_id: str | None, since: int, upto: int,
        types: frozenset[str] | None,
    ) -> int:
        if since < 0:
            return upto  # live events only
        last = since
        if last >= upto:
            return max(last, upto)
        await self.store.barrier()
        where = "seq > ? AND seq <= ?" + (" AND pilot = ?" if pilot_id is not None else "")
        sql = f"SELECT seq, type, data FROM events WHERE {where} ORDER BY seq LIMIT 1000"
        while last < upto:
            args: tuple[Any, ...] = (last, upto) if pilot_id is None else (last, upto, pilot_id)
            rows = await self.store.query(sql, args)
            if not rows:
                break
            frames = [
                encode_frame(StreamEvent(sub=sub_id, seq=seq, event=msgspec.Raw(data)))
                for seq, etype, data in rows
                if types is None or etype in types
            ]
            if frames:
                await conn.send_many(frames)
            last = rows[-1][0]
        return upto

    async def _live_events(
        self, conn: Connection, sub_id: int, sub: Subscription[EventItem], pilot_id: str | None, last: int,
        types: frozenset[str] | None,
    ) -> str:
        while True:
            batch = await sub.take()
            if not batch:
                return "the daemon is shutting down"
            frames: list[bytes] = []
            ended = False
            for item in batch:
                if isinstance(item, Dropped):
                    frames.append(encode_frame(StreamDropped(sub=sub_id, count=item.count)))
                    continue
                seq, etype, data = item
                if seq <= last:
                    continue
                if types is None or etype in types:
                    frames.append(encode_frame(StreamEvent(sub=sub_id, seq=seq, event=msgspec.Raw(data))))
                if pilot_id is not None and etype == "pilot-state":
                    ended = ended or _state_decoder.decode(data).state in TERMINAL
            if frames:
                await conn.send_many(frames)
            if ended:
                return "the pilot finished"

    async def metrics_stream(self, conn: Connection, rid: int | None, params: MetricsParams) -> StreamStart:
        sub_id = self._check_streams(conn, rid)
        pilot_id = self.manager.get(params.pilot).id if params.pilot is not None else None
        sub: Subscription[MetricSample] = Subscription(self.METRICS_CAPACITY)
        hub = self.metrics.hub
        hub.add(pilot_id, sub)
        history = self.metrics.history(pilot_id) if params.history else []

        async def run() -> None:
            try:
                if history:
                    await conn.send_many([encode_frame(StreamMetrics(sub=sub_id, sample=s)) for s in history])
                while True:
                    batch = await sub.take()
                    if not batch:
                        break
                    await conn.send_many([
                        encode_frame(StreamDropped(sub=sub_id, count=item.count)) if isinstance(item, Dropped)
                        else encode_frame(StreamMetrics(sub=sub_id, sample=item))
                        for item in batch
                    ])
                await conn.send(encode_frame(StreamEnd(sub=sub_id, reason="the daemon is shutting down")))
            finally:
                hub.remove(pilot_id, sub)

        return StreamStart(SubscribeResult(sub=sub_id), run)

    async def logs(self, conn: Connection, rid: int | None, params: LogsParams) -> StreamStart:
        sub_id = self._check_streams(conn, rid)
        manager = self.manager
        record = manager.get(params.pilot)
        attempt: int | None = None
        if params.task is None:
            path = record.log_path
        else:
            attempt = params.attempt or await self._latest_attempt(record.id, params.task)
            if attempt is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"task '{params.task}' of {record.id} has not run")
            path = attempt_log(Path(record.workdir), params.task, attempt, "out" if params.stream == "stdout" else "err")
            if not await asyncio.to_thread(path.exists) and not self._running(record.id, params.task, attempt):
                raise ApiError(ErrorCode.NOT_FOUND, f"no {params.stream} for attempt {attempt} of '{params.task}'")
        task = params.task

        def finished() -> bool:
            if task is None:
                return record.terminal and record.id not in manager.live
            assert attempt is not None
            return not self._running(record.id, task, attempt)

        async def run() -> None:
            offset = await asyncio.to_thread(_tail_offset, path, params.tail)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            while True:
                done = finished()  # read before the last read, so nothing is missed
                while True:
                    chunk = await asyncio.to_thread(_read_chunk, path, offset, self.LOG_CHUNK)
                    if not chunk:
                        break
                    offset += len(chunk)
                    text = decoder.decode(chunk)
                    if text:
                        await conn.send(encode_frame(StreamLog(sub=sub_id, data=text)))
                if not params.follow or done:
                    break
                await asyncio.sleep(self.LOG_POLL)
            rest = decoder.decode(b"", final=True)
            if rest:
                await conn.send(encode_frame(StreamLog(sub=sub_id, data=rest)))
            reason = "end of file" if not params.follow else "finished"
            await conn.send(encode_frame(StreamEnd(sub=sub_id, reason=reason)))

        return StreamStart(SubscribeResult(sub=sub_id, path=str(path)), run)

    def _running(self, pilot_id: str, task_id: str, attempt: int) -> bool:
        live = self.manager.live.get(pilot_id)
        pool = live.pilot.pool if live is not None else None
        if pool is None:
            return False
        task = pool.tasks.get(task_id)
        return task is not None and task.status is TaskStatus.RUNNING and task.attempts == attempt

    async def _latest_attempt(self, pilot_id: str, task_id: str) -> int | None:
        live = self.manager.live.get(pilot_id)
        pool = live.pilot.pool if live is not None else None
        if pool is not None:
            task = pool.tasks.get(task_id)
            if task is not None and task.attempts:
                return task.attempts
        await self.store.barrier()
        rows = await self.store.query(
            "SELECT max(attempt) FROM attempts WHERE pilot = ? AND task = ?", (pilot_id, task_id)
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None


def _token_ok(expected: bytes | None, given: str | None) -> bool:
    if expected is None or given is None:
        return False
    try:
        candidate = bytes.fromhex(given)
    except ValueError:
        return False
    return hmac.compare_digest(candidate, expected)


def _salvage_id(body: bytes) -> int | None:
    """The id of a frame that is JSON but not a valid request, if it has a usable one."""
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if isinstance(value, dict):
        rid = value.get("id")
        if isinstance(rid, int) and not isinstance(rid, bool):
            return rid
    return None


def _tail_offset(path: Path, lines: int) -> int:
    """Where the last ``lines`` lines of ``path`` start (0 for all, or a missing file)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if lines < 0 or size == 0:
        return 0
    if lines == 0:
        return size
    with open(path, "rb") as f:
        pos = size
        found = 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            pos -= 1  # the final newline ends the last line; it does not start one
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            i = len(chunk)
            while True:
                i = chunk.rfind(b"\n", 0, i)
                if i < 0:
                    break
                found += 1
                if found >= lines:
                    return pos - step + i + 1
            pos -= step
    return 0


def _read_chunk(path: Path, offset: int, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(size)
    except FileNotFoundError:
        return b""

