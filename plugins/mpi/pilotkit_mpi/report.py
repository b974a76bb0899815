"""What a finished trial left behind: its metric, and which ranks failed and how.

Pure parsers over text, plus small readers for a trial's files.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TAIL_BYTES = 64 * 1024
_SIGNAL_WORDS = {"Killed": 9, "Terminated": 15, "Segmentation fault": 11, "Aborted": 6}
"""How srun names the signal that ended a task."""
"""How much of a failed trial's stderr is read for the launcher's report."""

_SRUN = re.compile(r"^srun: error: (?P<node>\S+): tasks? (?P<ranks>[\d,\-]+): (?P<what>.+?)\s*$", re.M)
_SRUN_CODE = re.compile(r"exit code (\d+)|signal (\d+)|(Killed|Terminated|Segmentation fault|Aborted)")
_OMPI = re.compile(r"Process name:\s*\[\[\d+,\d+\],(?P<rank>\d+)\]\s*\n\s*Exit code:\s*(?P<code>\d+)", re.M)
_OMPI_SIGNAL = re.compile(
    r"process rank (?P<rank>\d+) with PID \d+ on node (?P<node>\S+) exited on signal (?P<sig>\d+)"
)


@dataclass(frozen=True)
class RankFailure:
    """One rank (or a range of ranks) that ended badly, as the launcher reported it."""

    ranks: str
    """``"1"``, ``"0-2"`` or ``"1,3"``, as printed."""
    node: str | None
    exit_code: int | None
    signal: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "ranks": self.ranks,
            "node": self.node,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "detail": self.detail,
        }


def rank_failures(stderr: str) -> list[RankFailure]:
    """Failed ranks reported by srun (``srun: error: node2: task 1: Exited with exit code
    3``) or OpenMPI's mpirun (``Process name: [[j,1],1]`` / ``Exit code: 3``, or ``process
    rank 1 with PID 0 on node n1 exited on signal 11``)."""
    out: list[RankFailure] = []
    for m in _SRUN.finditer(stderr):
        what = m.group("what")
        code = _SRUN_CODE.search(what)
        if code is None:
            continue
        exit_code = int(code.group(1)) if code.group(1) else None
        sig = int(code.group(2)) if code.group(2) else _SIGNAL_WORDS.get(code.group(3) or "")
        out.append(RankFailure(m.group("ranks"), m.group("node"), exit_code, sig, what))
    for m in _OMPI.finditer(stderr):
        detail = f"exit code {m.group('code')}"
        out.append(RankFailure(m.group("rank"), None, int(m.group("code")), None, detail))
    for m in _OMPI_SIGNAL.finditer(stderr):
        detail = f"signal {m.group('sig')}"
        out.append(RankFailure(m.group("rank"), m.group("node"), None, int(m.group("sig")), detail))
    return out


def rank_exit_code(failures: list[RankFailure], launcher_code: int | None) -> int | None:
    """The exit code of the first rank that exited by itself (the cause), not the
    launcher's own status (srun's 143 after it stopped the other ranks); the launcher's
    when no rank exit code was reported."""
    for failure in failures:
        if failure.exit_code:
            return failure.exit_code
    return launcher_code


def read_tail(path: str | Path | None, size: int = TAIL_BYTES) -> str:
    """The last ``size`` bytes of a file as text ("" when it cannot be read)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            end = f.tell()
            f.seek(max(0, end - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def summarise(failures: list[RankFailure], exit_code: int | None) -> str:
    """One line: ``exit 3; rank 1 on node2: Exited with exit code 3``."""
    head = f"exit {exit_code}" if exit_code is not None else "no exit code"
    if not failures:
        return head
    parts = []
    for f in failures[:4]:
        where = f" on {f.node}" if f.node else ""
        parts.append(f"rank {f.ranks}{where}: {f.detail}")
    more = f" (+{len(failures) - 4} more)" if len(failures) > 4 else ""
    return f"{head}; " + "; ".join(parts) + more


def parse_metric(text: str, key: str = "metric") -> float | None:
    """A metric from a file's text: a bare number, or ``key`` of a JSON object."""
    text = text.strip()
    if not text:
        return None
    try:
        value: Any = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict):
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def read_metric(path: Path, key: str = "metric") -> float | None:
    """The metric a trial wrote to ``path``; None when missing or unreadable."""
    try:
        return parse_metric(path.read_text(), key)
    except OSError:
        return None
