"""Dispatch: the method-name table and its handlers.

:class:`Api` turns one frame body into a call: decode the envelope, look the method up,
decode its typed params, run the handler, encode the reply. Bad input never reaches a
handler and never closes the connection: it gets a typed error reply. Cheap handlers run
inline in the connection's read loop (``hello``, ``status``, heartbeats); the others run
as tasks, so a slow one does not hold up the next request. Stream methods
(:mod:`~pilotkit.daemon.stream_methods`) reply with the stream's id and then push items
until the stream ends or is unsubscribed.

Handlers raise domain errors (:mod:`~pilotkit.daemon.faults`); every error reply is
made in :meth:`Api._fail`, from :func:`~pilotkit.daemon.faults.protocol_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from .. import __version__
from ..protocol import (
    METHODS,
    SUPPORTED_VERSIONS,
    CampaignParams,
    DaemonInfo,
    FailuresParams,
    HeartbeatParams,
    HelloParams,
    HelloResult,
    MethodSpec,
    MetricSample,
    NodesParams,
    Ok,
    PilotParams,
    QueueParams,
    Request,
    Response,
    RetryParams,
    ShutdownParams,
    StatusParams,
    StatusResult,
    SubmitParams,
    TasksParams,
    TimelineParams,
    UnsubscribeParams,
    ValidateParams,
    encode_frame,
)
from .faults import (
    AuthFailed,
    BadParams,
    BadRequest,
    NotFound,
    NotJson,
    Unauthenticated,
    UnknownMethod,
    UnsupportedVersion,
    protocol_error,
)
from .metrics import MetricsBuffer
from .pilots import PilotManager
from .stream_methods import StreamMethods, StreamStart
from .transport import Connection

log = logging.getLogger("pilotkit.daemon.dispatch")

_request_decoder = msgspec.json.Decoder(Request)

Handler = Callable[[Connection, "int | None", Any], Any]


@dataclass(frozen=True)
class Entry:
    method: MethodSpec
    handler: Handler
    inline: bool = False
    """A plain function run in the read loop (cheap, no I/O)."""


class Api:
    """The daemon's methods (see ``share/docs/api.md``)."""

    def __init__(
        self,
        manager: PilotManager,
        metrics: MetricsBuffer,
        *,
        info: Callable[[], DaemonInfo],
        request_shutdown: Callable[[bool], None],
        token: bytes | None = None,
    ) -> None:
        self.manager = manager
        self.info = info
        self.request_shutdown = request_shutdown
        self.token = token
        self.requests = 0
        self.connections: set[Connection] = set()
        streams = self.streams = StreamMethods(manager, metrics)
        self.table: dict[str, Entry] = {}
        for name, handler, inline in (
            ("hello", self.hello, True),
            ("submit", self.submit, False),
            ("validate", self.validate, False),
            ("status", self.status, True),
            ("list", self.status, True),
            ("pilot", self.pilot, False),
            ("campaign", self.campaign, False),
            ("tasks", self.tasks, False),
            ("queue", self.queue, False),
            ("describe", self.describe, False),
            ("failures", self.failures, False),
            ("timeline", self.timeline, False),
            ("nodes", self.nodes, False),
            ("events", streams.events, False),
            ("metrics", streams.metrics_stream, False),
            ("logs", streams.logs, False),
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
            await self._fail(conn, _salvage_id(body), BadRequest(f"not a valid request: {exc}"), answer=True)
            return
        except msgspec.DecodeError as exc:
            await self._fail(conn, None, NotJson(f"frame is not valid JSON: {exc}"), answer=True)
            return
        rid = request.id
        if not conn.authenticated and request.method != "hello":
            await self._fail(
                conn, rid, Unauthenticated("authenticate first: send 'hello' with the token"), answer=True
            )
            return
        entry = self.table.get(request.method)
        if entry is None:
            unknown = UnknownMethod(f"unknown method '{request.method}'", data={"methods": sorted(self.table)})
            await self._fail(conn, rid, unknown)
            return
        try:
            params = msgspec.json.decode(request.params, type=entry.method.params)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            await self._fail(conn, rid, BadParams(f"{request.method}: {exc}"))
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

    async def _fail(self, conn: Connection, rid: int | None, exc: Exception, *, answer: bool = False) -> None:
        """The one place error replies are made. A notification (no ``rid``) gets none,
        unless ``answer`` (a frame that is not a readable request) or the error closes
        the connection."""
        error = protocol_error(exc)
        if error.internal:
            if rid is None:
                log.error("notification failed: %r", exc)
                return
            log.error("internal error in a request", exc_info=exc)
        if rid is not None or answer or error.close:
            await conn.send_error(rid, error.code, error.message, data=error.data, debug=error.debug)
        if error.close:
            conn.close_soon()

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)

    # ------------------------------------------------------------------ methods

    def hello(self, conn: Connection, rid: int | None, params: HelloParams) -> HelloResult:
        if params.protocol not in SUPPORTED_VERSIONS:
            raise UnsupportedVersion(
                f"protocol {params.protocol} is not supported (this daemon speaks {list(SUPPORTED_VERSIONS)})",
                data={"supported": list(SUPPORTED_VERSIONS)},
            )
        if conn.needs_auth and not conn.authenticated:
            if not _token_ok(self.token, params.token):
                log.warning("%s: wrong token", conn.peer)
                raise AuthFailed("authentication failed: wrong token")
            conn.authenticated = True
        return HelloResult(
            protocol=params.protocol, version=__version__, pid=os.getpid(), host=socket.gethostname(),
            uid=os.getuid(), methods=sorted(self.table),
        )

    async def submit(self, conn: Connection, rid: int | None, params: SubmitParams) -> msgspec.Struct:
        result = await self.manager.submit(params)
        log.info("%s submitted pilot %s", conn.peer, result.pilot)
        return result

    async def validate(self, conn: Connection, rid: int | None, params: ValidateParams) -> msgspec.Struct:
        return await self.manager.validate(params)

    def status(self, conn: Connection, rid: int | None, params: StatusParams) -> StatusResult:
        campaigns = self.manager.campaigns.summaries() if params.pilot is None else []
        return StatusResult(pilots=self.manager.views.status(params.pilot), daemon=self.info(), campaigns=campaigns)

    async def pilot(self, conn: Connection, rid: int | None, params: PilotParams) -> msgspec.Struct:
        return await self.manager.views.detail(params.pilot)

    async def campaign(self, conn: Connection, rid: int | None, params: CampaignParams) -> msgspec.Struct:
        return await self.manager.campaigns.status_of(params.campaign)

    async def tasks(self, conn: Connection, rid: int | None, params: TasksParams) -> msgspec.Struct:
        return await self.manager.views.tasks(params)

    async def queue(self, conn: Connection, rid: int | None, params: QueueParams) -> msgspec.Struct:
        return self.manager.views.queue(params)

    async def describe(self, conn: Connection, rid: int | None, params: PilotParams) -> msgspec.Struct:
        return await self.manager.views.describe(params.pilot)

    async def failures(self, conn: Connection, rid: int | None, params: FailuresParams) -> msgspec.Struct:
        return await self.manager.views.failures(params)

    async def timeline(self, conn: Connection, rid: int | None, params: TimelineParams) -> msgspec.Struct:
        return await self.manager.views.timeline(params)

    async def nodes(self, conn: Connection, rid: int | None, params: NodesParams) -> msgspec.Struct:
        return await self.manager.views.nodes(params.pilot)

    async def drain(self, conn: Connection, rid: int | None, params: PilotParams) -> msgspec.Struct:
        return await self.manager.drain(params.pilot)

    async def cancel(self, conn: Connection, rid: int | None, params: PilotParams) -> msgspec.Struct:
        return await self.manager.cancel(params.pilot)

    async def retry(self, conn: Connection, rid: int | None, params: RetryParams) -> msgspec.Struct:
        return await self.manager.retry(params.pilot, params.failed, params.tasks or None)

    def shutdown(self, conn: Connection, rid: int | None, params: ShutdownParams) -> Ok:
        log.info("%s asked the daemon to shut down%s", conn.peer, " (force)" if params.force else "")
        asyncio.get_running_loop().call_soon(self.request_shutdown, params.force)
        return Ok()

    def heartbeat(self, conn: Connection, rid: int | None, params: HeartbeatParams) -> Ok:
        self.manager.heartbeat(MetricSample(
            pilot=params.pilot, node=params.node, t=params.t, cpu_percent=params.cpu_percent,
            memory_used=params.memory_used, memory_total=params.memory_total, gpus=params.gpus,
            core_percent=params.core_percent,
        ))
        return Ok()

    def unsubscribe(self, conn: Connection, rid: int | None, params: UnsubscribeParams) -> Ok:
        if not conn.stop_stream(params.sub):
            raise NotFound(f"no stream {params.sub} on this connection")
        return Ok()


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
