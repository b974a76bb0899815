"""Finding a program on PATH and asking it its version (a container runtime's detect)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import MissingBinaryError
from .proc import run_command


@dataclass(frozen=True)
class FoundProgram:
    name: str
    """Which of the candidate names was found."""
    path: str
    output: str
    """What its version command printed (stdout, then stderr)."""


async def find_program(
    names: Sequence[str], version_args: Sequence[str], *, purpose: str, check: bool = True, what: str = ""
) -> FoundProgram:
    """The first of ``names`` on PATH, run with ``version_args``; MissingBinaryError
    naming the first candidate (or ``what`` when there is none) and ``purpose`` when
    none is there."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            break
    else:
        raise MissingBinaryError(names[0] if names else what, purpose)
    done = await run_command([path, *version_args], timeout=60, check=check, purpose=purpose)
    return FoundProgram(name=name, path=path, output=done.stdout + done.stderr)
