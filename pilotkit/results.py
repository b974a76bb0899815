"""The results file (``results.jsonl``): one JSON line per finished task, flushed as
each one ends.

A line's ``outcome`` is how the task ended, in the words of :class:`pilotkit.vocab.Outcome`
(the same as ``outcome`` in ``pilotkit tasks --json``). ``status`` holds the same word:
it is the field's name in pilotkit 0.1, kept for the readers written for it. Lines
written by 0.1 (no ``outcome``) read back with ``outcome`` taken from ``status``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from pathlib import Path
from typing import Any

import msgspec


class TaskResult(msgspec.Struct, omit_defaults=False):
    task: str
    group: str
    params: dict[str, Any]
    status: str
    """The 0.1 name of ``outcome``, with the same word."""
    exit_code: int | None
    attempts: int
    node: str | None
    start: float | None
    end: float | None
    duration: float | None
    stdout: str | None
    stderr: str | None
    outcome: str | None = None
    """``ok`` | ``failed`` | ``timeout`` | ``killed`` | ``lost`` | ``spawn-error`` |
    ``stopped`` | ``cancelled`` | ``pruned`` (:class:`pilotkit.vocab.Outcome`)."""
    metrics: dict[str, Any] | None = None
    """The final metrics the task reported (``PILOTKIT_METRICS``); None when none."""

    allocation: str | None = None
    """The campaign allocation that ran the task's last attempt (None outside campaigns)."""

    def __post_init__(self) -> None:
        if self.outcome is None:  # written by pilotkit 0.1, or built with status only
            self.outcome = self.status


_STORAGE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})
"""Errors of the storage rather than of the path: the writer keeps results and retries."""


class ResultsWriter:
    """Appends results, each written (so a killed pilot loses none) before :meth:`write`
    returns True, and fsynced in a worker thread (one fsync for every line written while
    the last one ran; all of them before :meth:`close` returns).

    When the file cannot be written (a full disk, a quota, an I/O error) the lines are
    kept in memory, in order, :attr:`error` says why, and every later :meth:`write` or
    :meth:`flush` tries again first: nothing is lost while the process lives, and a line
    cut short by a full disk is completed, never duplicated, once space returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._encoder = msgspec.json.Encoder()
        self._pending: list[bytes] = []
        """Lines not yet (wholly) on disk, in order."""
        self._offset = 0
        """How much of the first pending line is on disk already."""
        self.count = 0
        self.error: OSError | None = None
        """Why the last write failed; None once everything is on disk."""
        try:
            self._open()
        except OSError as exc:
            if exc.errno not in _STORAGE_ERRORS:
                raise
            self.error = exc  # a full disk: the first write tries again
        self._syncing: asyncio.Future[None] | None = None
        self._dirty = False
        self._sync_error: OSError | None = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    @property
    def pending(self) -> int:
        """How many results are only in memory."""
        return len(self._pending)

    def write(self, result: TaskResult) -> bool:
        """Append one result; True once it (and every earlier one) is on disk."""
        self._pending.append(self._encoder.encode(result) + b"\n")
        self.count += 1
        return self.flush()

    def write_many(self, results: list[TaskResult]) -> bool:
        """Append several results in one write; True once they are on disk."""
        encode = self._encoder.encode
        self._pending.append(b"".join(encode(result) + b"\n" for result in results))
        self.count += len(results)
        return self.flush()

    def flush(self) -> bool:
        """Write what is only in memory; False (see :attr:`error`) when the file cannot
        take it now."""
        if not self._pending and self._sync_error is None:
            return True
        try:
            if self._sync_error is not None and self._fd >= 0:
                os.fdatasync(self._fd)  # an earlier fsync failed: the data may not be on disk
                self._sync_error = None
            if self._fd < 0:
                self._open()
            while self._pending:
                data = b"".join(self._pending)[self._offset :] if len(self._pending) > 1 else (
                    self._pending[0][self._offset :]
                )
                done = os.write(self._fd, data) + self._offset
                while self._pending and done >= len(self._pending[0]):
                    done -= len(self._pending.pop(0))
                self._offset = done
        except OSError as exc:
            self.error = exc
            return False
        self.error = None
        self._sync()
        return True

    def _sync(self) -> None:
        """fsync what was written: at once outside an event loop; in a worker thread
        inside one, one fsync covering every line written while the last one ran."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            os.fdatasync(self._fd)
            return
        self._dirty = True
        if self._syncing is None:
            self._start_sync(loop)

    def _start_sync(self, loop: asyncio.AbstractEventLoop) -> None:
        self._dirty = False
        fd = os.dup(self._fd)  # the thread's own: close() may close ours meanwhile

        def sync() -> None:
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)

        self._syncing = loop.run_in_executor(None, sync)
        self._syncing.add_done_callback(lambda future: self._synced(future, loop))

    def _synced(self, future: asyncio.Future[None], loop: asyncio.AbstractEventLoop) -> None:
        self._syncing = None
        error = future.exception()
        if isinstance(error, OSError):
            self._sync_error = self.error = error
        if self._dirty and self._fd >= 0:
            self._start_sync(loop)

    def problem(self) -> str | None:
        """One line on why results are only in memory, naming the path."""
        if self.error is None:
            return None
        why = self.error.strerror or str(self.error)
        return f"cannot write {self.path}: {why} ({self.pending} result(s) kept in memory)"

    def close(self, fallback: Path | None = None) -> Path | None:
        """Flush and close. Results that still cannot be written go, whole lines, to
        ``fallback``; returns where they went (None when all are in place)."""
        flushed = self.flush()
        if flushed and self._fd >= 0:
            try:
                os.fdatasync(self._fd)  # the last lines, whatever a worker thread still syncs
            except OSError as exc:
                self.error, flushed = exc, False
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if flushed or fallback is None:
            return None
        try:
            fallback.parent.mkdir(parents=True, exist_ok=True)
            with open(fallback, "ab") as f:
                f.write(b"".join(self._pending))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            return None
        return fallback


def read_results(path: Path) -> list[TaskResult]:
    """Every complete line of a results file (a torn last line is skipped)."""
    decoder = msgspec.json.Decoder(TaskResult)
    out: list[TaskResult] = []
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            out.append(decoder.decode(line))
    return out
