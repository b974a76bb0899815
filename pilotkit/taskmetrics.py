"""What a task reports it scored: the metrics file (``PILOTKIT_METRICS``).

A task appends JSON objects to the file, one a line: ``{"loss": 0.31}``, or with
``"step": 3`` for an intermediate report. The trial's final metrics are the last line
without ``step`` (the last line of all when every line has one). A line that is not a
JSON object is skipped; the first one is named, once, in the attempt's stderr log.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

MAX_READ = 1 << 20
"""At most this many bytes are read from the end of a metrics file for its final
metrics (a task that reports every step of a long run keeps its file small to read)."""

STEP = "step"


class Reports:
    """The reports parsed from (part of) a metrics file."""

    __slots__ = ("bad", "first_bad", "lines")

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.bad = 0
        self.first_bad: str | None = None

    def add(self, raw: bytes) -> None:
        text = raw.strip()
        if not text:
            return
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self.bad += 1
            if self.first_bad is None:
                self.first_bad = text[:80].decode("utf-8", "replace")
            return
        self.lines.append(value)

    def final(self) -> dict[str, Any] | None:
        """The last report without ``step``, else the last report; None when none."""
        for line in reversed(self.lines):
            if STEP not in line:
                return line  # type: ignore[no-any-return]
        return self.lines[-1] if self.lines else None

    def intermediate(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if STEP in line]


def parse(data: bytes) -> Reports:
    reports = Reports()
    for raw in data.split(b"\n"):
        reports.add(raw)
    return reports


def read_final(path: Path, log: Path | None = None) -> dict[str, Any] | None:
    """The final metrics of the file at ``path`` (None when it is missing or holds no
    report); bad lines are counted in one warning line appended to ``log``."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_READ:
                f.seek(size - MAX_READ)
                f.readline()  # a partial first line
            data = f.read(MAX_READ)
    except OSError:
        return None
    reports = parse(data)
    if reports.bad and log is not None:
        warn(log, path, reports)
    return reports.final()


def warn(log: Path, path: Path, reports: Reports) -> None:
    """Append one line about the skipped lines of ``path`` to ``log``."""
    line = (
        f"pilotkit: {path.name}: skipped {reports.bad} line(s) that are not JSON objects, "
        f"the first: {reports.first_bad!r}\n"
    )
    with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as f:
        f.write(line)


class Tail:
    """Reads the lines appended to a metrics file since the last call (a running
    task's intermediate reports)."""

    __slots__ = ("_partial", "offset", "path", "skipped")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""
        self.skipped = 0

    def read(self) -> Reports:
        """The complete lines appended since the last call (blocking: call it in a
        worker thread)."""
        reports = Reports()
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(MAX_READ)
        except OSError:
            return reports
        self.offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        if complete:
            for raw in complete.split(b"\n"):
                reports.add(raw)
        self.skipped += reports.bad
        return reports
