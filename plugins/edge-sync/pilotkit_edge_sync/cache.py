"""The remote cache directory: layout, leases, and eviction applied to it.

::

    <cache>/sha256/<digest>.sif            a verified SIF image (.sqfs for squashfs)
    <cache>/sha256/<digest>/               a verified directory image
    <cache>/sha256/<digest>.sif.part       a file being copied ...
    <cache>/sha256/<digest>.sif.part.resume    ... and its resume record
    <cache>/sha256/<digest>.part/          a directory being copied or repaired
    <cache>/leases/<digest>.<pilot>        "in use by <pilot>", renewed while it runs

Only complete, verified images carry their final name; they get there by an atomic
rename. An image's last use is the modification time of its entry (touched on each
use, by the remote clock). A lease counts while younger than the lease TTL.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from posixpath import join
from typing import TYPE_CHECKING

from pilotkit.api import PilotkitError, import_asyncssh

from .lru import CacheEntry, EvictionPlan, plan_eviction
from .source import SUFFIXES
from .ssh import Remote, quote

if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh = import_asyncssh()

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Layout:
    """Paths in the remote cache rooted at ``root``."""

    root: str

    @property
    def images(self) -> str:
        return join(self.root, "sha256")

    @property
    def leases(self) -> str:
        return join(self.root, "leases")

    def final(self, digest: str, fmt: str) -> str:
        return join(self.images, digest + SUFFIXES[fmt])

    def lease(self, digest: str, pilot: str) -> str:
        return join(self.leases, f"{digest}.{_UNSAFE.sub('_', pilot)}")


SCAN_SCRIPT = (
    "cd -- {root} || exit 3; date +%s; echo ---; "
    "find sha256 leases -mindepth 1 -maxdepth 1 -printf '%h/%f %y %T@ %s\\n'; echo ---; "
    "find sha256 -mindepth 1 -maxdepth 1 -type d -exec du -sb -- {{}} +"
)
"""Prints the remote time, then ``dir/name type mtime size`` per entry, then ``du`` of directories."""

EVICT_SCRIPT = (
    "cd -- {root} || exit 3; "
    "if [ -n \"$(find leases -mindepth 1 -maxdepth 1 -name '{digest}.*' -newermt @{since} -print -quit)\" ]; "
    "then echo busy; exit 0; fi; "
    "rm -rf -- sha256/{digest} sha256/{digest}.* leases/{digest}.* && echo evicted"
)
"""Removes everything of one image unless a lease on it is younger than ``since``."""


@dataclass(frozen=True)
class Listing:
    """What the cache holds, by the remote clock."""

    now: float
    entries: tuple[CacheEntry, ...]


def parse_scan(output: str, lease_ttl: float) -> Listing:
    """A :class:`Listing` from :data:`SCAN_SCRIPT`'s output."""
    head, _, rest = output.partition("---\n")
    listing, _, du = rest.partition("---\n")
    now = float(head.strip() or time.time())
    sizes: dict[str, int] = {}
    used: dict[str, float] = {}
    leased: set[str] = set()
    for line in listing.splitlines():
        fields = line.split(" ")
        if len(fields) != 4:
            continue
        path, kind, mtime, size = fields
        folder, _, name = path.partition("/")
        digest = name.split(".", 1)[0]
        if not _DIGEST.fullmatch(digest):
            continue  # not ours: never touched
        if folder == "leases":
            if now - float(mtime) < lease_ttl:
                leased.add(digest)
            continue
        sizes[digest] = sizes.get(digest, 0) + (int(size) if kind != "d" else 0)
        used[digest] = max(used.get(digest, 0.0), float(mtime))
    for line in du.splitlines():
        size, _, path = line.partition("\t")
        digest = path.rpartition("/")[2].split(".", 1)[0]
        if digest in sizes and size.isdigit():
            sizes[digest] += int(size)
    entries = tuple(CacheEntry(d, sizes[d], used[d], d in leased) for d in sorted(sizes))
    return Listing(now, entries)


class RemoteCache:
    """The cache on the other end of ``remote``."""

    def __init__(self, remote: Remote, layout: Layout, lease_ttl: float) -> None:
        self.remote = remote
        self.layout = layout
        self.lease_ttl = lease_ttl

    async def ensure(self) -> None:
        """Create the cache's directories; a cache that cannot be made is a one-line error."""
        try:
            await self.remote.sftp.makedirs(self.layout.images, exist_ok=True)
            await self.remote.sftp.makedirs(self.layout.leases, exist_ok=True)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied, asyncssh.SFTPFailure) as exc:
            raise PilotkitError(
                f"edge-sync: cannot create the cache {self.layout.root} on {self.remote.label}: {exc.reason}"
            ) from None

    async def take_lease(self, digest: str, pilot: str) -> None:
        """Mark ``digest`` in use by ``pilot`` (writing sets the mtime by the remote clock)."""
        async with self.remote.sftp.open(self.layout.lease(digest, pilot), "wb", encoding=None) as handle:
            await handle.write(f"{pilot} {time.time():.0f}\n".encode())

    async def drop_lease(self, digest: str, pilot: str) -> None:
        try:
            await self.remote.sftp.remove(self.layout.lease(digest, pilot))
        except asyncssh.SFTPNoSuchFile:
            pass

    async def listing(self) -> Listing:
        out = await self.remote.run(SCAN_SCRIPT.format(root=quote(self.layout.root)), what="cache listing")
        return parse_scan(out.decode(errors="replace"), self.lease_ttl)

    async def evict(self, limit: int, incoming: int, log: Callable[[str, str], None]) -> EvictionPlan:
        """Evict least-recently-used images not in use until ``incoming`` more bytes fit.

        Each removal re-checks the image's leases on the remote side first, so a pilot
        that took a lease since the listing keeps its image.
        """
        listing = await self.listing()
        plan = plan_eviction(listing.entries, limit, incoming)
        since = int(listing.now - self.lease_ttl)
        for entry in plan.evict:
            script = EVICT_SCRIPT.format(root=quote(self.layout.root), digest=entry.digest, since=since)
            out = await self.remote.run(script, what="eviction")
            if out.strip() == b"evicted":
                log("info", f"cache: evicted {entry.digest[:12]} ({entry.size / 1e6:.1f} MB, least recently used)")
        if not plan.fits:
            log("warn", f"cache: {plan.after / 1e6:.1f} MB in use plus {incoming / 1e6:.1f} MB incoming "
                        f"exceeds the limit of {limit / 1e6:.1f} MB; images in use are never evicted")
        return plan
