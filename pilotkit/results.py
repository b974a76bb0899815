"""The results file (``results.jsonl``): one JSON line per finished task, flushed as
each one ends.

A line's ``outcome`` is how the task ended, in the words of :class:`pilotkit.vocab.Outcome`
(the same as ``outcome`` in ``pilotkit tasks --json``). ``status`` holds the same word:
it is the field's name in pilotkit 0.1, kept for the readers written for it. Lines
written by 0.1 (no ``outcome``) read back with ``outcome`` taken from ``status``."""

from __future__ import annotations

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
    ``stopped`` | ``cancelled`` (:class:`pilotkit.vocab.Outcome`)."""

    def __post_init__(self) -> None:
        if self.outcome is None:  # written by pilotkit 0.1, or built with status only
            self.outcome = self.status


class ResultsWriter:
    """Appends results; every line is written out before the next task is recorded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._encoder = msgspec.json.Encoder()
        self.count = 0

    def write(self, result: TaskResult) -> None:
        os.write(self._fd, self._encoder.encode(result) + b"\n")
        self.count += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


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
