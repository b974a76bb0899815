"""The daemon's control protocol: typed messages and their framing.

One versioned protocol, spoken over a unix socket, TCP (+TLS) or an SSH stream-local
channel. Every frame is a 4-byte big-endian length followed by that many bytes of
msgspec JSON. A client sends :class:`Request` frames; the daemon answers each one that
has an ``id`` with a :class:`Response` or an :class:`ErrorReply` carrying the same id,
and pushes stream items (:class:`StreamEvent`, :class:`StreamLog`,
:class:`StreamMetrics`, :class:`StreamDropped`, :class:`StreamEnd`) for subscriptions,
all multiplexed on the same connection. ``share/docs/api.md`` documents every method.

This module is shared by the daemon and :mod:`pilotkit.client`; it imports nothing from
either.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from .types import Allocation, NodeInfo, Service
from .vocab import Counts as Counts  # task counts: one definition for the wire and the core

PROTOCOL_VERSION = 1
"""Bumped on any incompatible change; ``hello`` refuses a client that speaks another."""
SUPPORTED_VERSIONS = (1,)
MAX_FRAME = 4 * 1024 * 1024
"""Largest frame body either side accepts; a bigger one closes the connection."""
HEADER = struct.Struct(">I")


class ErrorCode(enum.StrEnum):
    """Every error the daemon returns. Stable strings: clients switch on them."""

    PARSE_ERROR = "parse-error"
    """The frame is not JSON."""
    INVALID_REQUEST = "invalid-request"
    """JSON, but not a request (missing ``method``, wrong types...)."""
    UNKNOWN_METHOD = "unknown-method"
    INVALID_PARAMS = "invalid-params"
    FRAME_TOO_LARGE = "frame-too-large"
    """The connection is closed after this one."""
    UNSUPPORTED_VERSION = "unsupported-version"
    PERMISSION_DENIED = "permission-denied"
    """The peer runs as another user (unix socket); the connection is closed."""
    UNAUTHENTICATED = "unauthenticated"
    """TCP: a request came before a ``hello`` with the token; the connection is closed."""
    AUTH_FAILED = "auth-failed"
    """TCP: wrong token; the connection is closed."""
    NOT_FOUND = "not-found"
    INVALID_SPEC = "invalid-spec"
    """``data.problems`` lists every problem of the spec."""
    INVALID_STATE = "invalid-state"
    """The pilot is not in a state that allows this (cancel a finished pilot...)."""
    LIMIT = "limit"
    """Too many streams or requests in flight on this connection."""
    SHUTTING_DOWN = "shutting-down"
    FAILED = "failed"
    """The daemon could not do what was asked; the message says why."""
    INTERNAL = "internal"
    """A bug; ``debug`` holds the traceback."""


# --------------------------------------------------------------------------- envelopes


class Request(msgspec.Struct, tag_field="type", tag="request", kw_only=True):
    """Client to daemon. Without an ``id`` it is a notification: no reply, not even an
    error (used for high-rate agent heartbeats)."""

    method: str
    id: int | None = None
    params: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))


class ErrorInfo(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    data: Any = None
    debug: str | None = None
    """Only for ``internal`` errors: the daemon's traceback."""


class Response(msgspec.Struct, tag_field="type", tag="response"):
    id: int
    result: msgspec.Raw


class ErrorReply(msgspec.Struct, tag_field="type", tag="error"):
    id: int | None
    """None when the frame it answers had no readable id."""
    error: ErrorInfo


class StreamEvent(msgspec.Struct, tag_field="type", tag="event"):
    """One pilot event (``pilotkit.events``) with the daemon's sequence number."""

    sub: int
    seq: int
    event: msgspec.Raw


class StreamLog(msgspec.Struct, tag_field="type", tag="log"):
    sub: int
    data: str
    """Text of a log file, decoded as UTF-8 (bad bytes replaced)."""
    times: list[float | None] | None = None
    """A task's output: the time each line ending in ``data`` was written (one for each
    newline, in order; null where unknown), see :mod:`pilotkit.logtimes`."""


class StreamMetrics(msgspec.Struct, tag_field="type", tag="metrics"):
    sub: int
    sample: MetricSample


class StreamDropped(msgspec.Struct, tag_field="type", tag="dropped"):
    """``count`` items of stream ``sub`` were dropped because the reader was slow."""

    sub: int
    count: int


class StreamEnd(msgspec.Struct, tag_field="type", tag="end"):
    """No more items will come for ``sub``."""

    sub: int
    reason: str


ServerMessage = Response | ErrorReply | StreamEvent | StreamLog | StreamMetrics | StreamDropped | StreamEnd
StreamMessage = StreamEvent | StreamLog | StreamMetrics | StreamDropped | StreamEnd


# --------------------------------------------------------------------------- shared data


class PilotSummary(msgspec.Struct, kw_only=True):
    id: str
    name: str
    provider: str
    state: str
    reason: str | None = None
    workdir: str
    created: float
    updated: float
    ended: float | None = None
    nodes: int = 0
    cores: int = 0
    gpus: int = 0
    job_id: str | None = None
    walltime_end: float | None = None
    walltime_left: float | None = None
    """Seconds; None without a walltime or once the pilot has finished."""
    progress: Counts = msgspec.field(default_factory=Counts)
    groups: dict[str, Counts] = {}
    run: int = 1
    """1 for the first run; +1 for each resume after a daemon restart and each retry."""
    crashes: int = 0
    """How many times the daemon died (without shutting down) while this pilot ran."""
    attached: bool = True
    """False for a batch pilot the daemon has not re-attached to yet."""


class TaskInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    task: str
    group: str
    status: str
    """queued | running | done | failed | cancelled | lost (an attempt the daemon lost)."""
    attempts: int = 0
    node: str | None = None
    exit_code: int | None = None
    outcome: str | None = None
    """How the last attempt ended: ok, failed, timeout, killed, lost, spawn-error."""
    start: float | None = None
    end: float | None = None
    params: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    """The final metrics the task reported (``PILOTKIT_METRICS``)."""


class GpuMetric(msgspec.Struct, omit_defaults=True):
    uuid: str
    utilization: int | None = None
    """Percent."""
    memory_used: int | None = None
    memory_total: int | None = None


class MetricSample(msgspec.Struct, kw_only=True, omit_defaults=True):
    pilot: str
    node: str
    t: float
    cpu_percent: float
    memory_used: int
    memory_total: int | None = None
    gpus: list[GpuMetric] = []
    core_percent: list[float] = []
    """The load of each logical CPU of the node, in percent (psutil's per-CPU figures)."""


class DaemonInfo(msgspec.Struct, kw_only=True):
    pid: int
    host: str
    version: str
    started: float
    connections: int
    requests: int
    """Requests and notifications handled since start."""
    events: int
    """Events recorded since start."""
    crashes: int
    """Earlier daemon runs that did not shut down cleanly."""


# --------------------------------------------------------------------------- methods


class HelloParams(msgspec.Struct, kw_only=True):
    protocol: int = PROTOCOL_VERSION
    client: str = ""
    token: str | None = None
    """TCP only: the hex token from the daemon's runtime dir."""


class HelloResult(msgspec.Struct, kw_only=True):
    protocol: int
    version: str
    pid: int
    host: str
    uid: int
    methods: list[str]


class SubmitParams(msgspec.Struct, kw_only=True):
    spec: str
    """The spec's TOML text."""
    path: str | None = None
    """Where the spec lives (on the daemon's machine): error messages, ``{spec_dir}``."""
    workdir: str | None = None
    """Absolute; default: the spec's ``pilot.workdir``, else the daemon's state dir."""
    profile: str | None = None
    """A profile of the daemon's site and user configuration to start from, instead of
    the spec's own ``profile``."""
    to: str | None = None
    """A running campaign (its name or id): the spec's task groups are added to its
    backlog instead of starting anything."""


class SubmitResult(msgspec.Struct, kw_only=True):
    pilot: str
    name: str
    workdir: str
    campaign: bool = False
    """``pilot`` is a campaign's id (its state: ``campaign.json`` in ``workdir``)."""


class ValidateParams(msgspec.Struct, kw_only=True):
    spec: str
    """The spec's TOML text."""
    path: str | None = None
    """Where the spec lives (on the daemon's machine), as for ``submit``: the file name in
    problems, ``{spec_dir}`` and relative paths."""
    profile: str | None = None
    """As for ``submit``."""


class SpecProblemInfo(msgspec.Struct, kw_only=True):
    """One problem of a spec: where it is and what is wrong."""

    file: str | None
    key: str
    line: int | None
    message: str
    suggestion: str | None = None


class ValidateResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    valid: bool
    problems: list[SpecProblemInfo] = []
    """Every problem, when the spec is not valid."""
    name: str | None = None
    provider: str | None = None
    app: str | None = None
    tasks: int | None = None
    """How many tasks the spec makes (the ``tasks`` app)."""


class StatusParams(msgspec.Struct, kw_only=True):
    pilot: str | None = None


class CampaignSummary(msgspec.Struct, kw_only=True):
    """A campaign the daemon runs, in the ``status`` listing (its whole state:
    ``campaign.json`` in ``workdir``)."""

    id: str
    name: str
    state: str
    """``running`` or ``paused``."""
    workdir: str
    total: int
    done: int
    failed: int
    running: int
    """Tasks in allocations."""
    waiting: int
    allocations: int
    """Allocations queued or running now."""
    eta: float | None = None
    """Seconds until the backlog is through at the rate so far."""


class CampaignParams(msgspec.Struct, kw_only=True):
    campaign: str
    """Its name (the latest campaign of that name), its id or a unique prefix of it."""


class CampaignResult(msgspec.Struct, kw_only=True):
    """One campaign of the daemon, running or ended."""

    campaign: msgspec.Raw
    """Its ``campaign.json`` (what ``pilotkit status NAME --json`` prints, less the
    figures it computes): decode it as :class:`pilotkit.campaign.CampaignStatus`."""


class StatusResult(msgspec.Struct, kw_only=True):
    pilots: list[PilotSummary]
    daemon: DaemonInfo
    campaigns: list[CampaignSummary] = []
    """The campaigns the daemon runs (only when no pilot was asked for)."""


class PilotParams(msgspec.Struct, kw_only=True):
    pilot: str


class NodeStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    info: NodeInfo
    last_seen: float | None = None
    """Last heartbeat or metrics sample."""
    latest: MetricSample | None = None


class PilotDetail(msgspec.Struct, kw_only=True):
    summary: PilotSummary
    spec_path: str | None
    nodes: list[NodeStatus]
    recent_tasks: list[TaskInfo]
    """The latest attempts, newest first."""
    services: list[Service] = []
    """What the pilot's app serves now (a notebook's URL, a cluster's address, a dashboard)."""


class TasksParams(msgspec.Struct, kw_only=True):
    pilot: str
    status: list[str] | None = None
    group: str | None = None
    offset: int = 0
    limit: int = 100


class TasksResult(msgspec.Struct, kw_only=True):
    total: int
    """Matching tasks, before paging."""
    offset: int
    tasks: list[TaskInfo]


class EventsParams(msgspec.Struct, kw_only=True):
    pilot: str | None = None
    """None: every pilot."""
    since: int = 0
    """Replay stored events with a sequence number above this one first (-1: none)."""
    follow: bool = True
    """Then stream live events (until the pilot finishes, for one pilot)."""
    types: list[str] | None = None
    """Only these event types (``task-finished``, ``pilot-state``...)."""


class MetricsParams(msgspec.Struct, kw_only=True):
    pilot: str | None = None
    history: bool = True
    """Send the buffered samples first."""


class LogsParams(msgspec.Struct, kw_only=True):
    pilot: str
    task: str | None = None
    """None: the pilot's own log."""
    stream: Literal["stdout", "stderr"] = "stdout"
    attempt: int | None = None
    """Default: the latest attempt."""
    tail: int = 100
    """Lines of the end of the file to send first; -1 for the whole file."""
    follow: bool = False


class SubscribeResult(msgspec.Struct, kw_only=True):
    sub: int
    """Stream items carry this number; equal to the request's id."""
    seq: int = 0
    """Events: the newest sequence number when the stream started."""
    path: str | None = None
    """Logs: the file being read."""


class UnsubscribeParams(msgspec.Struct, kw_only=True):
    sub: int


class QueueParams(msgspec.Struct, kw_only=True):
    pilot: str
    limit: int = 200
    """The most waiting tasks listed (in the order they would start); counts cover all."""
    window: float = 300.0
    """Seconds of finished tasks the rate is measured over."""


class QueuedTask(msgspec.Struct, kw_only=True, omit_defaults=True):
    task: str
    group: str
    cores: int = 1
    gpus: int = 0
    reason: str
    """Why it waits now: ``draining``, ``drain-point``, ``no-free-gpu``, ``no-free-core``,
    ``no-idle-node``, ``pinned``, ``next`` (it fits: the next dispatch starts it)."""
    detail: str = ""
    """The reason in words, with the numbers."""


class QueueResult(msgspec.Struct, kw_only=True):
    """What waits in a pilot and how fast its backlog goes, against its walltime."""

    pilot: str
    state: str
    t: float
    """When this was measured (epoch seconds)."""
    queued: int = 0
    running: int = 0
    cores: int = 0
    free_cores: int = 0
    gpus: int = 0
    free_gpus: int = 0
    window: float = 300.0
    """Seconds the rate was measured over: the window asked for, or since the first task
    started where that is shorter."""
    finished_in_window: int = 0
    rate: float | None = None
    """Tasks finished per minute over the window (None: none finished in it, or no live run)."""
    eta: float | None = None
    """Seconds until the backlog (queued + running) is done at that rate."""
    finish_at: float | None = None
    walltime_end: float | None = None
    drain_at: float | None = None
    """When no task may still run (the walltime less the spec's ``drain_margin``)."""
    before_drain: bool | None = None
    """Whether ``finish_at`` comes before ``drain_at`` (None: either is unknown)."""
    reasons: dict[str, int] = {}
    """Waiting tasks listed, per reason."""
    tasks: list[QueuedTask] = []


class FailuresParams(msgspec.Struct, kw_only=True):
    pilot: str
    limit: int = 1000
    """The most failed tasks read (their stderr's last line); counts say how many failed."""


class FailureGroup(msgspec.Struct, kw_only=True):
    """Failed tasks that ended alike: the same outcome, exit code and last stderr line."""

    outcome: str
    exit_code: int | None = None
    last_line: str = ""
    """The last non-empty line of the latest attempt's stderr ("" when it wrote none)."""
    count: int
    tasks: list[str]
    """The tasks (their latest attempt is the one described), in name order."""


class FailuresResult(msgspec.Struct, kw_only=True):
    pilot: str
    failed: int
    """Failed tasks in all (more than were read when over ``limit``)."""
    groups: list[FailureGroup]
    """Most tasks first."""


class DescribeResult(msgspec.Struct, kw_only=True):
    """Everything about one pilot: its spec, what it was given, where its files are."""

    summary: PilotSummary
    spec: str
    """The spec's TOML as submitted."""
    spec_path: str | None = None
    allocation: Allocation | None = None
    """What the provider claimed (job id, node names, walltime end, provider details)."""
    nodes: list[NodeInfo] = []
    """The nodes as their agents probed them: the resources resolved."""
    files: dict[str, str] = {}
    """``workdir``, ``pilot_log``, ``results``, ``tasks``: paths on the daemon's machine."""
    services: list[Service] = []
    """What the pilot's app serves now (a notebook's URL, a cluster's address, a dashboard)."""

    def lines(self, now: float | None = None) -> list[str]:
        """In words, as ``pilotkit describe`` prints it and the dashboard shows it."""
        import time

        s = self.summary
        now = now or time.time()
        out = [f"Pilot      {s.id} (name {s.name})",
               f"State      {s.state}" + (f" ({s.reason})" if s.reason else "") + (f", run {s.run}" if s.run > 1 else ""),
               f"Provider   {s.provider}" + (f", job {s.job_id}" if s.job_id else "")]
        if s.walltime_end is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.walltime_end))
            left = f" ({int(s.walltime_end - now)}s left)" if s.walltime_left is not None else ""
            out.append(f"Walltime   ends {when}{left}")
        out.append(f"Resources  {s.nodes} node(s), {s.cores} cores, {s.gpus} GPUs")
        if self.allocation is not None and self.allocation.data:
            out.append("Allocation " + ", ".join(f"{k}={v}" for k, v in sorted(self.allocation.data.items())))
        if self.nodes:
            out.append("Nodes")
            for n in self.nodes:
                gpus = ", ".join(g.name or g.uuid for g in n.gpus) if n.gpus else f"no GPU ({n.gpu_reason or 'none'})"
                out.append(f"  {n.name:<16} {n.cores} cores, {n.memory / 2**30:.1f} GiB, {gpus}")
                if n.containment:
                    out.append(f"  {'':<16} task processes contained by {n.containment}")
        elif self.allocation is not None and self.allocation.nodes:
            out.append("Nodes      " + " ".join(self.allocation.nodes) + " (not probed yet)")
        if self.services:
            out.append("Services")
            out.extend(f"  {svc.name:<16} {svc.url}" for svc in self.services)
        out.append("Files")
        for key, label in (("workdir", "workdir"), ("pilot_log", "pilot log"), ("results", "results"),
                           ("tasks", "task output")):
            if key in self.files:
                out.append(f"  {label:<12} {self.files[key]}")
        out.append(f"Spec{f' ({self.spec_path})' if self.spec_path else ''}")
        out.extend(f"  {line}" for line in self.spec.rstrip("\n").splitlines())
        return out


class TimelineParams(msgspec.Struct, kw_only=True):
    pilot: str
    limit: int = 20_000
    """The most attempts read (the latest ones when there are more)."""
    min_gap: float = 1.0
    """Seconds: shorter idle periods of a node are not listed as gaps."""


class TimelineSpan(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One attempt of a task on a node."""

    task: str
    group: str
    attempt: int = 1
    start: float
    end: float | None = None
    """None: it still runs."""
    outcome: str | None = None
    lane: int = 0
    """Its row within the node's rows: attempts that overlap in time get different rows."""


class TimelineNode(msgspec.Struct, kw_only=True):
    name: str
    cores: int = 0
    lanes: int = 0
    """Rows the node's attempts need (the most that ran on it at once)."""
    busy: float = 0.0
    """Fraction of the timeline when at least one task ran on the node."""
    gaps: list[tuple[float, float]] = []
    """(start, end) of each period the node ran nothing, ``min_gap`` or longer."""
    spans: list[TimelineSpan] = []


class TimelineResult(msgspec.Struct, kw_only=True):
    """Which task ran where and when: every node's attempts, laid out in rows."""

    pilot: str
    state: str
    start: float
    """The first attempt's start (the pilot's creation when none ran)."""
    end: float
    """The pilot's end, or now while it runs."""
    attempts: int = 0
    """Attempts in all (more than the spans listed when over ``limit``)."""
    nodes: list[TimelineNode] = []


class NodesParams(msgspec.Struct, kw_only=True):
    pilot: str


class NodeTask(msgspec.Struct, kw_only=True):
    task: str
    group: str
    cores: int = 1
    gpus: list[str] = []
    """UUIDs of the GPUs given to it."""
    start: float | None = None
    pid: int | None = None
    """Its process on the node (as its runner recorded it; None until recorded)."""


class NodeGpu(msgspec.Struct, kw_only=True, omit_defaults=True):
    uuid: str
    name: str = ""
    memory_total: int | None = None
    utilization: int | None = None
    """Percent, from the latest sample."""
    memory_used: int | None = None
    tasks: list[str] = []
    """The tasks running on it now."""


class NodeReport(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One node as it is now: what it has, what runs on it, how loaded it is."""

    name: str
    cores: int = 0
    free_cores: int | None = None
    """None when the pilot does not run here (nothing is running)."""
    memory: int = 0
    """Bytes the pilot may use."""
    total_cores: int | None = None
    total_memory: int | None = None
    memory_used: int | None = None
    cpu_percent: float | None = None
    """The node's CPU load, in percent of all its CPUs (the latest sample)."""
    core_percent: list[float] = []
    """The load of each logical CPU of the node, in percent (psutil's per-CPU figures)."""
    last_seen: float | None = None
    lost: str | None = None
    """Why the node was declared lost; None while it answers."""
    gpu_reason: str | None = None
    gpus: list[NodeGpu] = []
    tasks: list[NodeTask] = []


class NodesResult(msgspec.Struct, kw_only=True):
    pilot: str
    state: str
    t: float
    nodes: list[NodeReport] = []
    gpu_tasks: bool = True
    """Whether each GPU's tasks are known (a replay does not know them)."""


class ControlResult(msgspec.Struct, kw_only=True):
    pilot: str
    state: str


class RetryParams(msgspec.Struct, kw_only=True):
    pilot: str
    failed: bool = True
    """Re-run failed tasks too (not only those that never finished)."""
    tasks: list[str] = []
    """Of the failed tasks, re-run only these (empty: all of them); each must have failed."""


class RetryResult(msgspec.Struct, kw_only=True):
    pilot: str
    requeued: int
    run: int


class ShutdownParams(msgspec.Struct, kw_only=True):
    force: bool = False


class Ok(msgspec.Struct):
    ok: bool = True


class HeartbeatParams(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A node agent's 1 Hz heartbeat with its metrics (send as a notification)."""

    pilot: str
    node: str
    t: float
    cpu_percent: float
    memory_used: int
    memory_total: int | None = None
    gpus: list[GpuMetric] = []
    core_percent: list[float] = []
    """The load of each logical CPU of the node, in percent (psutil's per-CPU figures)."""


class MethodSpec(msgspec.Struct, frozen=True):
    """A method's name and the types of its params and result."""

    name: str
    params: type[msgspec.Struct]
    result: type[msgspec.Struct]
    stream: bool = False


METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in (
        MethodSpec("hello", HelloParams, HelloResult),
        MethodSpec("submit", SubmitParams, SubmitResult),
        MethodSpec("validate", ValidateParams, ValidateResult),
        MethodSpec("status", StatusParams, StatusResult),
        MethodSpec("list", StatusParams, StatusResult),
        MethodSpec("pilot", PilotParams, PilotDetail),
        MethodSpec("campaign", CampaignParams, CampaignResult),
        MethodSpec("tasks", TasksParams, TasksResult),
        MethodSpec("queue", QueueParams, QueueResult),
        MethodSpec("describe", PilotParams, DescribeResult),
        MethodSpec("failures", FailuresParams, FailuresResult),
        MethodSpec("timeline", TimelineParams, TimelineResult),
        MethodSpec("nodes", NodesParams, NodesResult),
        MethodSpec("events", EventsParams, SubscribeResult, stream=True),
        MethodSpec("metrics", MetricsParams, SubscribeResult, stream=True),
        MethodSpec("logs", LogsParams, SubscribeResult, stream=True),
        MethodSpec("unsubscribe", UnsubscribeParams, Ok),
        MethodSpec("drain", PilotParams, ControlResult),
        MethodSpec("cancel", PilotParams, ControlResult),
        MethodSpec("retry", RetryParams, RetryResult),
        MethodSpec("shutdown", ShutdownParams, Ok),
        MethodSpec("agent.heartbeat", HeartbeatParams, Ok),
    )
}
"""Every method of this protocol version."""


# --------------------------------------------------------------------------- framing


class FrameTooLarge(Exception):
    def __init__(self, size: int, message: str | None = None) -> None:
        super().__init__(message or f"frame of {size} bytes is larger than the limit of {MAX_FRAME}")
        self.size = size


_encoder = msgspec.json.Encoder()
_server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)


def encode(message: msgspec.Struct) -> bytes:
    """JSON body of ``message`` (no length prefix)."""
    return _encoder.encode(message)


def frame(body: bytes) -> bytes:
    """``body`` with its length prefix."""
    return HEADER.pack(len(body)) + body


def encode_frame(message: msgspec.Struct) -> bytes:
    return frame(_encoder.encode(message))


def raw(value: Any) -> msgspec.Raw:
    """``value`` encoded once, to be embedded in an envelope."""
    return msgspec.Raw(_encoder.encode(value))


def decode_server(body: bytes) -> ServerMessage:
    return _server_decoder.decode(body)


def frame_length(header: bytes) -> int:
    """The body length a header announces; raises :class:`FrameTooLarge`."""
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise FrameTooLarge(size)
    return int(size)


# --------------------------------------------------------------------------- where


SOCKET_NAME = "daemon.sock"


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """The daemon's runtime dir: ``$XDG_RUNTIME_DIR/pilotkit``, else ``/tmp/pilotkit-$UID``."""
    environ = os.environ if env is None else env
    base = environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "pilotkit"
    return Path(f"/tmp/pilotkit-{os.getuid()}")


def socket_candidates(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where a client looks for the daemon's unix socket, in order.

    With ``XDG_RUNTIME_DIR`` set, only there. Without it (an SSH session without PAM, a
    cron job), also ``/run/user/$UID/pilotkit``, where a daemon started by the systemd
    user unit lives."""
    environ = os.environ if env is None else env
    first = runtime_dir(environ) / SOCKET_NAME
    if environ.get("XDG_RUNTIME_DIR"):
        return [first]
    return [first, Path(f"/run/user/{os.getuid()}/pilotkit") / SOCKET_NAME]


def find_socket(env: Mapping[str, str] | None = None) -> Path:
    """The first candidate socket that exists, else the first candidate."""
    candidates = socket_candidates(env)
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/pilotkit`` (default ``~/.local/state/pilotkit``)."""
    environ = os.environ if env is None else env
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "pilotkit"
