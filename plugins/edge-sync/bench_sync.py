"""Throughput of edge-sync against plain rsync over the same OpenSSH server.

Starts share/testsshd on loopback (or uses a running one), writes one image of random
bytes, then copies it with each tool into a fresh destination, several rounds,
alternating which goes first::

    python plugins/edge-sync/bench_sync.py [--size-mb 200] [--rounds 3] [--sshd-dir DIR]

edge-sync is timed end to end (hashing the image, copying, verifying the remote copy
with SHA-256, renaming it into place) and for its copy alone; rsync is timed as
``rsync -e "ssh -F DIR/ssh_config" IMAGE pilotkit-test:DEST/``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pilotkit_edge_sync.options import EdgeSyncOptions
from pilotkit_edge_sync.stager import EdgeSyncStager

from pilotkit.events import Event
from pilotkit.interfaces import PilotContext

ROOT = Path(__file__).resolve().parents[2]
TESTSSHD = ROOT / "share" / "testsshd" / "testsshd"
SIF_HEADER = b"#!/usr/bin/env run-singularity\n\x00SIF_MAGIC\x0001\x00"


@dataclass
class Samples:
    """Seconds per round for one way of copying."""

    name: str
    seconds: list[float] = field(default_factory=list)

    def rate(self, size: int) -> float:
        """MB/s of the median round."""
        return size / statistics.median(self.seconds) / 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_image(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        handle.write(SIF_HEADER)
        left = size - len(SIF_HEADER)
        while left > 0:
            piece = min(left, 8 << 20)
            handle.write(os.urandom(piece))
            left -= piece


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


async def edge_sync_round(image: Path, cache: Path, sshd: Path, ctx: PilotContext) -> tuple[float, float]:
    """(end-to-end seconds, copy-only seconds) of one edge-sync stage into an empty cache."""
    fresh(cache)
    options = EdgeSyncOptions(host="pilotkit-test", cache=str(cache), ssh_config=str(sshd / "ssh_config"))
    stager = EdgeSyncStager(options)
    started = time.perf_counter()
    staged = await stager.stage(f"sync://{image}", ctx)
    elapsed = time.perf_counter() - started
    await stager.release()
    assert staged.path.stat().st_size == image.stat().st_size
    return elapsed, stager.stats.transfer_seconds


def rsync_round(image: Path, dest: Path, sshd: Path, extra_ssh: str = "") -> float:
    fresh(dest)
    argv = ["rsync", "-e", f"ssh -F {sshd / 'ssh_config'}{extra_ssh}", str(image), f"pilotkit-test:{dest}/"]
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    elapsed = time.perf_counter() - started
    assert (dest / image.name).stat().st_size == image.stat().st_size
    return elapsed


async def bench(size: int, rounds: int, sshd: Path, work: Path) -> None:
    image = work / "image.sif"
    write_image(image, size)
    events: list[Event] = []
    ctx = PilotContext("bench", None, work / "run", events.append)  # type: ignore[arg-type]
    edge, copy = Samples("edge-sync (hash + copy + verify)"), Samples("edge-sync copy alone")
    rsync, rsync_gcm = Samples("rsync -e 'ssh -F ssh_config'"), Samples("rsync, ssh -c aes128-gcm")
    for i in range(rounds):
        order = ["edge", "rsync"] if i % 2 == 0 else ["rsync", "edge"]
        for tool in order:
            if tool == "edge":
                total, transfer = await edge_sync_round(image, work / "cache", sshd, ctx)
                edge.seconds.append(total)
                copy.seconds.append(transfer)
            else:
                rsync.seconds.append(rsync_round(image, work / "rsync-dest", sshd))
        rsync_gcm.seconds.append(rsync_round(image, work / "rsync-dest", sshd, " -c aes128-gcm@openssh.com"))
        print(f"round {i + 1}: edge-sync {edge.seconds[-1]:.2f}s (copy {copy.seconds[-1]:.2f}s), "
              f"rsync {rsync.seconds[-1]:.2f}s, rsync aes128-gcm {rsync_gcm.seconds[-1]:.2f}s", flush=True)
    print(f"\n{size / 1e6:.0f} MB image, {rounds} rounds, median MB/s, {os.cpu_count()} CPUs, loopback")
    for samples in (edge, copy, rsync, rsync_gcm):
        print(f"  {samples.name:<36} {samples.rate(size):7.1f} MB/s")
    print(f"  ratio edge-sync / rsync (end to end)   {edge.rate(size) / rsync.rate(size):7.2f}")
    print(f"  ratio edge-sync copy / rsync           {copy.rate(size) / rsync.rate(size):7.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sshd-dir", type=Path, help="a running share/testsshd directory to use")
    args = parser.parse_args()
    if shutil.which("rsync") is None:
        print("bench_sync: rsync is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = Path(tmp)
        sshd = args.sshd_dir
        started_here = sshd is None
        if sshd is None:
            sshd = work / "sshd"
            subprocess.run([str(TESTSSHD), "up", str(sshd), str(free_port())], check=True, capture_output=True)
        try:
            asyncio.run(bench(args.size_mb * 1_000_000, args.rounds, sshd.resolve(), work))
        finally:
            if started_here:
                subprocess.run([str(TESTSSHD), "down", str(sshd)], check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
