"""Where the daemon keeps its socket, pid file, lock and token, and its durable state.

The runtime dir is ``$XDG_RUNTIME_DIR/pilotkit``, or ``/tmp/pilotkit-$UID`` without
``XDG_RUNTIME_DIR``; mode 0700, owned by the user (a dir in /tmp owned by someone else
is refused: it could be a trap). One daemon per user per host: the daemon holds an
exclusive ``flock`` on ``daemon.lock`` for its whole life. The kernel drops the lock when
the process dies, however it dies, so a socket or pid file found without the lock held
is stale (a crashed daemon) and is removed.

The state dir is ``$XDG_STATE_HOME/pilotkit`` (``~/.local/state/pilotkit``): the SQLite
database, the daemon log and the default pilot workdirs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import PilotkitError
from ..protocol import SOCKET_NAME, find_socket, runtime_dir, socket_candidates, state_dir
from ..vocab import TOKEN_FILE

__all__ = [
    "SOCKET_NAME", "DaemonLock", "RuntimeFiles", "ensure_private_dir", "find_socket", "read_pid", "runtime_dir",
    "socket_candidates", "state_dir",
]

log = logging.getLogger("pilotkit.daemon")

@dataclass(frozen=True)
class RuntimeFiles:
    dir: Path

    @property
    def socket(self) -> Path:
        return self.dir / SOCKET_NAME

    @property
    def pid(self) -> Path:
        return self.dir / "daemon.pid"

    @property
    def lock(self) -> Path:
        return self.dir / "daemon.lock"

    @property
    def token(self) -> Path:
        return self.dir / TOKEN_FILE


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` mode 0700, or check an existing one is ours and private."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise PilotkitError(f"runtime dir {path} is not a directory (a symlink or a file): refusing to use it")
    if st.st_uid != os.getuid():
        raise PilotkitError(
            f"runtime dir {path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}): refusing to use it"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


class DaemonLock:
    """The one-daemon-per-user lock, plus stale file clean-up and the pid file."""

    def __init__(self, files: RuntimeFiles) -> None:
        self.files = files
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.files.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            pid = read_pid(self.files.pid)
            who = f" (pid {pid})" if pid else ""
            raise PilotkitError(
                f"a pilotkit daemon is already running{who}, socket {self.files.socket}"
            ) from None
        self._fd = fd
        self._clean_stale()
        tmp = self.files.pid.with_suffix(".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.files.pid)

    def _clean_stale(self) -> None:
        stale_pid = read_pid(self.files.pid)
        for path in (self.files.socket, self.files.pid):
            if path.exists() or path.is_symlink():
                path.unlink()
                log.warning(
                    "removed stale %s left by a daemon that did not shut down%s",
                    path, f" (pid {stale_pid})" if stale_pid else "",
                )

    def release(self) -> None:
        if self._fd is None:
            return
        for path in (self.files.socket, self.files.pid):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        os.close(self._fd)  # drops the flock
        self._fd = None


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
