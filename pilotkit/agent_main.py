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
from pathlib import Path

import msgspec
import psutil

from .agent import LocalAgent
from .errors import PilotkitError
from .probe import probe_node
from .types import NodeInfo, TaskExit
from .wire import (
    Bye,
    Exited,
    FrameError,
    Heartbeat,
    Hello,
    Kill,
    Launch,
    Msg,
    Refused,
    Signalled,
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


async def _handshake(
    address: str, token_file: Path, pilot: str, node: NodeInfo, role: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Welcome]:
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise PilotkitError(f"cannot read the pilot token {token_file}: {exc.strerror}") from None
    reader, writer = await _connect(address)
    writer.write(pack(Hello(token=token, pilot=pilot, node=node, role=role)))
    reply = await read_msg(reader)
    if isinstance(reply, Refused):
        raise PilotkitError(f"the pilot refused this agent: {reply.reason}")
    if not isinstance(reply, Welcome):
        raise PilotkitError(f"unexpected reply from the pilot: {type(reply).__name__}")
    return reader, writer, reply


async def run_node_agent(address: str, token_file: Path, pilot: str, node_name: str | None = None) -> int:
    node = await asyncio.to_thread(probe_node)
    if node_name:
        node = msgspec.structs.replace(node, name=node_name)
    agent = LocalAgent(node)
    node = await agent.start()  # with how it contains tasks
    reader, writer, welcome = await _handshake(address, token_file, pilot, node, "node")
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def send(msg: Msg) -> None:
        if not writer.is_closing():
            writer.write(pack(msg))

    def exited(result: TaskExit) -> None:
        send(Exited(result=result))

    async def heartbeats() -> None:
        sampler = None
        try:
            from .gpu import GpuSampler

            sampler = GpuSampler() if node.gpus else None
        except Exception:
            sampler = None
        psutil.cpu_percent(interval=None)
        while True:
            gpus = [dict(s) for s in sampler.sample()] if sampler is not None else []
            send(
                Heartbeat(
                    t=time.time(),
                    running=agent.running,
                    cpu_percent=psutil.cpu_percent(interval=None),
                    memory_used=int(psutil.virtual_memory().used),
                    gpus=gpus,  # type: ignore[arg-type]
                )
            )
            await asyncio.sleep(welcome.heartbeat)

    def on_term() -> None:
        stopping.set()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_term)
    beat = asyncio.ensure_future(heartbeats())
    grace = 5.0
    code = 0
    reading = asyncio.ensure_future(read_msg(reader))
    stop_wait = asyncio.ensure_future(stopping.wait())
    heard: float | None = None
    """When the pilot last said something; the fence is armed once it has."""
    try:
        while True:
            done, _ = await asyncio.wait({reading, stop_wait}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
            if stop_wait in done:
                break
            if not done:
                if heard is not None and welcome.silence and time.monotonic() - heard > welcome.silence:
                    # Cut off: the pilot has declared this node lost and runs its tasks
                    # elsewhere, so they stop here.
                    print(
                        f"pilotkit agent: no word from the pilot for {welcome.silence:g}s: stopping this node's tasks",
                        file=sys.stderr,
                        flush=True,
                    )
                    agent.kill_all()
                    grace, code = 0.0, 1
                    break
                continue
            try:
                msg = reading.result()
            except (asyncio.IncompleteReadError, ConnectionError, FrameError):
                code = 1  # the pilot is gone: stop our tasks
                break
            heard = time.monotonic()
            if isinstance(msg, Launch):
                agent.launch(msg.launch, exited)
            elif isinstance(msg, Terminate):
                agent.terminate(msg.task_id, msg.grace)
            elif isinstance(msg, Kill):
                agent.kill_all()
            elif isinstance(msg, Stop):
                grace = msg.grace
                break
            reading = asyncio.ensure_future(read_msg(reader))
    finally:
        reading.cancel()
        stop_wait.cancel()
        await agent.stop(grace)
        beat.cancel()
        send(Bye(reason="stopped by a signal" if stopping.is_set() else "stopped"))
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(writer.drain(), 5.0)
        writer.close()
    return code


async def run_head_agent(address: str, token_file: Path, pilot: str, launch: list[str]) -> int:
    """Connect as head, start ``launch`` (which starts the node agents), relay signals."""
    node = NodeInfo(name=os.uname().nodename, cores=0, memory=0)
    _reader, writer, _ = await _handshake(address, token_file, pilot, node, "head")
    proc = await asyncio.create_subprocess_exec(*launch)
    loop = asyncio.get_running_loop()

    def relay(sig: signal.Signals) -> None:
        if not writer.is_closing():
            writer.write(pack(Signalled(signal=sig.name)))
        if sig is not signal.SIGUSR1 and proc.returncode is None:
            proc.send_signal(sig)

    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay, sig)
    code = await proc.wait()
    with contextlib.suppress(ConnectionError):
        writer.close()
    return code


def agent_command(
    connect: str, token_file: Path, pilot: str, head: bool, launch: list[str], node_name: str | None = None
) -> int:
    if head:
        if not launch:
            raise PilotkitError("--head needs the command that starts the node agents after --")
        return asyncio.run(run_head_agent(connect, token_file, pilot, launch))
    return asyncio.run(run_node_agent(connect, token_file, pilot, node_name))
