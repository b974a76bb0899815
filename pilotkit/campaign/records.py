"""What a campaign knows of its allocations and its progress, as typed data: written to
``campaign.json`` in the campaign's directory (``pilotkit status`` reads it) and used
for the figures (allocations used, idle core-seconds, hand-over gaps)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import msgspec

CAMPAIGN_FILE = "campaign.json"
"""In a campaign's directory: its state, allocations and backlog."""
ALLOCATIONS_DIR = "allocations"
"""In a campaign's directory: one directory per allocation (its job script, logs)."""


class AllocationRecord(msgspec.Struct, kw_only=True):
    """One allocation of a campaign."""

    name: str
    """The allocation's pilot id, also the ``allocation`` of its results."""
    state: str = "queued"
    """``queued`` (submitted, not running tasks yet), ``running``, ``draining``, ``ended``."""
    job_id: str | None = None
    provider: str = ""
    why: str | None = None
    """Why it ended."""
    submitted: float = 0.0
    running: float | None = None
    """When its first task started."""
    drained: float | None = None
    ended: float | None = None
    cores: int = 0
    """Cores of all its nodes."""
    busy: float = 0.0
    """Core-seconds its tasks ran."""
    ok: int = 0
    failed: int = 0
    preempted: int = 0
    """Attempts it gave back to the backlog (its end, or its loss)."""
    claimed: float | None = None
    """When the provider handed it over (nodes known)."""
    submit_failed: bool = False
    """It never started (the batch system refused it, or it ended before any node
    called back): not counted against ``max_allocations``."""

    @property
    def active(self) -> bool:
        """Queued or running tasks: counts against ``parallel``."""
        return self.state in ("queued", "running")

    def idle_core_seconds(self, now: float | None = None) -> float | None:
        """Core-seconds of its cores that ran nothing, from claim to end."""
        if self.claimed is None:
            return None
        end = self.ended if self.ended is not None else (now or time.time())
        return max(0.0, self.cores * (end - self.claimed) - self.busy)


class CampaignStatus(msgspec.Struct, kw_only=True):
    """A campaign as ``campaign.json`` and ``pilotkit status --json`` show it."""

    name: str
    id: str
    state: str
    """``running``, ``paused``, or a final pilot state: ``done``, ``failed``, ``cancelled``."""
    reason: str | None = None
    workdir: str
    results: str
    started: float
    ended: float | None = None
    pid: int = 0
    """The process that runs it."""
    total: int = 0
    waiting: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    resumed: int = 0
    """Of ``done``: the tasks an earlier run of it ended ok (``--resume``, a daemon
    restart)."""
    max_allocations: int = 0
    parallel: int = 0
    min_allocations: int | None = None
    """The fewest allocations the work could have fitted in (its core-seconds over one
    allocation's), once every task has ended."""
    allocations: list[AllocationRecord] = []

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until the backlog is through at the rate tasks have ended so far."""
        now = now or time.time()
        finished = self.done + self.failed - self.resumed
        elapsed = (self.ended or now) - self.started
        if not finished or elapsed <= 0 or self.ended is not None:
            return None
        return (self.waiting + self.running) / (finished / elapsed)

    def handovers(self) -> list[tuple[str, str, float]]:
        """(ended allocation, next one, seconds): for each allocation that stopped
        running tasks (its drain point, or its end) while another ran on, the time until
        another allocation ran tasks (0 when one already did)."""
        out: list[tuple[str, str, float]] = []
        ran = [a for a in self.allocations if a.running is not None]
        for a in self.allocations:
            if a.ended is None or a.running is None:
                continue
            end = a.drained if a.drained is not None else a.ended
            others = [b for b in ran if b is not a and (b.ended is None or b.ended > a.ended)]
            if not others:
                continue
            nxt = min(others, key=lambda b: max(0.0, (b.running or 0.0) - end))
            out.append((a.name, nxt.name, max(0.0, (nxt.running or 0.0) - end)))
        return out


def minimum_allocations(core_seconds: float, cores: int, usable: float) -> int:
    """The fewest allocations of ``cores`` cores and ``usable`` seconds (walltime less
    drain margin) that hold ``core_seconds`` of work."""
    if cores <= 0 or usable <= 0:
        return 0
    return max(1, math.ceil(core_seconds / (cores * usable) - 1e-9))


def write_status(path: Path, status: CampaignStatus) -> None:
    """Replace ``campaign.json`` atomically (a worker thread calls this)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(msgspec.json.encode(status))
    os.replace(tmp, path)


def read_status(path: Path) -> CampaignStatus:
    return msgspec.json.decode(path.read_bytes(), type=CampaignStatus)
