"""The pilot <-> node agent protocol: length-prefixed msgspec JSON frames over a stream.

A frame is a 4-byte big-endian length and that many bytes of JSON. Every message is a
tagged struct, so one decoder reads any of them.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Union

import msgspec

from .types import NodeInfo, TaskExit, TaskLaunch

PROTOCOL = 1
MAX_FRAME = 4 * 1024 * 1024
_HEADER = struct.Struct(">I")


class FrameError(Exception):
    """A frame too large or not decodable."""


class Msg(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class Hello(Msg, tag="hello"):
    """First message of an agent: who it is and what its node has."""

    token: str
    pilot: str
    node: NodeInfo
    protocol: int = PROTOCOL
    role: str = "node"
    """``node``: runs tasks; ``head``: the batch script's process (relays signals)."""
    rejoin: bool = False
    """The agent connected before and lost its connection (its pilot went away and came
    back): what it carries follows."""
    running: list[Carried] = []
    """Attempts the agent runs now (a rejoin)."""
    finished: list[Exited] = []
    """Attempts that ended and that no pilot has acknowledged yet (a rejoin)."""


class Carried(msgspec.Struct, kw_only=True):
    """An attempt a rejoining agent runs."""

    task_id: str
    attempt: int
    start: float


class Welcome(Msg, tag="welcome"):
    heartbeat: float
    """Seconds between heartbeats the pilot expects."""
    silence: float = 0.0
    """Seconds without a word from the pilot (it sends a heartbeat every second) after
    which a node agent, once the pilot has spoken to it, stops its tasks and leaves: the
    pilot has declared it lost by then and runs its tasks elsewhere, so they must not go
    on here too. 0: never."""
    linger: float = 0.0
    """Seconds a node agent whose connection *closed* (the pilot's process ended: a
    daemon killed or stopped) keeps running its tasks, keeps their results and tries to
    connect again, for the pilot to come back; past them it stops its tasks and leaves.
    0: it stops them at once."""


class Refused(Msg, tag="refused"):
    reason: str


class Launch(Msg, tag="launch"):
    launch: TaskLaunch


class Queue(Msg, tag="queue"):
    """From the pilot: attempts for the agent to start on its own while no pilot is
    attached, in order, as cores come free. Sent as the pilot lets go (see
    :meth:`pilotkit.interfaces.Agent.hand_over`) and, while it is attached, as a standing
    lease (:meth:`pilotkit.interfaces.Agent.lease`): the agent starts none of them while
    it is connected; a :class:`Launch` of one takes it off the agent's queue, and a
    :class:`Revoke` gives it back to the pilot."""

    launches: list[TaskLaunch]


class Revoke(Msg, tag="revoke"):
    """From the pilot: drop these queued attempts (by task id) and say which were dropped
    (:class:`Revoked`); the pilot places them elsewhere only after that answer."""

    task_ids: list[str]


class Revoked(Msg, tag="revoked"):
    """The agent's answer to a :class:`Revoke`: the attempts it dropped (never started)."""

    task_ids: list[str]


class Terminate(Msg, tag="terminate"):
    task_id: str
    grace: float


class SignalTask(Msg, tag="signal-task"):
    """Send ``signal`` to a running attempt's process group (a campaign's checkpoint
    signal at its allocation's drain point)."""

    task_id: str
    signal: int


class Kill(Msg, tag="kill"):
    """SIGKILL every running attempt now (a second Ctrl-C or cancel); they report
    ``Exited`` as usual."""


class Stop(Msg, tag="stop"):
    """Terminate everything, report, and exit."""

    grace: float


class Exited(Msg, tag="exited"):
    result: TaskExit
    seq: int = 0
    """The agent's number for this result (1, 2, ...); the pilot acknowledges results
    by number in its heartbeats."""


class Heartbeat(Msg, tag="heartbeat"):
    t: float
    running: int
    cpu_percent: float | None = None
    memory_used: int | None = None
    gpus: list[dict[str, float | int | None]] = []
    core_percent: list[float] = []
    """The load of each logical CPU of the node, in percent (psutil's per-CPU figures)."""
    acked: int = 0
    """From the pilot: results up to this number are recorded; the agent forgets them."""


class Signalled(Msg, tag="signalled"):
    """The head agent got a signal from the batch system (USR1: walltime near; TERM)."""

    signal: str


class Bye(Msg, tag="bye"):
    reason: str = ""


AgentMsg = Union[  # noqa: UP007
    Hello, Welcome, Refused, Launch, Queue, Terminate, SignalTask, Kill, Stop, Exited, Heartbeat, Signalled,
    Bye, Revoke, Revoked,
]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AgentMsg)


def pack(msg: Msg) -> bytes:
    body = _encoder.encode(msg)
    return _HEADER.pack(len(body)) + body


async def read_msg(reader: asyncio.StreamReader, max_frame: int = MAX_FRAME) -> AgentMsg:
    """The next message; raises IncompleteReadError at end of stream, FrameError on junk."""
    header = await reader.readexactly(_HEADER.size)
    (size,) = _HEADER.unpack(header)
    if size > max_frame:
        raise FrameError(f"frame of {size} bytes exceeds the limit of {max_frame}")
    body = await reader.readexactly(size)
    try:
        msg: AgentMsg = _decoder.decode(body)
        return msg
    except msgspec.DecodeError as exc:
        raise FrameError(f"undecodable frame: {exc}") from None
