"""Probing a CVMFS repository without letting a hung mount hang the pilot.

CVMFS is a FUSE file system: when its proxies or servers stop answering, a ``stat``
or a ``read`` under ``/cvmfs`` can block for minutes. The probe therefore runs in a
daemon thread and the caller waits for it with a timeout. A thread stuck in the
kernel cannot be interrupted; it stays blocked until the request returns, but as a
daemon thread it never delays the pilot's exit.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pilotkit.api import PilotkitError

T = TypeVar("T")

DATA_FILES = ("etc/os-release", "usr/lib/os-release")
"""Small files read to prove the data path (not only the catalogue) answers."""


async def in_daemon_thread(fn: Callable[[], T], timeout: float, name: str = "cvmfs-probe") -> T:
    """Run blocking ``fn`` in a new daemon thread; raise TimeoutError after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the waiting coroutine
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        try:
            loop.call_soon_threadsafe(deliver, *outcome)
        except RuntimeError:  # the loop closed while we were blocked
            pass

    threading.Thread(target=target, name=name, daemon=True).start()
    return await asyncio.wait_for(future, timeout)


def probe_image(repository: Path, image: Path, ref: str) -> Path:
    """Check the repository answers and holds ``image``; return the resolved directory.

    Blocking. Lists the repository (this mounts it under autofs and loads its
    catalogue), resolves the image's link into ``.flat/``, lists the image and reads
    one small file of it. Raises :class:`PilotkitError` with one line on failure.
    """
    try:
        if not os.listdir(repository):
            raise PilotkitError(f"CVMFS repository {repository} is empty: is it mounted?")
    except FileNotFoundError:
        raise PilotkitError(f"CVMFS repository {repository} is not mounted (no such directory)") from None
    except OSError as exc:
        raise PilotkitError(f"CVMFS repository {repository} is not usable: {exc.strerror}") from None
    if not os.path.lexists(image):
        raise PilotkitError(f"image {ref} is not on CVMFS: {image} does not exist")
    try:
        target = image.resolve(strict=True)
    except FileNotFoundError:
        raise PilotkitError(f"image {ref} is not on CVMFS: {image} is a dangling link") from None
    except OSError as exc:
        raise PilotkitError(f"image {ref}: cannot resolve {image}: {exc.strerror}") from None
    try:
        if not os.listdir(target):
            raise PilotkitError(f"image {ref}: {target} is empty")
    except NotADirectoryError:
        raise PilotkitError(f"image {ref}: {target} is not a directory") from None
    except OSError as exc:
        raise PilotkitError(f"image {ref}: cannot list {target}: {exc.strerror}") from None
    _read_one(target, ref)
    return target


def _read_one(root: Path, ref: str) -> None:
    """Read the first bytes of one small file of the image (never through a link)."""
    for relative in DATA_FILES:
        path = root / relative
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                continue
            raise PilotkitError(f"image {ref}: cannot open {path}: {exc.strerror}") from None
        try:
            os.read(fd, 4096)
        except OSError as exc:
            raise PilotkitError(f"image {ref}: cannot read {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        return
