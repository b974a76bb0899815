"""The image on this machine: where the reference points, what it is, its digest.

Everything here blocks (it reads the image): run it in a thread.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pilotkit.api import PilotkitError

from .tree import Entry, dir_mode, file_mode, tree_digest

BLOCK = 4 << 20
SIF_MAGIC = b"SIF_MAGIC"
SIF_MAGIC_OFFSET = 32
SQUASHFS_MAGIC = b"hsqs"
SUFFIXES = {"sif": ".sif", "squashfs": ".sqfs", "dir": ""}
"""Suffix of each format's entry in the remote cache."""


@dataclass(frozen=True)
class Source:
    """A checked local image and its content digest."""

    path: Path
    format: str
    """``sif``, ``squashfs`` or ``dir``."""
    size: int
    """Bytes to copy: the file, or the sum of a directory's files."""
    digest: str
    """SHA-256 hex of the file, or :func:`~pilotkit_edge_sync.tree.tree_digest` of the directory."""
    entries: tuple[Entry, ...] = ()
    skipped: tuple[str, ...] = field(default=(), compare=False)
    """Paths of a directory that are neither files, directories nor links."""


def source_path(ref: str, base: Path) -> Path:
    """The local path of ``sync:///abs/image.sif`` (or ``sync://rel/path``, from ``base``)."""
    if not ref.startswith("sync://"):
        raise PilotkitError(f"edge-sync takes sync:// references (sync:///path/to/image.sif), not '{ref}'")
    text = ref.removeprefix("sync://")
    if not text:
        raise PilotkitError(f"image reference '{ref}' names no path")
    path = Path(text).expanduser()
    return Path(os.path.abspath(path if path.is_absolute() else base / path))


def file_format(path: Path) -> str:
    """``sif`` or ``squashfs`` from the file's magic number."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(SIF_MAGIC_OFFSET + len(SIF_MAGIC))
    except OSError as exc:
        raise PilotkitError(f"image {path} cannot be read: {exc.strerror}") from None
    if header[SIF_MAGIC_OFFSET:] == SIF_MAGIC:
        return "sif"
    if header.startswith(SQUASHFS_MAGIC):
        return "squashfs"
    raise PilotkitError(f"image {path} is neither a SIF nor a squashfs file (no magic number found)")


def sha256_file(path: Path, limit: int | None = None, report: Callable[[int], None] | None = None) -> str:
    """SHA-256 (hex) of a file, or of its first ``limit`` bytes."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as handle:
        while limit is None or done < limit:
            want = BLOCK if limit is None else min(BLOCK, limit - done)
            block = handle.read(want)
            if not block:
                break
            digest.update(block)
            done += len(block)
            if report is not None:
                report(len(block))
    return digest.hexdigest()


def walk(root: Path) -> tuple[list[tuple[str, os.stat_result]], list[str]]:
    """Every path under ``root`` (relative, ``/``-separated) with its lstat; and the skipped."""
    found: list[tuple[str, os.stat_result]] = []
    skipped: list[str] = []
    stack = [""]
    while stack:
        relative = stack.pop()
        try:
            with os.scandir(root / relative if relative else root) as listing:
                children = sorted(listing, key=lambda e: e.name)
                for child in children:
                    rel = f"{relative}/{child.name}" if relative else child.name
                    st = child.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(rel)
                    elif not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                        skipped.append(rel)
                        continue
                    found.append((rel, st))
        except OSError as exc:
            raise PilotkitError(f"image {root / relative} cannot be listed: {exc.strerror}") from None
    return found, skipped


def scan(path: Path, report: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None) -> Source:
    """Check the image at ``path`` and hash it. ``total`` is told the bytes to hash first,
    ``report`` each block hashed."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PilotkitError(f"image {path} does not exist") from None
    except OSError as exc:
        raise PilotkitError(f"image {path} cannot be accessed: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        fmt = file_format(path)
        if total is not None:
            total(st.st_size)
        return Source(path, fmt, st.st_size, sha256_file(path, report=report))
    if not stat.S_ISDIR(st.st_mode):
        raise PilotkitError(f"image {path} is neither a regular file nor a directory")
    found, skipped = walk(path)
    if total is not None:
        total(sum(s.st_size for _, s in found if stat.S_ISREG(s.st_mode)))
    entries = []
    size = 0
    for rel, info in found:
        if stat.S_ISDIR(info.st_mode):
            entries.append(Entry(rel, "d", dir_mode(info.st_mode)))
        elif stat.S_ISLNK(info.st_mode):
            entries.append(Entry(rel, "l", 0, os.readlink(path / rel)))
        else:
            try:
                digest = sha256_file(path / rel, report=report)
            except OSError as exc:
                raise PilotkitError(f"image file {path / rel} cannot be read: {exc.strerror}") from None
            entries.append(Entry(rel, "f", file_mode(info.st_mode), digest, info.st_size))
            size += info.st_size
    return Source(path, "dir", size, tree_digest(entries), tuple(entries), tuple(skipped))
