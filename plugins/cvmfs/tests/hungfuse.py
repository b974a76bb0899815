"""A FUSE file system that never answers: what a stuck CVMFS client looks like.

The kernel side of FUSE is driven through ``/dev/fuse``: mounting hands the kernel a
file descriptor, and every request (starting with ``FUSE_INIT``) waits for the
daemon to answer on it. Nothing here ever reads or answers, so any ``stat``, ``open``
or ``readdir`` under the mount point blocks. Closing the descriptor aborts the
connection, which fails the blocked requests (``ENOTCONN``); the mount is then
detached.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(fd: int, target: Path) -> None:
    data = f"fd={fd},rootmode=40000,user_id={os.getuid()},group_id={os.getgid()}".encode()
    if _libc.mount(b"hungfs", os.fsencode(target), b"fuse.hungfs", MS_NOSUID | MS_NODEV, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mounting FUSE on {target}: {os.strerror(err)}")


def _detach(target: Path) -> None:
    _libc.umount2(os.fsencode(target), MNT_DETACH)


@contextlib.contextmanager
def hung_mount(target: Path) -> Iterator[Path]:
    """Mount a never-answering FUSE file system on ``target`` for the block's duration."""
    target.mkdir(parents=True, exist_ok=True)
    fd = os.open("/dev/fuse", os.O_RDWR)
    try:
        _mount(fd, target)
    except OSError:
        os.close(fd)
        raise
    try:
        yield target
    finally:
        os.close(fd)
        _detach(target)


def fuse_problem(scratch: Path) -> str | None:
    """Why a FUSE file system cannot be mounted here, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    try:
        with hung_mount(scratch / "fuse-check"):
            pass
    except OSError as exc:
        return str(exc)
    return None
