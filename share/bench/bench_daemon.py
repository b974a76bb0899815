#!/usr/bin/env python3
"""Benchmark the pilotkit daemon. Prints figures; asserts nothing.

    python3 share/bench/bench_daemon.py [--subscribers 10] [--tasks 2000]
                                        [--agents 1000,2500,5000,10000] [--idle 10]

Measures, against a real daemon started for the run (state and socket in a temp dir):
  - events delivered per second to N subscribers (each on its own connection), live
    while a pilot runs N tasks of /bin/true, and when all of them replay the stored log;
  - the daemon's CPU while idle with one running pilot (goal: < 1% of a core) and RSS;
  - simulated node agents sending one ``agent.heartbeat`` (with metrics) a second each,
    100 agents per connection: the daemon's CPU at each load and how many agents one
    core would sustain at that rate (goal: 10,000).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pilotkit.client import EventItem, Gap, connect  # noqa: E402
from pilotkit.protocol import HeartbeatParams, Request, encode_frame  # noqa: E402


def spec(name: str, tasks: int, command: str, cores: int = 2) -> str:
    values = ", ".join(str(i) for i in range(tasks))
    return (f'name = "{name}"\n[resources]\ncores = {cores}\n[[app.groups]]\nname = "b"\n'
            f'command = "{command}"\n[app.groups.grid]\ni = [{values}]\n')


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


async def events_live(sock: str, subscribers: int, tasks: int) -> tuple[float, int, int]:
    """(events/s delivered in all, events per subscriber, gaps reported)."""
    counts = [0] * subscribers
    gaps = [0] * subscribers
    first: list[float] = []
    last = [0.0] * subscribers
    started = asyncio.Event()
    ready = 0

    async def subscriber(i: int, pilot_box: list[str]) -> None:
        nonlocal ready
        async with connect(socket=sock) as client:
            stream = client.events(None, since=-1)  # live events only
            ready += 1
            if ready == subscribers:
                started.set()
            async for item in stream:
                now = time.perf_counter()
                if isinstance(item, Gap):
                    gaps[i] += item.count
                    continue
                if not first:
                    first.append(now)
                counts[i] += 1
                last[i] = now
                if isinstance(item, EventItem) and getattr(item.event, "state", None) == "done":
                    break

    box: list[str] = []
    runners = [asyncio.ensure_future(subscriber(i, box)) for i in range(subscribers)]
    await asyncio.wait_for(started.wait(), 30)
    await asyncio.sleep(0.3)  # the subscriptions reach the daemon
    async with connect(socket=sock) as client:
        submitted = await client.submit(spec("bench-events", tasks, "true"))
        box.append(submitted.pilot)
        await client.wait(submitted.pilot)
    await asyncio.wait_for(asyncio.gather(*runners), 120)
    total = sum(counts)
    elapsed = max(last) - first[0] if first else 0.0
    return (total / elapsed if elapsed else 0.0), counts[0], sum(gaps)


async def events_replay(sock: str, subscribers: int) -> tuple[float, int]:
    async def one() -> int:
        n = 0
        async with connect(socket=sock) as client:
            async for _ in client.events(None, since=0, follow=False):
                n += 1
        return n

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(one() for _ in range(subscribers)))
    elapsed = time.perf_counter() - t0
    return sum(counts) / elapsed, counts[0]


async def start_idle_pilot(sock: str) -> str:
    async with connect(socket=sock) as client:
        submitted = await client.submit(spec("bench-idle", 1, "sleep 600", cores=1))
        for _ in range(200):
            (summary,) = await client.status(submitted.pilot)
            if summary.progress.running == 1:
                return submitted.pilot
            await asyncio.sleep(0.05)
    raise SystemExit("the idle pilot did not start")


async def agents_load(sock: str, pilot: str, agents: int, seconds: float, proc: psutil.Process) -> tuple[float, int]:
    """Daemon CPU (fraction of a core) and heartbeats it handled, for ``agents`` agents
    at 1 Hz for ``seconds``."""
    per_conn = 100
    conns = max(1, agents // per_conn)
    ticks_per_second = 20
    clients = []
    for _ in range(conns):
        reader, writer = await asyncio.open_unix_connection(sock)
        clients.append((reader, writer))
    frames = []
    for c in range(conns):
        batch = []
        for a in range(per_conn):
            params = HeartbeatParams(
                pilot=pilot, node=f"node-{c:04d}-{a:03d}", t=time.time(), cpu_percent=12.5,
                memory_used=8 * 2**30, memory_total=256 * 2**30,
            )
            batch.append(encode_frame(Request(method="agent.heartbeat", params=msgspec.Raw(msgspec.json.encode(params)))))
        frames.append(batch)
    async with connect(socket=sock) as client:
        before = (await client.status_full()).daemon.requests
    cpu0 = cpu_seconds(proc)
    t0 = time.perf_counter()
    tick = 0
    while True:
        now = time.perf_counter() - t0
        if now >= seconds:
            break
        slot = tick % ticks_per_second
        for (_, writer), batch in zip(clients, frames, strict=True):  # each agent once a second, spread over ticks
            part = batch[slot::ticks_per_second]
            if part:
                writer.write(b"".join(part))
        await asyncio.gather(*(w.drain() for _, w in clients))
        tick += 1
        await asyncio.sleep(max(0.0, tick / ticks_per_second - (time.perf_counter() - t0)))
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.5)
    cpu = (cpu_seconds(proc) - cpu0) / (elapsed + 0.5)
    async with connect(socket=sock) as client:
        handled = (await client.status_full()).daemon.requests - before - 1
    for _, writer in clients:
        writer.close()
    return cpu, handled


async def metrics_fanout(
    sock: str, pilot: str, subscribers: int, agents: int, seconds: float, proc: psutil.Process
) -> tuple[float, int, float]:
    """Live fan-out: heartbeats of ``agents`` agents, each sample streamed to every
    metrics subscriber. (samples/s delivered in all, samples dropped, daemon CPU)."""
    counts = [0] * subscribers
    gaps = [0] * subscribers
    stop = asyncio.Event()
    ready = asyncio.Semaphore(0)

    async def subscriber(i: int) -> None:
        async with connect(socket=sock) as client:
            stream = client.metrics(pilot, history=False)
            ready.release()
            async for item in stream:
                if isinstance(item, Gap):
                    gaps[i] += item.count
                else:
                    counts[i] += 1
                if stop.is_set():
                    break

    runners = [asyncio.ensure_future(subscriber(i)) for i in range(subscribers)]
    for _ in range(subscribers):
        await ready.acquire()
    await asyncio.sleep(0.3)
    t0 = time.perf_counter()
    cpu, _ = await agents_load(sock, pilot, agents, seconds, proc)
    elapsed = time.perf_counter() - t0
    stop.set()
    delivered = sum(counts)
    for runner in runners:
        runner.cancel()
    await asyncio.gather(*runners, return_exceptions=True)
    return delivered / elapsed, sum(gaps), cpu


@contextlib.asynccontextmanager
async def running_daemon() -> AsyncIterator[tuple[str, psutil.Process]]:
    """A real daemon for the run (state and socket in a temp dir): its socket and process.
    Sets ``XDG_RUNTIME_DIR`` in this process so clients find it."""
    tmp = Path(tempfile.mkdtemp(prefix="pilotkit-bench-"))
    env = dict(os.environ, XDG_STATE_HOME=str(tmp / "state"), XDG_RUNTIME_DIR=str(tmp / "run"))
    (tmp / "run").mkdir(mode=0o700)
    sock = str(tmp / "run" / "pilotkit" / "daemon.sock")
    log = open(tmp / "daemon.out", "wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "pilotkit.cli.main", "daemon", "--shutdown-timeout", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    os.environ.update(XDG_RUNTIME_DIR=env["XDG_RUNTIME_DIR"])
    try:
        for _ in range(300):
            if os.path.exists(sock):
                break
            await asyncio.sleep(0.05)
        yield sock, psutil.Process(daemon.pid)
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()


async def main(args: argparse.Namespace) -> None:
    async with running_daemon() as (sock, proc):
        print(f"daemon pid {proc.pid}; cpus: {psutil.cpu_count()}; python {sys.version.split()[0]}")

        rate, per_sub, gaps = await events_live(sock, args.subscribers, args.tasks)
        print(f"live events: {rate:,.0f} events/s delivered to {args.subscribers} subscribers in all "
              f"({per_sub} events each, {gaps} dropped) while running {args.tasks} tasks")
        rate, per_sub = await events_replay(sock, args.subscribers)
        print(f"replay: {rate:,.0f} events/s delivered to {args.subscribers} concurrent subscribers "
              f"({per_sub} stored events each)")

        pilot = await start_idle_pilot(sock)
        await asyncio.sleep(2.0)  # let start-up settle
        cpu0, t0 = cpu_seconds(proc), time.perf_counter()
        await asyncio.sleep(args.idle)
        idle = (cpu_seconds(proc) - cpu0) / (time.perf_counter() - t0)
        print(f"idle with one running pilot: {100 * idle:.2f}% of a core over {args.idle:g}s; "
              f"RSS {proc.memory_info().rss / 2**20:.1f} MiB")

        rate, dropped, cpu = await metrics_fanout(sock, pilot, args.subscribers, 2000, args.load_seconds, proc)
        print(f"live fan-out: {rate:,.0f} metric samples/s delivered to {args.subscribers} subscribers in all "
              f"(2,000 agents at 1 Hz; {dropped} dropped; daemon CPU {100 * cpu:.1f}% of a core)")

        for agents in (int(a) for a in args.agents.split(",")):
            cpu, handled = await agents_load(sock, pilot, agents, args.load_seconds, proc)
            expected = int(agents * args.load_seconds)
            sustain = agents / cpu if cpu > 0 else float("inf")
            print(f"agents {agents:>6}: daemon CPU {100 * cpu:5.1f}% of a core, handled {handled}/{expected} "
                  f"heartbeats; one core would sustain ~{sustain:,.0f} agents at 1 Hz; "
                  f"RSS {proc.memory_info().rss / 2**20:.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--agents", default="1000,2500,5000,10000")
    parser.add_argument("--load-seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args()))
