"""Live runs: the pilots the daemon is running now, from start to their end or a stop.

A running pilot has a :class:`LivePilot` (the :class:`~pilotkit.pilot.Pilot` and its
asyncio task). Its events go to the recorder while the daemon is attached to it. When
the daemon stops (:meth:`Runs.shutdown`), local pilots drain and are *suspended* (they
resume at the next start); batch pilots are detached and keep their allocations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import PilotkitError
from ..events import Event, PilotStateChanged
from ..pilot import Pilot
from ..plugins import Plugins
from ..protocol import Counts
from ..scheduler import Resume
from ..spec import ResolvedSpec, parse_spec
from .events import EventRecorder
from .metrics import MetricsBuffer
from .reattach import DetachFlag, detachable, linger
from .records import TERMINAL, PilotRecord, Records

log = logging.getLogger("pilotkit.daemon.runs")


class LivePilot:
    """A pilot the daemon is running now."""

    def __init__(self, record: PilotRecord, pilot: Pilot, detach: DetachFlag | None) -> None:
        self.record = record
        self.pilot = pilot
        self.detach = detach
        self.task: asyncio.Task[None] | None = None
        self.suspended = False
        """The daemon is stopping: the pilot winds down but has not *finished*."""
        self.done = asyncio.Event()

    @property
    def local(self) -> bool:
        return self.detach is None


def progress(record: PilotRecord, live: LivePilot | None) -> dict[str, Counts]:
    """Task counts by group: the live pool's, else the last ones recorded."""
    pool = live.pilot.pool if live is not None else None
    if pool is None:
        return record.progress
    return {
        name: Counts(total=c.total, queued=c.queued, running=c.running, done=c.done, failed=c.failed,
                     cancelled=c.cancelled)
        for name, c in pool.groups.items()
    }


class Runs:
    """Starts pilots, follows them to their end, stops them with the daemon."""

    def __init__(
        self, records: Records, recorder: EventRecorder, plugins: Plugins, metrics: MetricsBuffer,
        *, on_end: Callable[[str], None] | None = None,
    ) -> None:
        self.records = records
        self.recorder = recorder
        self.plugins = plugins
        self.metrics = metrics
        self.on_end = on_end
        """Called with a pilot's id once its run is over."""
        self.live: dict[str, LivePilot] = {}
        self.stopping = False

    def get(self, pilot_id: str) -> LivePilot | None:
        return self.live.get(pilot_id)

    def live_local(self) -> list[str]:
        return [pid for pid, live in self.live.items() if live.local]

    # ------------------------------------------------------------------ starting

    async def start(
        self,
        record: PilotRecord,
        resume: Resume | None,
        *,
        new_run: bool,
        resolved: ResolvedSpec | None = None,
    ) -> None:
        """Run ``record``'s pilot (``new_run``: again, as its next run)."""
        if resolved is None:
            try:
                resolved = await asyncio.to_thread(
                    parse_spec, record.spec, record.spec_path, self.plugins, profile=record.profile
                )
            except PilotkitError as exc:
                await self.finish(record, "failed", f"the spec is no longer valid: {exc}")
                return
        detach: DetachFlag | None = None
        if record.provider != "local":
            resolved, detach = detachable(resolved)
        if new_run:
            record.run += 1
            record.state, record.reason, record.ended, record.desired = "new", None, None, None
            record.nodes, record.cores, record.gpus = [], 0, 0
            record.attached = True
            record.updated = time.time()
            await self.records.save(record)
        pilot = Pilot(resolved, self.plugins, pilot_id=record.id, workdir=Path(record.workdir), resume=resume)
        if detach is not None:
            pilot.ctx.linger = linger(resolved)  # its agents wait for a restarted daemon
        self.launch(LivePilot(record, pilot, detach))

    def launch(self, live: LivePilot) -> None:
        """Follow a pilot made elsewhere (a re-attached one) or by :meth:`start`."""
        self.live[live.record.id] = live
        live.pilot.bus.subscribe(lambda event: self._on_event(live, event))
        live.task = asyncio.ensure_future(self._run(live))

    def _on_event(self, live: LivePilot, event: Event) -> None:
        if live.detach is not None and live.detach.detached:
            return  # only the daemon's side winds down; the allocation carries on
        if live.suspended and isinstance(event, PilotStateChanged) and event.state in TERMINAL:
            return  # winding down for a daemon stop: suspended, not finished
        self.recorder.record(live.record, event)

    async def _run(self, live: LivePilot) -> None:
        record = live.record
        try:
            await live.pilot.run()
        except asyncio.CancelledError:
            if not live.suspended:
                raise
        except Exception as exc:
            log.exception("pilot %s crashed", record.id)
            record.state, record.reason = "failed", f"internal error: {exc}"
        finally:
            self.live.pop(record.id, None)
            if live.detach is None or not live.detach.detached:
                record.progress = progress(record, live)
            record.updated = time.time()
            if live.suspended:
                if live.local:
                    record.reason = "suspended: the daemon stopped; the pilot resumes when it starts again"
                self.recorder.pilot_log(record, "info", record.reason or "suspended")
            elif not record.terminal:
                record.state = "failed"
                record.reason = record.reason or "the pilot stopped without a final state"
                record.ended = record.updated
            with contextlib.suppress(Exception):
                await self.records.save(record)
            self.metrics.forget(record.id)
            if self.on_end is not None:
                self.on_end(record.id)
            live.done.set()

    async def finish(self, record: PilotRecord, state: str, reason: str) -> None:
        """End a pilot that is not running, with a state change event."""
        previous = record.state
        self.recorder.record(record, PilotStateChanged(pilot=record.id, state=state, previous=previous, reason=reason))
        await self.records.save(record)

    async def snapshot_progress(self) -> None:
        """Write the progress of running pilots to the database (a crash loses little)."""
        for live in list(self.live.values()):
            record = live.record
            groups = progress(record, live)
            if groups != record.progress:
                record.progress = groups
                self.records.write_progress(record)

    # ------------------------------------------------------------------ stopping

    async def shutdown(self, timeout: float, force: asyncio.Event) -> None:
        """Local pilots drain (for ``timeout`` seconds, then their tasks are stopped);
        batch pilots are detached and keep their allocations. ``force`` set: kill."""
        self.stopping = True
        lives = list(self.live.values())
        if not lives:
            return
        for live in lives:
            record = live.record
            live.suspended = True
            if live.detach is not None:
                record.progress = progress(record, live)
                live.detach.detached = True
                live.pilot.detach()
                await live.pilot.flush()  # the tasks handed to its agents reach them first
                record.attached = False
                job = f"job {record.job_id}" if record.job_id else "its allocation"
                record.reason = f"detached: the daemon stopped; {job} keeps running"
                await self.records.save(record)
                if live.task is not None:
                    live.task.cancel()
            else:
                log.info("draining pilot %s (up to %gs)", record.id, timeout)
                live.pilot.drain("the daemon is stopping")
        waits = [live.done.wait() for live in lives]
        if await _wait_or(waits, timeout, force):
            return
        if not force.is_set():
            log.warning("shutdown timeout: stopping the tasks still running")
            grace = 0.0
            for live in lives:
                if not live.done.is_set():
                    live.pilot.cancel("the daemon is stopping (shutdown timeout)")
                    grace = max(grace, live.pilot.grace)
            if await _wait_or([live.done.wait() for live in lives], grace + 5.0, force):
                return
        log.warning("forced shutdown: killing running tasks")
        for live in lives:
            if not live.done.is_set():
                live.pilot.kill()
        if await _wait_or([live.done.wait() for live in lives], 5.0, None):
            return
        for live in lives:
            if live.task is not None and not live.task.done():
                live.task.cancel()
        await _wait_or([live.done.wait() for live in lives], 5.0, None)


async def _wait_or(waits: list[Any], timeout: float, force: asyncio.Event | None) -> bool:
    """Wait for every awaitable; False on timeout or when ``force`` gets set first."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    everything = asyncio.ensure_future(asyncio.gather(*tasks))
    racers: set[asyncio.Future[Any]] = {everything}
    forced: asyncio.Future[Any] | None = None
    if force is not None:
        forced = asyncio.ensure_future(force.wait())
        racers.add(forced)
    try:
        done, _ = await asyncio.wait(racers, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return everything in done
    finally:
        for fut in (everything, forced, *tasks):
            if fut is not None and not fut.done():
                fut.cancel()
        with contextlib.suppress(BaseException):
            await everything
