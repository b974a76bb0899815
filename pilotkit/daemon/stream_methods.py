"""The stream methods: ``events``, ``metrics`` and ``logs``.

Each handler checks its params, then returns a :class:`StreamStart`: the reply (with the
stream's id) and the coroutine that pushes the stream's items on the connection until
the stream ends or is unsubscribed.
"""

from __future__ import annotations

import asyncio
import codecs
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..events import PilotStateChanged
from ..logtimes import LineTimes, Samples, newlines
from ..protocol import (
    EventsParams,
    LogsParams,
    MetricSample,
    MetricsParams,
    StreamDropped,
    StreamEnd,
    StreamEvent,
    StreamLog,
    StreamMetrics,
    SubscribeResult,
    encode_frame,
)
from ..vocab import attempt_log
from .events import EventItem
from .faults import BadRequest, NotFound, TooManyStreams
from .metrics import MetricsBuffer
from .pilots import PilotManager
from .records import TERMINAL
from .streams import Dropped, Subscription
from .transport import Connection

_state_decoder = msgspec.json.Decoder(PilotStateChanged)


@dataclass
class StreamStart:
    """What a stream handler returns: the reply, then the coroutine that feeds the stream."""

    result: msgspec.Struct
    run: Callable[[], Coroutine[Any, Any, None]]


class StreamMethods:
    EVENTS_CAPACITY = 8192
    METRICS_CAPACITY = 2048
    LOG_POLL = 0.25
    LOG_CHUNK = 64 * 1024

    def __init__(self, manager: PilotManager, metrics: MetricsBuffer) -> None:
        self.manager = manager
        self.metrics = metrics

    def _open(self, conn: Connection, rid: int | None) -> int:
        assert rid is not None
        if rid in conn.streams:
            raise BadRequest(f"a stream with id {rid} is already open")
        if len(conn.streams) >= conn.MAX_STREAMS:
            raise TooManyStreams(f"at most {conn.MAX_STREAMS} streams per connection")
        return rid

    # ------------------------------------------------------------------ events

    async def events(self, conn: Connection, rid: int | None, params: EventsParams) -> StreamStart:
        sub_id = self._open(conn, rid)
        manager = self.manager
        recorder = manager.recorder
        pilot_id: str | None = None
        finished = False
        if params.pilot is not None:
            record = manager.records.lookup(params.pilot)
            pilot_id = record.id
            finished = manager.views.finished(record)
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
            recorder.hub.add(pilot_id, sub)
        upto = recorder.seq

        async def run() -> None:
            try:
                last = await self._replay(conn, sub_id, pilot_id, params.since, upto, types)
                reason = "replayed"
                if live:
                    reason = await self._live_events(conn, sub_id, sub, pilot_id, last, types)
                await conn.send(encode_frame(StreamEnd(sub=sub_id, reason=reason)))
            finally:
                if live:
                    recorder.hub.remove(pilot_id, sub)

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
        sync = True
        while last < upto:
            rows = await self.manager.recorder.stored(pilot_id, last, upto, sync=sync)
            sync = False
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

    # ------------------------------------------------------------------ metrics

    async def metrics_stream(self, conn: Connection, rid: int | None, params: MetricsParams) -> StreamStart:
        sub_id = self._open(conn, rid)
        pilot_id = self.manager.records.lookup(params.pilot).id if params.pilot is not None else None
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

    # ------------------------------------------------------------------ logs

    async def logs(self, conn: Connection, rid: int | None, params: LogsParams) -> StreamStart:
        sub_id = self._open(conn, rid)
        views = self.manager.views
        record = self.manager.records.lookup(params.pilot)
        attempt: int | None = None
        if params.task is None:
            path = record.log_path
        else:
            attempt = params.attempt or await views.latest_attempt(record.id, params.task)
            if attempt is None:
                raise NotFound(f"task '{params.task}' of {record.id} has not run")
            path = attempt_log(Path(record.workdir), params.task, attempt, "out" if params.stream == "stdout" else "err")
            if not await asyncio.to_thread(path.exists) and not views.attempt_running(record.id, params.task, attempt):
                raise NotFound(f"no {params.stream} for attempt {attempt} of '{params.task}'")
        task = params.task

        def finished() -> bool:
            if task is None:
                return views.finished(record)
            assert attempt is not None
            return not views.attempt_running(record.id, task, attempt)

        async def run() -> None:
            offset = await asyncio.to_thread(tail_offset, path, params.tail)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            samples = Samples(path) if task is not None else None
            while True:
                done = finished()  # read before the last read, so nothing is missed
                while True:
                    if samples is None:
                        chunk, times = await asyncio.to_thread(_read_chunk, path, offset, self.LOG_CHUNK), None
                    else:
                        chunk, times = await asyncio.to_thread(_read_timed, path, offset, self.LOG_CHUNK, samples,
                                                               not done)
                    if not chunk:
                        break
                    offset += len(chunk)
                    text = decoder.decode(chunk)
                    if text:
                        await conn.send(encode_frame(StreamLog(sub=sub_id, data=text, times=times)))
                if not params.follow or done:
                    break
                await asyncio.sleep(self.LOG_POLL)
            rest = decoder.decode(b"", final=True)
            if rest:
                await conn.send(encode_frame(StreamLog(sub=sub_id, data=rest)))
            reason = "end of file" if not params.follow else "finished"
            await conn.send(encode_frame(StreamEnd(sub=sub_id, reason=reason)))

        return StreamStart(SubscribeResult(sub=sub_id, path=str(path)), run)


def tail_offset(path: Path, lines: int) -> int:
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


def _read_timed(path: Path, offset: int, size: int, samples: Samples, running: bool) -> tuple[bytes, LineTimes]:
    """A chunk of a task's output, up to what the file held when looked at, and the time
    each of its lines was written: the agent's samples, and the file's own last-write
    time for what came after them (while the attempt runs, or when it has samples)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return b"", []
    size = min(size, st.st_size - offset)
    if size <= 0:
        return b"", []
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read(size)
    has_samples = samples.refresh()
    last = (st.st_mtime_ns / 1e9, st.st_size) if running or has_samples else None
    return chunk, samples.stamp(newlines(chunk, offset), last)
