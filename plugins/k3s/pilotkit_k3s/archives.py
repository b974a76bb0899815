"""Image archives k3s imports into containerd from ``<data-dir>/agent/images``: which
files are archives, and the suffix k3s needs to read each (it goes by the name)."""

from __future__ import annotations

from pathlib import Path

SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.lz4", ".tar.bz2")
"""The archive names k3s imports."""
_MAGIC = (
    (b"\x1f\x8b", ".tar.gz"),
    (b"\x28\xb5\x2f\xfd", ".tar.zst"),
    (b"\x04\x22\x4d\x18", ".tar.lz4"),
    (b"BZh", ".tar.bz2"),
)
_TAR_MAGIC_OFFSET = 257


def archive_suffix(path: Path) -> str | None:
    """The suffix k3s needs for this file (``.tar``, ``.tar.gz``...), from its first
    bytes (a tar's ``ustar`` mark, or a gzip, zstd, lz4 or bzip2 header); None when it is
    no archive (a directory, a SIF...). Raises OSError when it cannot be read."""
    if path.is_dir():
        return None
    with open(path, "rb") as handle:
        header = handle.read(_TAR_MAGIC_OFFSET + 5)
    for magic, suffix in _MAGIC:
        if header.startswith(magic):
            return suffix
    return ".tar" if header[_TAR_MAGIC_OFFSET:] == b"ustar" else None


def link_name(path: Path) -> str:
    """The name of ``path``'s link in k3s's images folder: its own name when k3s reads
    that, else the name with the suffix its first bytes call for."""
    if path.name.endswith(SUFFIXES):
        return path.name
    try:
        suffix = archive_suffix(path)
    except OSError:
        suffix = None
    return path.name + (suffix or ".tar")
