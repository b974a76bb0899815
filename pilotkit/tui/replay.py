"""Replay a recorded event log: JSON lines of pilotkit events.

Such a log comes from the ``pilotkit-eventlog`` plugin (``PILOTKIT_EVENTLOG``), from
``pilotkit run --json`` or from ``pilotkit events --json`` (whose ``seq`` field is
ignored). Events play at ``speed`` times the pace they were recorded at (idle stretches
longer than ``max_gap`` seconds are cut short), or all at once (``speed=None``). The
model's clock is the events' own, so a replay looks the same every time.

With ``workdir`` (the pilot's run directory: ``tasks/<task>/attempt-<n>.out``...), the
logs screen shows the recorded task output too.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from ..errors import PilotkitError
from ..events import Event
from ..events import decode as decode_event
from ..logtimes import LineTimes, Samples, newlines
from ..vocab import PILOT_LOG, attempt_log
from .model import Connection, DashboardModel
from .source import ActionRefused, Changed, ConnectionCallback, DataSource, LogPiece

CHUNK = 5000
"""Events applied between two yields to the event loop."""


def load_events(path: Path) -> tuple[list[Event | dict[str, Any]], int]:
    """Every event of a log (unknown types as dicts), and how many lines were unreadable."""
    events: list[Event | dict[str, Any]] = []
    bad = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                events.append(decode_event(line))
            except (msgspec.ValidationError, msgspec.DecodeError):
                try:
                    value = msgspec.json.decode(line)
                except msgspec.DecodeError:
                    bad += 1
                    continue
                if isinstance(value, dict) and isinstance(value.get("pilot"), str):
                    events.append(value)
                else:
                    bad += 1
    return events, bad


def _t(event: Event | Mapping[str, Any]) -> float:
    if isinstance(event, Mapping):
        t = event.get("t")
        return float(t) if isinstance(t, (int, float)) else 0.0
    return event.t


class ReplaySource(DataSource):
    mode = "replay"
    can_control = False

    def __init__(self, path: Path, *, speed: float | None = None, workdir: Path | None = None,
                 max_gap: float = 2.0) -> None:
        self.path = path
        self.speed = speed
        """Times the recorded pace; None: everything at once."""
        self.workdir = workdir
        self.max_gap = max_gap
        self.paused = False
        self._resume = asyncio.Event()
        self._resume.set()
        self.model: DashboardModel | None = None
        self.total = 0
        self.applied = 0

    def describe(self) -> str:
        pace = "instant" if self.speed is None else f"x{self.speed:g}"
        return f"replay of {self.path.name} ({pace})"

    # -------------------------------------------------------------- pace

    def set_speed(self, speed: float | None) -> None:
        self.speed = None if speed is None else min(1000.0, max(0.1, speed))

    def faster(self) -> None:
        self.set_speed(None if self.speed is None else self.speed * 2)

    def slower(self) -> None:
        self.set_speed(64.0 if self.speed is None else self.speed / 2)

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self._resume.clear()
        else:
            self._resume.set()

    # -------------------------------------------------------------- feeding

    async def run(self, model: DashboardModel, changed: Changed, connection: ConnectionCallback) -> None:
        self.model = model
        model.frozen_clock = True
        model.where = str(self.path)
        connection(Connection("replay", f"reading {self.path.name}"))
        try:
            events, bad = await asyncio.to_thread(load_events, self.path)
        except OSError as exc:
            connection(Connection("lost", f"cannot read {self.path}: {exc.strerror or exc}"))
            return
        self.total = len(events)
        note = f" ({bad} unreadable line(s) skipped)" if bad else ""
        connection(Connection("replay", f"{self.total} events{note}"))
        i = 0
        n = len(events)
        virtual = _t(events[0]) if events else 0.0
        last = time.monotonic()
        while i < n:
            if self.paused:
                connection(Connection("paused", f"{i}/{n} events"))
                await self._resume.wait()
                connection(Connection("replay", f"{n} events{note}"))
                last = time.monotonic()
            speed = self.speed
            if speed is None:
                j = min(n, i + CHUNK)
            else:
                now = time.monotonic()
                virtual += (now - last) * speed
                last = now
                upcoming = _t(events[i])
                if upcoming - virtual > self.max_gap:
                    virtual = upcoming - self.max_gap
                j = i
                while j < n and j - i < CHUNK and _t(events[j]) <= virtual:
                    j += 1
            for event in events[i:j]:
                model.apply_event(event)
            self.applied = j
            if j > i:
                changed()
            i = j
            if i < n and speed is not None and _t(events[i]) > virtual:
                wait = (_t(events[i]) - virtual) / speed
                await asyncio.sleep(min(0.1, max(0.005, wait)))
            else:
                await asyncio.sleep(0)
        connection(Connection("replayed", f"{n} events{note}"))
        changed()

    # -------------------------------------------------------------- the rest

    async def logs(self, pilot: str, task: str | None, *, stderr: bool = False, tail: int = 500,
                   follow: bool = True) -> AsyncIterator[LogPiece]:
        if self.workdir is None:
            raise PilotkitError("a replay has no task output: give --workdir (the pilot's run directory)")
        if task is None:
            path = self.workdir / PILOT_LOG
        else:
            view = self.model.pilots.get(pilot) if self.model is not None else None
            row = view.tasks.get(task) if view is not None else None
            attempt = row.attempt if row is not None and row.attempt else 1
            path = attempt_log(self.workdir, task, attempt, "err" if stderr else "out")
        try:
            data, times = await asyncio.to_thread(_read_with_times, path, task is not None)
        except OSError as exc:
            raise PilotkitError(f"no log at {path}: {exc.strerror or exc}") from None
        text = data.decode(errors="replace")
        if tail >= 0:
            lines = text.splitlines(keepends=True)
            kept = lines[-tail:] if tail else []
            if times is not None:
                ended = sum(1 for line in kept if line.endswith("\n"))
                times = times[len(times) - ended:] if ended else []
            text = "".join(kept)
        yield text, times

    async def control(self, action: str, pilot: str) -> str:
        raise ActionRefused(f"{action}: a replay is read-only")

    async def submit(self, text: str, path: str | None) -> str:
        raise ActionRefused("submit: a replay is read-only")


def _read_with_times(path: Path, task: bool) -> tuple[bytes, LineTimes | None]:
    """A log file and, for a task's output with samples, when each line was written
    (:mod:`pilotkit.logtimes`; the file's own last-write time after the last sample)."""
    with open(path, "rb") as f:
        data = f.read()
        st = os.fstat(f.fileno())
    if not task:
        return data, None
    samples = Samples(path)
    if not samples.refresh():
        return data, None  # no samples: when it was written, unknown
    return data, samples.stamp(newlines(data, 0), (st.st_mtime_ns / 1e9, st.st_size))
