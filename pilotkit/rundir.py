"""An earlier run in a run directory: found, resumed or moved aside.

``pilotkit run`` into a workdir that already holds a run refuses unless told what to do:
``--resume`` keeps every task with an ``ok`` result and runs the others (refused when the
spec changed since), ``--fresh`` moves the old run aside to ``<workdir>.<time>``."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from .errors import PilotkitError
from .results import TaskResult, read_results
from .vocab import ATTEMPT_FILE, PILOT_LOG, RESULTS_FILE, SPEC_RECORD, TASKS_DIR, Outcome


class RerunRefused(PilotkitError):
    """The workdir holds an earlier run and the user did not say what to do with it."""


class WorkdirUnwritable(PilotkitError):
    """The workdir cannot be written (a full disk, no permission)."""

    exit_code = 1


def earlier_run(workdir: Path) -> bool:
    """Whether ``workdir`` holds (part of) an earlier run."""
    return (workdir / TASKS_DIR).is_dir() or any(
        (workdir / name).is_file() for name in (RESULTS_FILE, SPEC_RECORD, PILOT_LOG)
    )


def record_spec(workdir: Path, spec: msgspec.Struct) -> None:
    """Keep the spec a run was started with, to compare a ``--resume`` against."""
    path = workdir / SPEC_RECORD
    tmp = path.with_name(path.name + ".tmp")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(spec)) + b"\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WorkdirUnwritable(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None


def spec_changes(workdir: Path, spec: msgspec.Struct) -> list[str]:
    """The dotted keys whose values differ from the spec the earlier run recorded
    (``["(no spec recorded)"]`` when it recorded none)."""
    path = workdir / SPEC_RECORD
    try:
        before = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return ["(the earlier run recorded no spec)"]
    now = msgspec.to_builtins(spec)
    return sorted(_diff(before, now, ""))


def _diff(a: Any, b: Any, prefix: str) -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(x, y, f"{prefix}[{i}]")
    elif a != b:
        yield prefix or "(the whole spec)"


def resume_results(workdir: Path) -> tuple[dict[str, TaskResult], dict[str, int]]:
    """The ``ok`` (and ``pruned``) results of the earlier run, one per task, and the attempts each task
    made (from its log files, so a new attempt never overwrites an old one's logs).
    ``results.jsonl`` is rewritten (atomically) to hold only the ``ok`` lines, so each
    task run again adds its one line."""
    attempts = _attempts(workdir / TASKS_DIR)
    path = workdir / RESULTS_FILE
    try:
        results = read_results(path)
    except FileNotFoundError:
        return {}, attempts
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RerunRefused(f"{path}: cannot read the earlier results: {exc}") from None
    kept: dict[str, TaskResult] = {}
    for result in results:
        attempts[result.task] = max(attempts.get(result.task, 0), result.attempts)
        if result.outcome in (Outcome.OK, Outcome.PRUNED):  # a pruned trial is final too
            kept.setdefault(result.task, result)
    tmp = path.with_name(path.name + ".tmp")
    encoder = msgspec.json.Encoder()
    with open(tmp, "wb") as f:
        for result in kept.values():
            f.write(encoder.encode(result) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return kept, attempts


def _attempts(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        tasks = list(os.scandir(root))
    except FileNotFoundError:
        return out
    for entry in tasks:
        if entry.is_dir():
            numbers = [int(m.group(1)) for name in os.listdir(entry.path) if (m := ATTEMPT_FILE.fullmatch(name))]
            if numbers:
                out[entry.name] = max(numbers)
    return out


def move_aside(workdir: Path) -> Path:
    """Rename the earlier run to ``<workdir>.<time>``; returns where it went."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = workdir.with_name(f"{workdir.name}.{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = workdir.with_name(f"{workdir.name}.{stamp}-{n}")
    os.rename(workdir, target)
    return target
