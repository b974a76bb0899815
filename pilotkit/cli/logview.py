"""``pilotkit run`` outside a terminal (``nohup``, a batch log, CI): plain lines, one per
event worth a line, never a bar or a table that a log would cut or wrap.

- one line per pilot state change and per message of a plugin;
- one line per failed task: its id, exit code, the last line of its stderr, its log;
  one per failed attempt that is tried again;
- a progress line every ``interval`` seconds.

Lines go through one queue so they keep their order; the stderr tail is read off the
event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from ..events import Event, Log, PilotStateChanged, TaskFinished
from ..progress import Failure, Progress
from ..units import format_duration
from ..vocab import attempt_log

LAST_LINE_MAX = 300
"""Characters of a task's last stderr line that are shown."""
_TAIL_BYTES = 8192


def last_line(path: Path) -> str | None:
    """The last non-blank line of a file (at most :data:`LAST_LINE_MAX` characters);
    None when the file is missing or blank."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            data = f.read()
    except OSError:
        return None
    for line in reversed(data.decode(errors="replace").splitlines()):
        text = line.strip()
        if text:
            return text if len(text) <= LAST_LINE_MAX else text[: LAST_LINE_MAX - 3] + "..."
    return None


def describe_failure(failure: Failure, workdir: Path) -> str:
    """``task g-3 failed (exit 1): <last stderr line>  log: <path>``, or for an attempt
    that will be tried again ``task g-3 attempt 1 failed (exit 1), tried again: ...``.
    Reads the file."""
    log = attempt_log(workdir, failure.task, failure.attempt, "err")
    code = f"exit {failure.exit_code}" if failure.exit_code is not None else "no exit code"
    last = last_line(log)
    said = last if last is not None else "(nothing on stderr)"
    if not failure.final:
        return f"task {failure.task} attempt {failure.attempt} {failure.status} ({code}), tried again: {said}  log: {log}"
    return f"task {failure.task} {failure.status} ({code}): {said}  log: {log}"


def progress_line(progress: Progress, elapsed: float) -> str:
    t = progress.totals()
    if not t.total:  # nothing planned yet: the allocation is still being claimed
        return f"progress: no task yet; state {progress.state}, elapsed {format_duration(elapsed)}"
    return (
        f"progress: {t.done}/{t.total} done, {t.failed} failed, {t.cancelled} cancelled, "
        f"{t.running} running, {t.queued} queued; state {progress.state}, "
        f"elapsed {format_duration(elapsed)}"
    )


class PlainLog:
    """Subscribe :meth:`event` to the pilot's bus, run :meth:`run` beside the pilot,
    and :meth:`close` it once the pilot has ended."""

    def __init__(
        self, pilot_id: str, workdir: Path, progress: Progress, interval: float, write: Callable[[str], None]
    ) -> None:
        self.pilot_id = pilot_id
        self.workdir = workdir
        self.progress = progress
        self.interval = interval
        self.write = write
        self.started = time.monotonic()
        self.queue: asyncio.Queue[str | Failure | None] = asyncio.Queue()
        progress.listeners.append(self.queue.put_nowait)

    def event(self, event: Event) -> None:
        if isinstance(event, PilotStateChanged):
            reason = f" ({event.reason})" if event.reason else ""
            self.queue.put_nowait(f"state {event.state}{reason}")
        elif isinstance(event, TaskFinished) and not event.final and event.status != "ok":
            self.queue.put_nowait(
                Failure(event.task, event.group, event.attempt, event.status, event.exit_code, final=False)
            )
        elif isinstance(event, Log) and event.level != "debug":
            message = " / ".join(line.strip() for line in event.message.splitlines() if line.strip())
            self.queue.put_nowait(f"{event.source or 'pilot'}: {message}")

    async def run(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            while (item := await self.queue.get()) is not None:
                if isinstance(item, Failure):
                    item = await asyncio.to_thread(describe_failure, item, self.workdir)
                self.write(f"pilotkit: {self.pilot_id}: {item}")
        finally:
            ticker.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.queue.put_nowait(progress_line(self.progress, time.monotonic() - self.started))

    def close(self) -> None:
        """Let :meth:`run` write what is queued, then end."""
        self.queue.put_nowait(None)
