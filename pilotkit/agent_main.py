"""``pilotkit agent``: the process that runs on each node of a batch allocation.

A *node agent* connects back to its pilot, reports what its node has, runs the task
attempts it is sent (with the same :class:`~pilotkit.agent.LocalAgent` the local pilot
uses) and sends heartbeats with metrics. The *head agent* is what the batch script
runs: it connects too, starts one node agent per node through the launcher (``srun``),
and relays the batch system's signals (USR1 before the walltime ends, TERM) to the pilot.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import psutil

from .agent import LocalAgent
from .errors import PilotkitError
from .journal import Journal
from .probe import core_percent, probe_node
from .types import NodeInfo, TaskExit, TaskLaunch
from .vocab import PILOT_ADDRESS_FILE, journal_file
from .wire import (
    Bye,
    Carried,
    Exited,
    FrameError,
    Heartbeat,
    Hello,
    Kill,
    Launch,
    Msg,
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

CONNECT_ATTEMPTS = 10
CONNECT_TIMEOUT = 5.0
"""Seconds one connection attempt may take (an address that drops packets)."""


async def _connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = address.rpartition(":")
    delay = 0.2
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, int(port)), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            if attempt == CONNECT_ATTEMPTS - 1:
                why = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
                raise PilotkitError(f"cannot reach the pilot at {address}: {why}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")


def _address(token_file: Path, given: str) -> str:
    """Where the pilot listens now: the run directory's address file (a pilot that came
    back writes its new one there), else the address the agent was started with."""
    try:
        return (token_file.parent / PILOT_ADDRESS_FILE).read_text().strip() or given
    except OSError:
        return given


async def _greet(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token_file: Path, hello: Hello
) -> Welcome:
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise PilotkitError(f"cannot read the pilot token {token_file}: {exc.strerror}") from None
    writer.write(pack(msgspec.structs.replace(hello, token=token)))
    reply = await read_msg(reader)
    if isinstance(reply, Refused):
        raise Fenced(f"the pilot refused this agent: {reply.reason}")
    if not isinstance(reply, Welcome):
        raise PilotkitError(f"unexpected reply from the pilot: {type(reply).__name__}")
    return reply


class Fenced(PilotkitError):
    """The pilot refused the agent: it must not run its tasks any longer."""


async def _handshake(
    address: str, token_file: Path, pilot: str, node: NodeInfo, role: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Welcome]:
    reader, writer = await _connect(address)
    welcome = await _greet(reader, writer, token_file, Hello(token="", pilot=pilot, node=node, role=role))
    return reader, writer, welcome


async def _rejoin(
    address: str,
    token_file: Path,
    hello: Callable[[], Hello],
    until: float,
    stopping: asyncio.Event,
    refused: Callable[[], None] = lambda: None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Welcome] | None:
    """Connect again until ``until`` (monotonic) or ``stopping``; None then. ``hello``
    says what the agent carries at the moment it gets through; ``refused`` is called
    after each try that got no welcome: no connection (no pilot listens), or a
    connection that got no answer (the hello was said to no one: a pilot that was going
    away, whose port still took the connection).

    :raises Fenced: the pilot refused the agent.
    """
    delay = REJOIN_DELAY
    while not stopping.is_set() and time.monotonic() < until:
        where = _address(token_file, address)
        host, _, port = where.rpartition(":")
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), CONNECT_TIMEOUT)
            try:
                welcome = await asyncio.wait_for(_greet(reader, writer, token_file, hello()), CONNECT_TIMEOUT)
            except Fenced:
                writer.close()
                raise
            except BaseException:
                writer.close()
                raise
            return reader, writer, welcome
        except Fenced:
            raise
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, FrameError, PilotkitError):
            refused()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), min(delay, max(0.0, until - time.monotonic())))
        delay = min(delay * 2, REJOIN_DELAY_MAX)
    return None


REJOIN_DELAY = 0.5
REJOIN_DELAY_MAX = 2.0
"""Seconds between tries to reach a pilot that went away (doubling up to this)."""


class NodeAgent:
    """A node agent's connection to its pilot, and what it keeps while it has none.

    Every result is journaled (see :mod:`pilotkit.journal`) and kept in memory until the
    pilot acknowledges it. When the connection *closes* and the pilot asked for it
    (:attr:`Welcome.linger`), the tasks go on and the agent tries to connect again (to
    the address in the run directory's address file); when it gets back in it says
    what it runs and sends every result not acknowledged. When the pilot is *silent*
    (the node is cut off) it stops its tasks, as the pilot has declared it lost."""

    def __init__(self, address: str, token_file: Path, pilot: str, agent: LocalAgent) -> None:
        self.address = address
        self.token_file = token_file
        self.pilot = pilot
        self.agent = agent
        self.node = agent.node
        self.journal = Journal(journal_file(token_file.parent, self.node.name))
        self.stopping = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.seq = 0
        self.unacked: dict[int, TaskExit] = {}
        self._results: asyncio.Queue[TaskExit] = asyncio.Queue()
        self.queued: dict[str, TaskLaunch] = {}
        """Attempts the pilot gave this agent to start while no pilot is attached (its
        standing lease, and what it handed over as it let go), by task id, in order."""
        self.away = False
        """No pilot is attached: the queued attempts start as cores come free."""

    def send(self, msg: Msg) -> None:
        writer = self.writer
        if writer is not None and not writer.is_closing():
            writer.write(pack(msg))

    def exited(self, result: TaskExit) -> None:
        self._results.put_nowait(result)
        if self.away and self.queued:
            asyncio.get_running_loop().call_soon(self._start_queued)

    def _start_queued(self) -> None:
        """Start the queued attempts that fit in the cores free now (in order)."""
        busy = self.agent.busy_cores
        while self.away and self.queued:
            task_id, launch = next(iter(self.queued.items()))
            if busy + launch.cores > max(1, self.node.cores):
                break
            del self.queued[task_id]
            busy += launch.cores
            self.agent.launch(launch, self.exited)

    def _no_welcome(self) -> None:
        """A try to rejoin got no welcome: no pilot is attached, the queued tasks start.

        Not before that first try: a connection that closed while the pilot lives (a
        reset) gets it refused, and this node's queued tasks, which that pilot places
        elsewhere once it has declared the node lost, never start here."""
        self.away = True
        self._start_queued()

    def _drop_queued(self) -> int:
        """A pilot is attached again (or this agent stops): nothing more starts on its own."""
        self.away = False
        dropped = len(self.queued)
        self.queued.clear()
        return dropped

    async def _deliver(self) -> None:
        """Journal each result, then send it (in the order they ended)."""
        while True:
            batch = [await self._results.get()]
            while not self._results.empty():
                batch.append(self._results.get_nowait())
            try:
                numbered = [(self.seq + i + 1, result) for i, result in enumerate(batch)]
                self.seq += len(batch)
                self.unacked.update(numbered)  # a rejoin's hello meanwhile carries them too
                await self.journal.append(numbered)  # one fsync for all of them
                for seq, result in numbered:
                    self.send(Exited(result=result, seq=seq))
            finally:
                for _ in batch:
                    self._results.task_done()

    def _acked(self, upto: int) -> None:
        for seq in [s for s in self.unacked if s <= upto]:
            del self.unacked[seq]

    def rejoin_hello(self) -> Hello:
        self.away = False  # nothing starts on its own while the pilot may be taking over
        return Hello(
            token="", pilot=self.pilot, node=self.node, rejoin=True,
            running=[Carried(task_id=t, attempt=a, start=s) for t, a, s in self.agent.attempts()],
            finished=[Exited(result=r, seq=n) for n, r in sorted(self.unacked.items())],
        )  # fmt: skip

    async def _heartbeats(self, interval: float) -> None:
        sampler = None
        try:
            from .gpu import GpuSampler

            sampler = GpuSampler() if self.node.gpus else None
        except Exception:
            sampler = None
        psutil.cpu_percent(interval=None)
        core_percent()  # primes its own counters
        while True:
            gpus = [dict(s) for s in sampler.sample()] if sampler is not None else []
            self.send(
                Heartbeat(
                    t=time.time(),
                    running=self.agent.running,
                    cpu_percent=psutil.cpu_percent(interval=None),
                    memory_used=int(psutil.virtual_memory().used),
                    gpus=gpus,  # type: ignore[arg-type]
                    core_percent=core_percent(),
                )
            )
            await asyncio.sleep(interval)

    async def _serve(self, reader: asyncio.StreamReader, welcome: Welcome) -> tuple[str, float]:
        """Until the connection ends: (why: ``stop``, ``signal``, ``closed``, ``silent``; grace)."""
        reading = asyncio.ensure_future(read_msg(reader))
        stop_wait = asyncio.ensure_future(self.stopping.wait())
        heard: float | None = None
        """When the pilot last said something; the fence is armed once it has."""
        try:
            while True:
                done, _ = await asyncio.wait(
                    {reading, stop_wait}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED
                )
                if stop_wait in done:
                    return "signal", 5.0
                if not done:
                    if heard is not None and welcome.silence and time.monotonic() - heard > welcome.silence:
                        return "silent", 0.0
                    continue
                try:
                    msg = reading.result()
                except (asyncio.IncompleteReadError, ConnectionError, FrameError):
                    return "closed", 5.0
                heard = time.monotonic()
                if isinstance(msg, Launch):
                    self.queued.pop(msg.launch.task_id, None)  # a leased attempt the pilot starts
                    self.agent.launch(msg.launch, self.exited)
                elif isinstance(msg, Queue):
                    self.queued.update((launch.task_id, launch) for launch in msg.launches)
                elif isinstance(msg, Revoke):
                    dropped = [t for t in msg.task_ids if self.queued.pop(t, None) is not None]
                    self.send(Revoked(task_ids=dropped))
                elif isinstance(msg, Heartbeat):
                    self._acked(msg.acked)
                elif isinstance(msg, Terminate):
                    self.agent.terminate(msg.task_id, msg.grace)
                elif isinstance(msg, SignalTask):
                    self.agent.signal(msg.task_id, msg.signal)
                elif isinstance(msg, Kill):
                    self.agent.kill_all()
                elif isinstance(msg, Stop):
                    return "stop", msg.grace
                reading = asyncio.ensure_future(read_msg(reader))
        finally:
            reading.cancel()
            stop_wait.cancel()

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, welcome: Welcome) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        self.writer = writer
        deliver = asyncio.ensure_future(self._deliver())
        beat = asyncio.ensure_future(self._heartbeats(welcome.heartbeat))
        grace, code = 5.0, 0
        try:
            while True:
                why, grace = await self._serve(reader, welcome)
                if why in ("stop", "signal"):
                    break
                if why == "silent":
                    # Cut off: the pilot has declared this node lost and runs its tasks
                    # elsewhere, so they stop here.
                    self._say(f"no word from the pilot for {welcome.silence:g}s: stopping this node's tasks")
                    self.agent.kill_all()
                    grace, code = 0.0, 1
                    break
                writer.close()
                self.writer = None
                if welcome.linger <= 0:
                    code = 1  # the pilot is gone: stop our tasks
                    break
                self._say(f"the pilot went away: keeping {self.agent.running} task(s) and their results "
                          f"for up to {welcome.linger:g}s while it comes back"
                          + (f"; {len(self.queued)} queued task(s) to start meanwhile" if self.queued else ""))  # fmt: skip
                try:
                    joined = await _rejoin(
                        self.address, self.token_file, self.rejoin_hello,
                        time.monotonic() + welcome.linger, self.stopping, self._no_welcome,
                    )  # fmt: skip
                except Fenced as exc:
                    self._say(f"{exc}: stopping this node's tasks")
                    self.agent.kill_all()
                    grace, code = 0.0, 1
                    break
                if joined is None:
                    if not self.stopping.is_set():
                        self._say("the pilot did not come back: stopping this node's tasks")
                        code = 1
                    break
                reader, writer, welcome = joined
                dropped = self._drop_queued()  # the pilot places tasks again: it knows all that runs
                self.writer = writer
                self._say(f"the pilot is back: rejoined with {self.agent.running} task(s) running and "
                          f"{len(self.unacked)} result(s) not yet acknowledged"
                          + (f"; {dropped} queued task(s) not started are the pilot's again" if dropped else ""))  # fmt: skip
        finally:
            self._drop_queued()
            await self.agent.stop(grace)
            await self._results.join()  # every result journaled (and sent, if connected)
            deliver.cancel()
            beat.cancel()
            self.journal.close()
            self.send(Bye(reason="stopped by a signal" if self.stopping.is_set() else "stopped"))
            if self.writer is not None:
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await asyncio.wait_for(self.writer.drain(), 5.0)
                self.writer.close()
        return code

    def _say(self, message: str) -> None:
        print(f"pilotkit agent on {self.node.name}: {message}", file=sys.stderr, flush=True)


async def run_node_agent(address: str, token_file: Path, pilot: str, node_name: str | None = None) -> int:
    node = await asyncio.to_thread(probe_node)
    if node_name:
        node = msgspec.structs.replace(node, name=node_name)
    agent = LocalAgent(node)
    node = await agent.start()  # with how it contains tasks
    reader, writer, welcome = await _handshake(address, token_file, pilot, node, "node")
    return await NodeAgent(address, token_file, pilot, agent).run(reader, writer, welcome)


async def run_head_agent(address: str, token_file: Path, pilot: str, launch: list[str]) -> int:
    """Connect as head, start ``launch`` (which starts the node agents), relay signals.

    When the connection closes and the pilot asked the agents to wait for it, the head
    agent connects again too (signals that come meanwhile reach the node agents only)."""
    node = NodeInfo(name=os.uname().nodename, cores=0, memory=0)
    reader, writer, welcome = await _handshake(address, token_file, pilot, node, "head")
    proc = await asyncio.create_subprocess_exec(*launch)
    loop = asyncio.get_running_loop()
    conn = [writer]
    ended = asyncio.Event()

    def relay(sig: signal.Signals) -> None:
        if not conn[0].is_closing():
            conn[0].write(pack(Signalled(signal=sig.name)))
        if sig is not signal.SIGUSR1 and proc.returncode is None:
            proc.send_signal(sig)

    def head_hello() -> Hello:
        return Hello(token="", pilot=pilot, node=node, role="head", rejoin=True)

    async def keep_connected(reader: asyncio.StreamReader, welcome: Welcome) -> None:
        while welcome.linger > 0:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, FrameError):
                while True:
                    await read_msg(reader)
            conn[0].close()
            try:
                joined = await _rejoin(address, token_file, head_hello, time.monotonic() + welcome.linger, ended)
            except Fenced:
                return
            if joined is None:
                return
            reader, conn[0], welcome = joined

    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay, sig)
    keeper = asyncio.ensure_future(keep_connected(reader, welcome))
    code = await proc.wait()
    ended.set()
    keeper.cancel()
    with contextlib.suppress(ConnectionError):
        conn[0].close()
    return code


def agent_command(
    connect: str, token_file: Path, pilot: str, head: bool, launch: list[str], node_name: str | None = None
) -> int:
    if head:
        if not launch:
            raise PilotkitError("--head needs the command that starts the node agents after --")
        return asyncio.run(run_head_agent(connect, token_file, pilot, launch))
    return asyncio.run(run_node_agent(connect, token_file, pilot, node_name))
