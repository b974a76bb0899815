"""When each line of a task's output was written.

A task writes its stdout and stderr straight into files (no pipe through the pilot, so
nothing slows the task). The node agent looks at the output files of its attempts once
every :data:`SAMPLE_EVERY` seconds, in a worker thread (one ``stat`` a file), and once
more at the first look after an attempt ended; when a file has grown, it appends
``<mtime> <size>`` to ``<file>.times`` (:func:`times_path`). Every byte before ``size``
was then written at or before ``mtime``, the time of the file's last write before the
look. A line ending at byte ``p`` gets the ``mtime`` of the first sample past ``p``: its
time is never early and at most one sample interval late, and the last line written
before a look carries its exact time (the file system's, nanoseconds). Times are the
node's clock. A file that grows all the time costs about 25 bytes of samples a second.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

SAMPLE_EVERY = 1.0
"""Seconds between two looks of a node agent at its attempts' output files."""
SUFFIX = ".times"
_START = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC

LineTimes = list[float | None]
"""The write time of each line ending in a piece of output (one for each newline, in
order); None where unknown."""


def times_path(output: str | os.PathLike[str]) -> Path:
    """The samples of an output file: ``attempt-<n>.out.times``."""
    return Path(f"{os.fspath(output)}{SUFFIX}")


def sample(files: Sequence[str], known: dict[str, int]) -> dict[str, int]:
    """Look at ``files`` (blocking: run it in a worker thread); ``known`` holds each one's
    size at the last look (absent: never looked at, the times file is started anew).
    Appends a sample for each file that grew; returns the new sizes."""
    grown: dict[str, int] = {}
    for name in files:
        try:
            st = os.stat(name)
        except OSError:
            continue
        before = known.get(name)
        if before is not None and st.st_size <= before:
            continue
        if st.st_size == 0:
            grown[name] = 0
            continue
        flags = _APPEND if before else _START  # started anew: stale samples go
        try:
            fd = os.open(name + SUFFIX, flags, 0o644)
            try:
                os.write(fd, b"%.6f %d\n" % (st.st_mtime_ns / 1e9, st.st_size))
            finally:
                os.close(fd)
        except OSError:
            continue
        grown[name] = st.st_size
    return grown


class Samples:
    """The samples of one output file, read as they are appended (blocking reads)."""

    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.path = times_path(output)
        self.mtimes: list[float] = []
        self.sizes: list[int] = []
        self._offset = 0
        self._partial = b""

    def refresh(self) -> bool:
        """Read what was appended since the last call; whether the times file exists."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return False
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            parts = line.split()
            try:
                t, size = float(parts[0]), int(parts[1])
            except (IndexError, ValueError):
                continue
            if self.sizes and size <= self.sizes[-1]:
                continue
            self.mtimes.append(t)
            self.sizes.append(size)
        return True

    def stamp(self, newlines: Iterable[int], last: tuple[float, int] | None = None) -> LineTimes:
        """The write time of the lines ending at each of ``newlines`` (byte offsets);
        ``last``: the file's (mtime, size) now, a sample after the ones on file."""
        out: LineTimes = []
        for pos in newlines:
            i = bisect.bisect_right(self.sizes, pos)
            t = self.mtimes[i] if i < len(self.sizes) else None
            if last is not None and last[1] > pos and (t is None or last[0] < t):
                t = last[0]
            out.append(t)
        return out


def newlines(chunk: bytes, offset: int) -> list[int]:
    """The byte offsets of the newlines of ``chunk``, read from ``offset`` of its file."""
    out: list[int] = []
    i = chunk.find(b"\n")
    while i >= 0:
        out.append(offset + i)
        i = chunk.find(b"\n", i + 1)
    return out
