"""A cgroup v2 per task, where this process may make cgroups below its own (root, a
``systemd-run --user -p Delegate=yes`` scope, a batch job's delegated cgroup).

Each runner makes ``pilotkit-<token>/`` below the cgroup it runs in and one directory
per task below that. A task's process is started inside its cgroup: the runner moves
itself into it just before the fork and back just after, so the task's very first
instruction already runs there, and everything it starts, however it detaches (``setsid``,
a cleared environment, a double fork), stays there. When the task ends, ``cgroup.kill``
ends all of it at once; an empty cgroup is used again by a later task, and all of them
are removed when the runner closes.

No controller is enabled: the cgroups only group processes (no limits, no accounting),
which works under any delegation. ``PILOTKIT_CGROUP=off`` turns this off;
``PILOTKIT_CGROUP=/sys/fs/cgroup/...`` names the cgroup to make them in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

CGROUP_VAR = "PILOTKIT_CGROUP"


def _cgroup2_mount() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup``, or
    ``/sys/fs/cgroup/unified`` on a hybrid host)."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                before, _, after = line.partition(" - ")
                if after.split(" ", 1)[0] == "cgroup2":
                    return before.split()[4]
    except OSError:
        return None
    return None


def own_cgroup() -> str | None:
    """The directory of the cgroup v2 this process runs in, or None without one."""
    mount = _cgroup2_mount()
    if mount is None:
        return None
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return os.path.normpath(mount + "/" + line[3:].strip())
    except OSError:
        return None
    return None


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read_small(path: str) -> bytes:
    """The whole of a small kernel file (``/proc``, a cgroup's): one open, reads, one close.
    A buffered file object would add two ``fstat``, an ``ioctl`` and two ``lseek`` calls,
    and costs several times the read itself when the file is a just-started process's."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def procs(cgroup: str) -> list[int]:
    """The processes in ``cgroup`` (none when it is gone)."""
    try:
        return [int(p) for p in read_small(os.path.join(cgroup, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def kill(cgroup: str) -> None:
    """SIGKILL every process in ``cgroup`` (``cgroup.kill``; one by one on kernels
    before 5.14). A cgroup that is gone is left alone."""
    try:
        _write(os.path.join(cgroup, "cgroup.kill"), "1")
        return
    except FileNotFoundError:
        if not os.path.isdir(cgroup):
            return
    except OSError:
        pass
    for pid in procs(cgroup):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def remove(cgroup: str) -> bool:
    """Remove ``cgroup`` once it is empty; True when it is gone."""
    try:
        os.rmdir(cgroup)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


class TaskCgroups:
    """The cgroups of one runner's tasks (see the module doc)."""

    def __init__(self, parent: str, home: str, base: str, parent_fd: int) -> None:
        self.parent = parent
        """The cgroup the runner runs in; it goes back there after each start."""
        self.home = home
        self.base = base
        self._count = 0
        self._free: list[str] = []
        """Task cgroups that are empty again, for the next tasks (a mkdir and an rmdir less
        per task)."""
        self._parent_fd = parent_fd
        """``cgroup.procs`` of :attr:`parent`, open for the runner's life (an open and a
        close less at every start)."""

    @classmethod
    def open(cls, token: str) -> TaskCgroups | None:
        """Make this runner's cgroup, or None where no cgroup can be made (no cgroup v2,
        no delegation, ``PILOTKIT_CGROUP=off``)."""
        where = os.environ.get(CGROUP_VAR, "")
        if where.lower() in ("off", "no", "0", "false"):
            return None
        parent = own_cgroup()
        if parent is None:
            return None
        home = os.path.normpath(where) if where else parent
        base = os.path.join(home, f"pilotkit-{token}")
        fd = -1
        try:
            os.mkdir(base)
            fd = os.open(os.path.join(parent, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
            os.write(fd, b"0")  # may this process move?
        except OSError:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.rmdir(base)
            return None
        return cls(parent, home, base, fd)

    def make(self) -> str | None:
        """An empty cgroup for one task (None when it cannot be made)."""
        while self._free:
            cgroup = self._free.pop()
            if os.path.isdir(cgroup):
                return cgroup
        self._count += 1
        path = os.path.join(self.base, f"t{self._count}")
        try:
            os.mkdir(path)
        except OSError:
            return None
        return path

    def release(self, cgroup: str) -> None:
        """``cgroup``'s task has ended and nothing of it is left: the next task may have it."""
        self._free.append(cgroup)

    @contextlib.contextmanager
    def inside(self, cgroup: str | None) -> Iterator[None]:
        """Run the body (a fork) with this process in ``cgroup``: what it forks starts
        there. The process is back in its own cgroup afterwards, whatever happened."""
        if cgroup is None:
            yield
            return
        try:
            _write(os.path.join(cgroup, "cgroup.procs"), "0")
        except OSError:
            yield
            return
        try:
            yield
        finally:
            os.write(self._parent_fd, b"0")

    def close(self) -> None:
        """Kill what is left in this runner's task cgroups and remove them all."""
        if self._parent_fd >= 0:
            os.close(self._parent_fd)
            self._parent_fd = -1
        close_base(self.base)


def remove_empty(base: str) -> bool:
    """Remove ``base`` and its empty task cgroups (never kills anything); True when
    ``base`` is gone."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for name in names:
        path = os.path.join(base, name)
        if os.path.isdir(path):
            remove(path)
    return remove(base)


def runner_bases(home: str) -> list[tuple[str, str]]:
    """The runners' cgroups in ``home``: (path, the runner's token)."""
    try:
        names = os.listdir(home)
    except OSError:
        return []
    return [(os.path.join(home, n), n[len("pilotkit-") :]) for n in names if n.startswith("pilotkit-")]


def available() -> bool:
    """Whether this process may make task cgroups (it makes one and removes it)."""
    made = TaskCgroups.open(f"probe-{os.getpid()}")
    if made is None:
        return False
    made.close()
    return True


def close_base(base: str) -> int:
    """Kill every process in the task cgroups below ``base`` (a runner's, perhaps of a
    process that died) and remove them and ``base``; returns how many processes there
    were."""
    try:
        names = os.listdir(base)
    except OSError:
        return 0
    found = 0
    children = [os.path.join(base, n) for n in names if os.path.isdir(os.path.join(base, n))]
    for child in children:
        found += len(procs(child))
        kill(child)
    for child in children:
        _remove_soon(child)
    _remove_soon(base)
    return found


def _remove_soon(cgroup: str, tries: int = 50) -> bool:
    """Remove ``cgroup``, waiting up to about half a second for its killed processes to
    leave it."""
    for _ in range(tries):
        if remove(cgroup):
            return True
        time.sleep(0.01)
    return False


def cgroup_base(cgroup: str) -> str:
    """The runner's cgroup (``pilotkit-<token>``) of one of its task cgroups."""
    return str(Path(cgroup).parent)
