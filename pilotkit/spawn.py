"""Starting task processes and learning of their exit without polling or threads.

Each process starts in its own process group (so a task's children can be signalled
and reaped with it) with stdout/stderr going to files. Exit is reported through a
pidfd registered with the event loop: no thread per child, no SIGCHLD handler.

What a task starts ends with it. The process group is killed when the task ends; a
descendant that left the group (``setsid``, a daemon's double fork) is found through
``PR_SET_CHILD_SUBREAPER``: this process becomes the parent of every orphan below it,
and each task's processes carry a mark in their environment (``PILOTKIT_TASK_MARK``),
so an orphan whose task has ended is killed and reaped, and nothing else is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from . import cgroup as cgroups
from .cgroup import TaskCgroups

ExitHandler = Callable[[int, int], None]
"""Called with (pid, wait status)."""

_HAVE_PIDFD = hasattr(os, "pidfd_open")

MARK_VAR = "PILOTKIT_TASK_MARK"
"""In each task's environment: which runner and task its processes belong to."""
_PR_SET_CHILD_SUBREAPER = 36

CONTAINMENT_CGROUP = "a cgroup v2 per task + child subreaper + process group"
CONTAINMENT_SUBREAPER = "child subreaper + process group"
CONTAINMENT_GROUP = "process group only (no child subreaper: a setsid descendant may escape)"


_subreaper_users = 0
"""Runners of this process that need it to be a subreaper (it is turned off after the last)."""


def _set_subreaper(on: bool) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Make orphans below this process its children (Linux ``prctl``) while a runner needs
    it; False where it cannot."""
    global _subreaper_users
    if not _set_subreaper(True):
        return False
    _subreaper_users += 1
    return True


def leave_subreaper() -> None:
    """One runner less needs it; after the last, orphans go to init again (a process
    that ran a pilot in passing, a test, keeps no lasting side effect)."""
    global _subreaper_users
    _subreaper_users = max(0, _subreaper_users - 1)
    if _subreaper_users == 0:
        _set_subreaper(False)


def _own_children() -> set[int]:
    """The pids whose parent is this process."""
    out: set[int] = set()
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in threads:
        try:
            out.update(int(p) for p in cgroups.read_small(f"/proc/self/task/{tid}/children").split())
        except (OSError, ValueError):
            continue
    return out


def start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (``/proc/PID/stat``): with the pid,
    it names one process for good (a pid alone may be reused)."""
    try:
        stat = cgroups.read_small(f"/proc/{pid}/stat")
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[19])


def owner_alive(mark: str) -> bool:
    """Whether the process that started the task marked ``mark`` still runs (then its
    tasks are its own business, not a restart's)."""
    try:
        pid, started, _ = mark.split(":", 1)[0].split(".")
        return start_time(int(pid)) == int(started)
    except ValueError:
        return False


def write_record(path: str, pid: int, mark: str, cgroup: str | None = None) -> None:
    """``pid start-time mark [cgroup]`` of a running task, for a restart to find its
    processes."""
    with contextlib.suppress(OSError):  # a full disk: the mark still finds it
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, flags, 0o644)
        try:
            tail = f" {cgroup}" if cgroup is not None else ""
            os.write(fd, f"{pid} {start_time(pid)} {mark}{tail}\n".encode())
        finally:
            os.close(fd)


def task_processes(records: list[tuple[int, int | None, str]], uid: int | None = None) -> list[int]:
    """The processes of the tasks in ``records`` (``pid start-time mark``, as written by
    a runner, perhaps of a daemon that died): each recorded pid whose start time still
    matches, and every process that carries one of the marks (what the task started,
    wherever it went). Nothing chosen by name or directory."""
    marks = {mark for _, _, mark in records}
    found = {pid for pid, started, _ in records if started is not None and start_time(pid) == started}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        if uid is not None:
            try:
                if os.stat(f"/proc/{pid}").st_uid != uid:
                    continue
            except OSError:
                continue
        if _mark_of(pid) in marks:
            found.add(pid)
    return sorted(found)


def _mark_of(pid: int) -> str | None:
    try:
        environ = cgroups.read_small(f"/proc/{pid}/environ")
    except OSError:
        return None
    key = MARK_VAR.encode() + b"="
    for item in environ.split(b"\0"):
        if item.startswith(key):
            return item[len(key) :].decode(errors="replace")
    return None


def _remove_dead_runners(home: str) -> None:
    """Remove the empty cgroups of runners whose process has gone (one killed with -9
    leaves its own behind). Nothing is killed here: a restart kills what its records
    name (:func:`pilotkit.daemon.workdir.kill_orphans`)."""
    for path, token in cgroups.runner_bases(home):
        if not owner_alive(token.replace("-", ".", 2) + ":"):
            cgroups.remove_empty(path)


class ProcessRunner:
    """Spawns processes and calls a handler with their wait status when they exit."""

    SWEEP_SOON = 0.05
    """Seconds after a task's end to kill what it left outside its process group."""
    SWEEP_AGAIN = 0.5
    """Seconds after a task's end to look again for its orphans (the ones whose parent
    died from the process-group kill are reparented a moment later)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        me = os.getpid()
        self._token = f"{me}.{start_time(me)}.{secrets.token_hex(4)}"
        """This runner's part of each mark: the process running tasks, and a nonce."""
        self._ended: set[str] = set()
        """The marks of tasks that have ended: an orphan carrying one is killed."""
        self._orphans: set[int] = set()
        """Orphans killed and not yet reaped."""
        self._sweep_soon: asyncio.TimerHandle | None = None
        self._sweep_later: asyncio.TimerHandle | None = None
        self.subreaper = become_subreaper()
        self.cgroups = TaskCgroups.open(self._token.replace(".", "-"))
        """A cgroup per task where this process may make them (None where not)."""
        if self.cgroups is not None:
            _remove_dead_runners(self.cgroups.home)
        self._cgroup_of: dict[int, str] = {}
        self._killed: dict[int, int | None] = {}
        """Processes of tasks' cgroups killed at their task's end (pid: start time): reaped
        when they come to this process (a subreaper), whatever their environment."""
        self._emptying: set[str] = set()
        """Task cgroups killed and not yet removed (their processes were still leaving)."""
        self._devnull = -1
        """``/dev/null``, every task's stdin: opened once, not once a task."""
        if self.cgroups is not None:
            self.containment = CONTAINMENT_CGROUP
        else:
            self.containment = CONTAINMENT_SUBREAPER if self.subreaper else CONTAINMENT_GROUP
        """How this runner keeps a task's processes from outliving it."""

    def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str] | None,
        stdout: str,
        stderr: str,
        on_exit: ExitHandler,
        record: str | None = None,
    ) -> int:
        """Start ``argv``; raises OSError when it cannot (missing binary, bad cwd...)."""
        env = dict(os.environ if env is None else env)
        mark = f"{self._token}:{len(self._ended) + len(self._children)}:{secrets.token_hex(3)}"
        env[MARK_VAR] = mark
        out_fd = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            err_fd = (
                out_fd
                if stderr == stdout
                else os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            )
            cgroup = self.cgroups.make() if self.cgroups is not None else None
            try:
                with self.cgroups.inside(cgroup) if self.cgroups is not None else contextlib.nullcontext():
                    proc = subprocess.Popen(
                        argv,
                        cwd=cwd,
                        env=env,
                        stdin=self._null(),
                        stdout=out_fd,
                        stderr=err_fd,
                        close_fds=True,
                        process_group=0,
                    )
            except BaseException:
                if cgroup is not None:
                    cgroups.remove(cgroup)
                raise
            finally:
                if err_fd != out_fd:
                    os.close(err_fd)
        finally:
            os.close(out_fd)
        pid = proc.pid
        self._children[pid] = proc
        if cgroup is not None:
            self._cgroup_of[pid] = cgroup
        if record is not None:
            write_record(record, pid, mark, cgroup)
        if _HAVE_PIDFD:
            fd = os.pidfd_open(pid)
            self.loop.add_reader(fd, self._reap, pid, fd, on_exit, mark, record)
        else:  # pragma: no cover - kernels older than 5.3
            fut = self.loop.run_in_executor(None, os.waitpid, pid, 0)
            fut.add_done_callback(lambda f: self._finish(pid, f.result()[1], on_exit, mark, record))
        return pid

    def _null(self) -> int:
        if self._devnull < 0:
            self._devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return self._devnull

    def _reap(self, pid: int, fd: int, on_exit: ExitHandler, mark: str, record: str | None) -> None:
        self.loop.remove_reader(fd)
        os.close(fd)
        _, status = os.waitpid(pid, 0)
        self._finish(pid, status, on_exit, mark, record)

    def _finish(self, pid: int, status: int, on_exit: ExitHandler, mark: str, record: str | None) -> None:
        proc = self._children.pop(pid, None)
        if proc is not None:
            proc.returncode = os.waitstatus_to_exitcode(status)
        # Reap what the task left behind in its process group: no orphans.
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        # Everything else it started, wherever it went: its cgroup.
        cgroup = self._cgroup_of.pop(pid, None)
        if cgroup is not None:
            left = cgroups.procs(cgroup)
            if left:
                for other in left:
                    self._killed[other] = start_time(other)
                cgroups.kill(cgroup)
                self._emptying.add(cgroup)  # removed once its processes have gone
            elif self.cgroups is not None:
                self.cgroups.release(cgroup)
        # And what left the group: orphans carrying the task's mark.
        self._ended.add(mark)
        if self.subreaper or self._emptying:
            # Swept a moment later, once for all the tasks that end meanwhile: reading
            # /proc at every task's end costs more than the task when tasks are short.
            if self._sweep_soon is None:
                self._sweep_soon = self.loop.call_later(self.SWEEP_SOON, self._soon_sweep)
            if self._sweep_later is None:  # one for every task that ends meanwhile
                self._sweep_later = self.loop.call_later(self.SWEEP_AGAIN, self._delayed_sweep)
        on_exit(pid, status)
        if record is not None:  # once its end is recorded
            with contextlib.suppress(OSError):
                os.unlink(record)

    def sweep(self) -> int:
        """Kill every orphan (a child of this process that is no task) whose task has
        ended; returns how many were found. Each is reaped when it exits, and its own
        children, orphaned in turn, are swept then."""
        for cgroup in list(self._emptying):
            if cgroups.remove(cgroup):
                self._emptying.discard(cgroup)
        found = 0
        for pid in _own_children() - self._children.keys() - self._orphans:
            killed = pid in self._killed and self._killed.pop(pid) == start_time(pid)
            if not killed and _mark_of(pid) not in self._ended:
                continue  # not a task's, or its task still runs
            found += 1
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
            self._orphans.add(pid)
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                self._reap_orphan(pid, -1)
                continue
            self.loop.add_reader(fd, self._reap_orphan, pid, fd)
        for pid, started in list(self._killed.items()):
            if start_time(pid) != started:  # gone, reaped by a parent of its own
                del self._killed[pid]
        return found

    def _soon_sweep(self) -> None:
        self._sweep_soon = None
        self.sweep()

    def _delayed_sweep(self) -> None:
        self._sweep_later = None
        self.sweep()

    def _reap_orphan(self, pid: int, fd: int) -> None:
        if fd >= 0:
            self.loop.remove_reader(fd)
            os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
        self._orphans.discard(pid)
        self.sweep()

    async def wait_orphans(self, timeout: float = 5.0) -> int:
        """Sweep until no orphan of an ended task is left (or ``timeout``); returns how
        many were still there at the end."""
        if not self.subreaper:
            self.sweep()  # the task cgroups killed and not removed yet
            return 0
        deadline = self.loop.time() + timeout
        while True:
            found = self.sweep() + len(self._orphans)
            if not found or self.loop.time() > deadline:
                return found
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """No task runs any more: its cgroups go, and this runner stops being a subreaper."""
        if self.cgroups is not None:
            self.cgroups.close()
            self.cgroups = None
        if self._devnull >= 0:
            os.close(self._devnull)
            self._devnull = -1
        if self.subreaper:
            self.subreaper = False
            for timer in (self._sweep_soon, self._sweep_later):
                if timer is not None:
                    timer.cancel()
            self._sweep_soon = self._sweep_later = None
            leave_subreaper()

    def signal(self, pid: int, sig: int) -> None:
        """Send ``sig`` to the process group of ``pid`` (ignored once it has gone)."""
        if pid not in self._children:
            return
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def pids(self) -> list[int]:
        return list(self._children)
