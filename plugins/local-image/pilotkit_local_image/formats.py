"""What kind of image a path holds, found from its first bytes.

A SIF file starts with a 32-byte launch line followed by ``SIF_MAGIC``; a squashfs
file starts with ``hsqs`` (its magic 0x73717368, stored little-endian). A directory is
an unpacked root filesystem (``dir``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pilotkit.api import PilotkitError

SIF_MAGIC = b"SIF_MAGIC"
SIF_MAGIC_OFFSET = 32
SQUASHFS_MAGIC = b"hsqs"
HEADER_BYTES = SIF_MAGIC_OFFSET + len(SIF_MAGIC)


@dataclass(frozen=True)
class ImageInfo:
    """A checked local image."""

    path: Path
    format: str
    """``sif``, ``squashfs`` or ``dir``."""
    size: int
    """Bytes of the file; 0 for a directory."""


def detect_format(header: bytes) -> str | None:
    """``sif`` or ``squashfs`` from a file's first bytes, None when neither matches."""
    if header[SIF_MAGIC_OFFSET:HEADER_BYTES] == SIF_MAGIC:
        return "sif"
    if header[: len(SQUASHFS_MAGIC)] == SQUASHFS_MAGIC:
        return "squashfs"
    return None


def inspect_image(path: Path) -> ImageInfo:
    """Check that ``path`` is a readable SIF/squashfs file or directory; say which.

    Blocking: run it in a thread. Raises :class:`PilotkitError` with one line naming
    the path on any problem.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PilotkitError(f"image {path} does not exist") from None
    except OSError as exc:
        raise PilotkitError(f"image {path} cannot be accessed: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        if not os.access(path, os.R_OK | os.X_OK):
            raise PilotkitError(f"image directory {path} is not readable (permission denied)")
        return ImageInfo(path, "dir", 0)
    if not stat.S_ISREG(st.st_mode):
        raise PilotkitError(f"image {path} is neither a regular file nor a directory")
    try:
        with open(path, "rb") as handle:
            header = handle.read(HEADER_BYTES)
    except PermissionError:
        raise PilotkitError(f"image {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise PilotkitError(f"image {path} cannot be read: {exc.strerror}") from None
    fmt = detect_format(header)
    if fmt is None:
        raise PilotkitError(f"image {path} is neither a SIF nor a squashfs file (no magic number found)")
    return ImageInfo(path, fmt, st.st_size)
