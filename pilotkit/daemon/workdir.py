"""Files a pilot leaves in its workdir, read after a restart: the results file (a torn
last record is cut off), the task dirs (which attempts ran) and the task processes a
dead daemon left running (found by their recorded pid, start time and mark; killed)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec

from .. import cgroup as cgroups
from ..results import TaskResult, read_results
from ..spawn import owner_alive, task_processes
from ..vocab import ATTEMPT_FILE, PIDS_DIR, TASKS_DIR

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


def read_pid_records(workdir: Path) -> list[tuple[Path, int, int | None, str, str | None]]:
    """The running attempts a pilot recorded (``pids/<task>.<attempt>``): file, pid,
    start time, mark, cgroup (None without one)."""
    out: list[tuple[Path, int, int | None, str, str | None]] = []
    try:
        entries = list(os.scandir(workdir / PIDS_DIR))
    except FileNotFoundError:
        return out
    for entry in entries:
        try:
            pid, started, mark, *rest = Path(entry.path).read_text().split(maxsplit=3)
            cgroup = rest[0].strip() if rest else None
            out.append(
                (Path(entry.path), int(pid), None if started == "None" else int(started), mark, cgroup)
            )
        except (OSError, ValueError):
            continue
    return out


def recorded_attempts(workdir: Path) -> dict[str, int]:
    """The highest attempt of each task whose process was recorded as started
    (``pids/<task>.<attempt>``): an attempt that wrote nothing yet still ran. Read before
    :func:`kill_orphans` removes the records."""
    out: dict[str, int] = {}
    try:
        names = os.listdir(workdir / PIDS_DIR)
    except FileNotFoundError:
        return out
    for name in names:
        task, _, number = name.rpartition(".")
        if task and number.isdigit():
            out[task] = max(out.get(task, 0), int(number))
    return out


def kill_orphans(workdir: Path) -> int:
    """Kill the task processes a dead daemon (or ``pilotkit run``) left running: the
    records whose owner is gone, exactly the recorded attempts
    (pid and start time), every process carrying one of their marks (what each task
    started, wherever it went) and every process in their cgroups, never anything chosen
    by name or directory. Returns how many processes were killed."""
    records = [r for r in read_pid_records(workdir) if not owner_alive(r[3])]
    if not records:
        return 0
    pids = set(
        task_processes([(pid, started, mark) for _, pid, started, mark, _ in records], uid=os.getuid())
    )
    groups = [cgroup for *_, cgroup in records if cgroup is not None and _is_task_cgroup(cgroup)]
    for cgroup in groups:
        pids.update(cgroups.procs(cgroup))
        cgroups.kill(cgroup)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    # Gone before anything is started again: a task never runs twice at once.
    deadline = time.monotonic() + 5.0
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for base in {cgroups.cgroup_base(cgroup) for cgroup in groups}:
        cgroups.remove_empty(base)  # the dead runner's, once its killed processes left
    for path, *_ in records:
        with contextlib.suppress(OSError):
            path.unlink()
    return len(pids)


def _is_task_cgroup(path: str) -> bool:
    """Whether ``path`` is a task cgroup a runner made (``.../pilotkit-<token>/t<n>`` in a
    cgroup file system): a record never names anything else to kill."""
    p = Path(path)
    return (
        p.is_absolute()
        and p.parent.name.startswith("pilotkit-")
        and p.name[:1] == "t"
        and p.name[1:].isdigit()
        and (p / "cgroup.procs").is_file()
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")
