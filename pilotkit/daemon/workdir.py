"""Files a pilot leaves in its workdir, read after a restart: the results file (a torn
last record is cut off), the task dirs (which attempts ran) and the task processes a
dead daemon left running (killed)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterable
from pathlib import Path

import msgspec
import psutil

from ..results import TaskResult, read_results
from ..vocab import ATTEMPT_FILE, TASKS_DIR

log = logging.getLogger("pilotkit.daemon.workdir")


def latest_results(results: Iterable[TaskResult]) -> dict[str, TaskResult]:
    """The last result of each task (a retried task has several lines)."""
    return {r.task: r for r in results}


def read_results_quietly(path: Path) -> list[TaskResult]:
    try:
        return read_results(path)
    except FileNotFoundError:
        return []
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _read_tolerant(path)


def _read_tolerant(path: Path) -> list[TaskResult]:
    decoder = msgspec.json.Decoder(TaskResult)
    out: list[TaskResult] = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                break
            try:
                out.append(decoder.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError):
                log.warning("%s:%d: unreadable result skipped", path, number)
    return out


def repair_results(path: Path, log_path: Path | None = None) -> list[TaskResult]:
    """Cut a torn last line off a results file (a crash mid-write) so appending resumes
    on a clean line, and end the pilot log with a newline; returns the results."""
    if log_path is not None:
        _end_with_newline(log_path)
    try:
        dropped = _truncate_torn(path)
    except FileNotFoundError:
        return []
    if dropped:
        log.warning("%s: dropped a torn last record (%d bytes)", path, dropped)
    return read_results_quietly(path)


def _truncate_torn(path: Path) -> int:
    """Cut everything after the last newline; returns how many bytes went."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        pos, keep = size, 0
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            cut = f.read(step).rfind(b"\n")
            if cut >= 0:
                keep = pos - step + cut + 1
                break
            pos -= step
        if keep < size:
            f.truncate(keep)
        return size - keep


def _end_with_newline(path: Path) -> None:
    try:
        with open(path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
    except FileNotFoundError:
        return


_ATTEMPT_FILE = ATTEMPT_FILE


def launched_attempts(workdir: Path, skip: set[str]) -> dict[str, int]:
    """The highest attempt number that ran, by the output files in each task dir
    (except ``skip``). The pool makes the first attempt's empty files ahead of time, so
    attempt 1 counts only once it has written something; reusing the number of an
    attempt that wrote nothing loses nothing."""
    out: dict[str, int] = {}
    try:
        entries = os.scandir(workdir / TASKS_DIR)
    except FileNotFoundError:
        return out
    with entries:
        for entry in entries:
            if entry.name in skip or not entry.is_dir(follow_symlinks=False):
                continue
            best = 0
            for name in os.listdir(entry.path):
                match = _ATTEMPT_FILE.fullmatch(name)
                if match is None:
                    continue
                number = int(match.group(1))
                if number == 1:
                    with contextlib.suppress(OSError):
                        if os.stat(os.path.join(entry.path, name)).st_size == 0:
                            continue
                best = max(best, number)
            if best:
                out[entry.name] = best
    return out


def kill_orphans(workdir: Path) -> int:
    """Kill task processes a dead daemon left running (their cwd is in the workdir's
    task dirs; each leads its own process group). Returns how many were found."""
    root = str((workdir / TASKS_DIR).resolve()) + os.sep
    me, uid, my_group = os.getpid(), os.getuid(), os.getpgrp()
    found = 0
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.pid == me or proc.info["uids"].real != uid:
                continue
            cwd = proc.cwd()
        except (psutil.Error, OSError):
            continue
        if not (cwd + os.sep).startswith(root):
            continue
        found += 1
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(proc.pid)
            if group not in (my_group, 0):
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
    return found
