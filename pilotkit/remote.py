"""The pilot's side of remote node agents: a TCP server agents connect back to, and a
:class:`RemoteAgent` per connected node with the same interface as the in-process agent.

Agents authenticate with the pilot's token (compared in constant time). A node whose
heartbeats stop for ``heartbeat_timeout`` is declared lost: its running attempts end
with status ``lost`` and the pool re-queues them on the other nodes. The pilot sends each
started agent a heartbeat every second too; an agent that hears nothing for
``heartbeat_timeout`` stops its tasks (it has been declared lost), so that a task does not
run on a cut-off node and elsewhere at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable

from .interfaces import Agent, ExitCallback
from .types import CarriedAttempt, NodeInfo, TaskExit, TaskLaunch
from .wire import (
    Bye,
    Exited,
    FrameError,
    Heartbeat,
    Hello,
    Kill,
    Launch,
    Queue,
    Refused,
    Revoke,
    Revoked,
    Signalled,
    SignalTask,
    Stop,
    Terminate,
    Welcome,
    pack,
    read_msg,
)

log = logging.getLogger("pilotkit.remote")


class RemoteAgent(Agent):
    """A node agent in another process (another node), reached over a stream."""

    def __init__(
        self,
        node: NodeInfo,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        heartbeat_timeout: float,
        on_lost: Callable[[RemoteAgent, str], None],
        hello: Hello | None = None,
        leasing: bool = False,
    ) -> None:
        self.node = node
        self._leasing = leasing
        self._leased: set[str] = set()
        """Task ids leased to the agent and not launched nor given back (see :meth:`lease`)."""
        self._on_back: Callable[[list[str]], None] = lambda task_ids: None
        self._reader = reader
        self._writer = writer
        self._timeout = heartbeat_timeout
        self._on_lost = on_lost
        self._callbacks: dict[str, tuple[TaskLaunch, ExitCallback]] = {}
        self.last_heartbeat = time.monotonic()
        self.metrics: Heartbeat | None = None
        self.lost: str | None = None
        self._stopping = False
        self._closed = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._acked = 0
        """The highest result number received (acknowledged in the pilot's heartbeats)."""
        self._carried: list[CarriedAttempt] = []
        self._unclaimed: dict[str, TaskExit] = {}
        """Results of attempts this pilot did not launch (a rejoin): kept for :meth:`adopt`."""
        if hello is not None and hello.rejoin:
            self._carried = [
                CarriedAttempt(task_id=c.task_id, attempt=c.attempt, node=node.name, start=c.start)
                for c in hello.running
            ]
            for done in hello.finished:
                self._acked = max(self._acked, done.seq)
                self._carried.append(
                    CarriedAttempt(task_id=done.result.task_id, attempt=done.result.attempt, node=node.name,
                                   start=done.result.start, exit=done.result)
                )  # fmt: skip

    async def start(self) -> NodeInfo:
        if self._reader_task is None:
            self._reader_task = asyncio.ensure_future(self._read_loop())
            self._watchdog = asyncio.ensure_future(self._watch())
        return self.node

    @property
    def running(self) -> int:
        return len(self._callbacks)

    def carried(self) -> list[CarriedAttempt]:
        return list(self._carried)

    def adopt(self, task_id: str, attempt: int, on_exit: ExitCallback) -> None:
        done = self._unclaimed.pop(task_id, None)
        if done is not None and done.attempt == attempt:
            asyncio.get_running_loop().call_soon(on_exit, done)
            return
        stub = TaskLaunch(task_id=task_id, attempt=attempt, argv=[], cwd="", stdout="", stderr="")
        if self.lost is not None:
            self._callbacks[task_id] = (stub, on_exit)
            self._fail_running("lost", self.lost)
            return
        self._callbacks[task_id] = (stub, on_exit)

    HAND_OVER_FRAME = 200
    """Launches per ``queue`` frame (each well under the frame limit)."""

    def hand_over(self, launches: list[TaskLaunch]) -> bool:
        if self.lost is not None or self._writer.is_closing():
            return False
        for i in range(0, len(launches), self.HAND_OVER_FRAME):
            self._send(Queue(launches=launches[i : i + self.HAND_OVER_FRAME]))
        return True

    async def flush(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(self._writer.drain(), 10.0)

    @property
    def leasing(self) -> bool:
        return self._leasing

    def lease(self, launches: list[TaskLaunch], on_back: Callable[[list[str]], None]) -> bool:
        if not self._leasing or self.lost is not None or self._writer.is_closing() or self._stopping:
            return False
        self._on_back = on_back
        self._leased.update(launch.task_id for launch in launches)
        for i in range(0, len(launches), self.HAND_OVER_FRAME):
            self._send(Queue(launches=launches[i : i + self.HAND_OVER_FRAME]))
        return True

    def revoke(self, task_ids: list[str]) -> None:
        self._send(Revoke(task_ids=[t for t in task_ids if t in self._leased]))

    def _give_back(self, task_ids: list[str]) -> None:
        back = [t for t in task_ids if t in self._leased]
        self._leased.difference_update(back)
        if back:
            self._on_back(back)

    def _send(self, msg: Launch | Queue | Revoke | Terminate | SignalTask | Kill | Stop | Heartbeat) -> None:
        if self.lost is None and not self._writer.is_closing():
            self._writer.write(pack(msg))

    def launch(self, launch: TaskLaunch, on_exit: ExitCallback) -> None:
        if self.lost is not None:
            result = TaskExit(
                task_id=launch.task_id,
                attempt=launch.attempt,
                node=self.node.name,
                status="lost",
                start=time.time(),
                end=time.time(),
                message=self.lost,
            )
            asyncio.get_running_loop().call_soon(on_exit, result)
            return
        self._leased.discard(launch.task_id)  # the agent takes it off its queue as it starts it
        self._callbacks[launch.task_id] = (launch, on_exit)
        self._send(Launch(launch=launch))

    def terminate(self, task_id: str, grace: float) -> None:
        self._send(Terminate(task_id=task_id, grace=grace))

    def signal(self, task_id: str, sig: int) -> bool:
        if self.lost is not None or task_id not in self._callbacks:
            return False
        self._send(SignalTask(task_id=task_id, signal=sig))
        return True

    def kill_all(self) -> None:
        """Ask the node agent to SIGKILL everything it runs; the attempts end with
        status ``killed`` through the usual ``Exited`` messages."""
        self._send(Kill())

    async def stop(self, grace: float) -> None:
        self._stopping = True
        self._send(Stop(grace=grace))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), grace + 10.0)
        self._close("stopped")

    async def _read_loop(self) -> None:
        left = "the connection closed"
        try:
            while True:
                msg = await read_msg(self._reader)
                self.last_heartbeat = time.monotonic()
                if isinstance(msg, Exited):
                    self._acked = max(self._acked, msg.seq)
                    entry = self._callbacks.pop(msg.result.task_id, None)
                    if entry is not None:
                        entry[1](msg.result)
                    elif any(c.task_id == msg.result.task_id for c in self._carried):
                        self._unclaimed[msg.result.task_id] = msg.result  # adopted later
                elif isinstance(msg, Heartbeat):
                    self.metrics = msg
                elif isinstance(msg, Revoked):
                    self._give_back(msg.task_ids)
                elif isinstance(msg, Bye):
                    left = f"the agent left ({msg.reason})" if msg.reason else "the agent left"
                    break
        except (asyncio.IncompleteReadError, ConnectionError, FrameError) as exc:
            left = f"connection lost: {exc or type(exc).__name__}"
        finally:
            if not self._stopping and not self._closed.is_set():
                # Not asked to stop: the node (or its agent) went away under us.
                self._declare_lost(f"{self.node.name}: {left}")
            self._closed.set()
            self._fail_running("lost", self.lost or "agent left")
            # The agent is gone or fenced (a rejoin is refused): it starts none of them.
            self._give_back(list(self._leased))

    async def _watch(self) -> None:
        while not self._closed.is_set():
            await asyncio.sleep(min(1.0, self._timeout / 4))
            if not self._stopping:
                # The agent's fence, and which of its results are recorded.
                self._send(Heartbeat(t=time.time(), running=len(self._callbacks), acked=self._acked))
            silent = time.monotonic() - self.last_heartbeat
            if silent > self._timeout:
                self._declare_lost(f"no heartbeat from {self.node.name} for {silent:.0f}s")
                if not self._writer.is_closing():  # an agent that still hears us stops all it has
                    self._writer.write(pack(Stop(grace=0.0)))
                self._close("lost")
                return

    def _declare_lost(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
            log.warning(reason)
            self._fail_running("lost", reason)
            self._give_back(list(self._leased))
            self._on_lost(self, reason)

    def _fail_running(self, status: str, reason: str) -> None:
        callbacks, self._callbacks = self._callbacks, {}
        now = time.time()
        for launch, on_exit in callbacks.values():
            on_exit(
                TaskExit(
                    task_id=launch.task_id,
                    attempt=launch.attempt,
                    node=self.node.name,
                    status=status,
                    start=now,
                    end=now,
                    message=reason,
                )
            )

    def _close(self, why: str) -> None:
        self._closed.set()
        if not self._writer.is_closing():
            self._writer.close()
        for task in (self._reader_task, self._watchdog):
            if task is not None and task is not asyncio.current_task():
                task.cancel()


class AgentServer:
    """Accepts node agents of one pilot on a TCP address."""

    def __init__(
        self,
        pilot_id: str,
        *,
        host: str,
        port: int = 0,
        heartbeat: float = 8.0,
        heartbeat_timeout: float = 16.0,
        on_signal: Callable[[str], None] | None = None,
        on_lost: Callable[[RemoteAgent, str], None] | None = None,
        token: str | None = None,
        linger: float = 0.0,
        on_join: Callable[[RemoteAgent], None] | None = None,
    ) -> None:
        self.pilot_id = pilot_id
        self.host = host
        self.port = port
        self.token = token or secrets.token_hex(32)
        self.linger = linger
        self.on_join = on_join
        """Called with each node agent that connects after :meth:`wait_for` returned."""
        self._waited = False
        """Seconds agents keep their tasks and wait for this pilot to come back once
        its process is gone (see :attr:`pilotkit.wire.Welcome.linger`)."""
        self.heartbeat = heartbeat
        self.heartbeat_timeout = heartbeat_timeout
        self.on_signal = on_signal or (lambda sig: None)
        self.on_lost = on_lost or (lambda agent, reason: None)
        self.agents: dict[str, RemoteAgent] = {}
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._heads: list[asyncio.StreamWriter] = []
        self.heads = 0
        """Head agents that have connected."""

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)
        except OSError:
            if not self.port:
                raise
            # The port of an earlier run is taken: any port (the agents read the new one
            # from the run directory's address file).
            self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await asyncio.wait_for(read_msg(reader), 10.0)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, FrameError):
            writer.close()
            return
        if (
            not isinstance(hello, Hello)
            or not hmac.compare_digest(hello.token, self.token)
            or hello.pilot != self.pilot_id
        ):
            writer.write(pack(Refused(reason="bad token or pilot id")))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        if hello.role == "node" and hello.rejoin and (hello.node.name in self.agents or self._waited):
            # Declared lost by this very pilot, or back after it stopped waiting: its
            # tasks run elsewhere, so they stop there (fenced).
            writer.write(pack(Refused(reason=f"{hello.node.name} was declared lost; its tasks run elsewhere")))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        writer.write(pack(Welcome(heartbeat=self.heartbeat, silence=self.heartbeat_timeout, linger=self.linger)))
        if hello.role == "head":
            self._heads.append(writer)
            self.heads += 1
            await self._serve_head(reader)
            return
        agent = RemoteAgent(hello.node, reader, writer, self.heartbeat_timeout, self.on_lost, hello,
                            leasing=self.linger > 0)  # fmt: skip
        async with self._arrived:
            earlier = self.agents.get(hello.node.name)
            late = self._waited and (earlier is None or earlier.lost is not None)
            self.agents[hello.node.name] = agent
            self._arrived.notify_all()
        if late and self.on_join is not None:
            self.on_join(agent)

    async def _serve_head(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(
            asyncio.IncompleteReadError, ConnectionError, FrameError, asyncio.CancelledError
        ):
            while True:
                msg = await read_msg(reader)
                if isinstance(msg, Signalled):
                    self.on_signal(msg.signal)

    def stop_waiting(self) -> None:
        """Take the agents there are as the pilot's: later ones join (:attr:`on_join`)."""
        self._waited = True

    async def wait_for(self, count: int, timeout: float) -> list[RemoteAgent]:
        """Until ``count`` node agents have connected (or raise TimeoutError)."""

        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.agents) >= count)

        await asyncio.wait_for(enough(), timeout)
        self._waited = True
        return list(self.agents.values())

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        for writer in self._heads:
            writer.close()
