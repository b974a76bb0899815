"""Directory images as manifests, and what it takes to make one tree match another.

Pure functions: parsing the remote listing, the tree digest, and the plan that turns a
partial remote copy into the local tree.

An entry is a directory (``d``), a regular file (``f``, with its SHA-256) or a symbolic
link (``l``, with its target); other kinds are not copied. Modes are normalised so
the copy stays readable and repairable by its owner: files get ``u+r``, directories
``u+rwx``. The tree's digest is the SHA-256 of its sorted, NUL-separated manifest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    """One path of a tree, relative to its root, ``/``-separated."""

    path: str
    kind: str
    """``d``, ``f`` or ``l``."""
    mode: int = 0
    digest: str = ""
    """SHA-256 (hex) of a file, target of a link, empty for a directory."""
    size: int = field(default=0, compare=False)


def file_mode(mode: int) -> int:
    return (mode & 0o777) | 0o400


def dir_mode(mode: int) -> int:
    return (mode & 0o777) | 0o700


def tree_digest(entries: Iterable[Entry]) -> str:
    """The SHA-256 (hex) that names a tree: of its manifest, sorted by path."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: os.fsencode(e.path)):
        digest.update(b"%s\0%o\0%s\0%s\0" % (
            entry.kind.encode(), entry.mode, os.fsencode(entry.digest), os.fsencode(entry.path),
        ))  # fmt: skip
    return digest.hexdigest()


FIND_FORMAT = r"%y\0%m\0%s\0%P\0%l\0"
"""``find -printf`` format of :func:`parse_listing`: type, mode, size, path, link target."""


def parse_listing(output: bytes, sums: dict[str, str]) -> list[Entry]:
    """Entries from ``find . -mindepth 1 -printf FIND_FORMAT`` and file hashes ``sums``.

    Modes are taken as they are (permission bits only), to be compared with the
    normalised modes the local tree asks for.

    A file without a hash (unreadable, or vanished between the two commands) gets an
    empty digest, so it never matches.
    """
    fields = output.split(b"\0")
    entries = []
    for i in range(0, len(fields) - 4, 5):
        kind, mode, size, path, target = fields[i : i + 5]
        name = os.fsdecode(path)
        if kind == b"d":
            entries.append(Entry(name, "d", int(mode, 8) & 0o777))
        elif kind == b"f":
            entries.append(Entry(name, "f", int(mode, 8) & 0o777, sums.get(name, ""), int(size)))
        elif kind == b"l":
            entries.append(Entry(name, "l", 0, os.fsdecode(target)))
    return entries


def parse_sha256sum(output: bytes) -> dict[str, str]:
    """``{path: hex}`` from ``sha256sum ./a ./b`` output (GNU escaping undone, ``./`` dropped)."""
    sums: dict[str, str] = {}
    for line in output.split(b"\n"):
        if not line:
            continue
        escaped = line.startswith(b"\\")
        if escaped:
            line = line[1:]
        digest, _, name = line.partition(b"  ")
        if escaped:
            name = _unescape(name)
        text = os.fsdecode(name)
        sums[text.removeprefix("./")] = digest.decode("ascii", errors="replace")
    return sums


def _unescape(name: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(name):
        if name[i : i + 1] == b"\\" and i + 1 < len(name):
            nxt = name[i + 1 : i + 2]
            out += {b"n": b"\n", b"r": b"\r", b"\\": b"\\"}.get(nxt, nxt)
            i += 2
        else:
            out += name[i : i + 1]
            i += 1
    return bytes(out)


@dataclass
class TreePlan:
    """What to do to a remote tree so that it matches the local one."""

    remove: list[str] = field(default_factory=list)
    """Paths to delete first (extra, or of another kind or link target)."""
    mkdirs: list[str] = field(default_factory=list)
    uploads: list[Entry] = field(default_factory=list)
    links: list[Entry] = field(default_factory=list)
    chmods: list[Entry] = field(default_factory=list)
    """Entries whose content is right but whose mode is not."""

    @property
    def empty(self) -> bool:
        return not (self.remove or self.mkdirs or self.uploads or self.links or self.chmods)

    @property
    def upload_bytes(self) -> int:
        return sum(e.size for e in self.uploads)


def plan_tree(local: Sequence[Entry], remote: Sequence[Entry]) -> TreePlan:
    """The steps that turn ``remote`` into ``local`` (both relative to the tree root)."""
    want = {e.path: e for e in local}
    have = {e.path: e for e in remote}
    plan = TreePlan()
    gone: set[str] = set()
    for path in sorted(have, key=lambda p: p.count("/")):
        if _inside(path, gone):
            continue  # inside a directory already removed
        there, wanted = have[path], want.get(path)
        if wanted is None or wanted.kind != there.kind or (wanted.kind == "l" and wanted.digest != there.digest):
            plan.remove.append(path)
            gone.add(path)
    plan.remove.sort()
    for path in sorted(want):
        new = want[path]
        old = None if path in gone or _inside(path, gone) else have.get(path)
        if new.kind == "d":
            if old is None:
                plan.mkdirs.append(path)
            elif old.mode != new.mode:
                plan.chmods.append(new)
        elif new.kind == "f":
            if old is None or old.digest != new.digest:
                plan.uploads.append(new)
            elif old.mode != new.mode:
                plan.chmods.append(new)
        elif new.kind == "l" and old is None:
            plan.links.append(new)
    return plan


def _inside(path: str, dirs: set[str]) -> bool:
    """Whether a parent directory of ``path`` is in ``dirs``."""
    parts = path.split("/")
    return any("/".join(parts[:i]) in dirs for i in range(1, len(parts)))


def mode_fixes(local: Sequence[Entry], remote: Sequence[Entry]) -> dict[int, list[str]]:
    """``{mode: [paths]}`` of entries whose mode differs between the trees (links have none)."""
    have = {e.path: e for e in remote}
    fixes: dict[int, list[str]] = {}
    for entry in local:
        other = have.get(entry.path)
        if entry.kind != "l" and other is not None and other.kind == entry.kind and other.mode != entry.mode:
            fixes.setdefault(entry.mode, []).append(entry.path)
    return fixes
