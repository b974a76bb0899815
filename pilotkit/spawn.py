"""Starting task processes and learning of their exit without polling or threads.

Each process starts in its own process group (so a task's children can be signalled
and reaped with it) with stdout/stderr going to files. Exit is reported through a
pidfd registered with the event loop: no thread per child, no SIGCHLD handler.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

ExitHandler = Callable[[int, int], None]
"""Called with (pid, wait status)."""

_HAVE_PIDFD = hasattr(os, "pidfd_open")


class ProcessRunner:
    """Spawns processes and calls a handler with their wait status when they exit."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str] | None,
        stdout: str,
        stderr: str,
        on_exit: ExitHandler,
    ) -> int:
        """Start ``argv``; raises OSError when it cannot (missing binary, bad cwd...)."""
        out_fd = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            err_fd = (
                out_fd
                if stderr == stdout
                else os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            )
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out_fd,
                    stderr=err_fd,
                    close_fds=True,
                    process_group=0,
                )
            finally:
                if err_fd != out_fd:
                    os.close(err_fd)
        finally:
            os.close(out_fd)
        pid = proc.pid
        self._children[pid] = proc
        if _HAVE_PIDFD:
            fd = os.pidfd_open(pid)
            self.loop.add_reader(fd, self._reap, pid, fd, on_exit)
        else:  # pragma: no cover - kernels older than 5.3
            fut = self.loop.run_in_executor(None, os.waitpid, pid, 0)
            fut.add_done_callback(lambda f: self._finish(pid, f.result()[1], on_exit))
        return pid

    def _reap(self, pid: int, fd: int, on_exit: ExitHandler) -> None:
        self.loop.remove_reader(fd)
        os.close(fd)
        _, status = os.waitpid(pid, 0)
        self._finish(pid, status, on_exit)

    def _finish(self, pid: int, status: int, on_exit: ExitHandler) -> None:
        proc = self._children.pop(pid, None)
        if proc is not None:
            proc.returncode = os.waitstatus_to_exitcode(status)
        # Reap what the task left behind in its process group: no orphans.
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        on_exit(pid, status)

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
