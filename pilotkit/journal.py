"""A node agent's journal: the attempts that ended on its node, one JSON line each.

The agent appends a line and fsyncs it before it sends the result to the pilot, so a
result outlives the connection, the pilot's process and the agent's own: a pilot that
comes back (a restarted daemon, ``pilotkit attach``) reads what it did not receive from
the agents that rejoin it and from these files. The file is only appended to; a torn
last line (the agent died while writing it) is skipped when it is read.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec

from .types import TaskExit


class Entry(msgspec.Struct):
    seq: int
    result: TaskExit


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Entry)


class Journal:
    """Appends a node agent's finished attempts to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self.error: str | None = None
        """Why the journal cannot be written (the results still go to the pilot)."""

    def _append(self, line: bytes) -> None:
        if self._fd < 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.write(self._fd, line)
        os.fsync(self._fd)

    async def append(self, results: list[tuple[int, TaskExit]]) -> None:
        """Write numbered results and fsync them, once (in a worker thread)."""
        if self.error is not None:
            return
        data = b"".join(_encoder.encode(Entry(seq, result)) + b"\n" for seq, result in results)
        try:
            await asyncio.to_thread(self._append, data)
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror or exc}"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_journal(path: Path) -> list[Entry]:
    """The entries of one journal; lines that do not decode (a torn last line) are skipped."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    entries = []
    for line in data.splitlines():
        try:
            entries.append(_decoder.decode(line))
        except msgspec.DecodeError:
            continue
    return entries


def read_journals(directory: Path) -> list[TaskExit]:
    """Every result in the journals under ``directory`` (``.journal`` of a run directory)."""
    try:
        paths = sorted(directory.glob("*.jsonl"))
    except OSError:
        return []
    return [entry.result for path in paths for entry in read_journal(path)]
