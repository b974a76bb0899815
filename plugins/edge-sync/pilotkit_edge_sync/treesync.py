"""Copying a directory image into the cache: walk it, copy each file, verify the tree.

The tree is built in ``<final>.part/``. Resuming needs no record: on each attempt the
partial tree is listed and every file in it hashed remotely (``find`` and
``sha256sum``), and only what is missing or differs is sent; a file cut off half-way
simply fails its hash and is sent again. When the remote listing equals the local
manifest (content, links and modes), the directory is renamed to its final name. A
cached final directory is listed and hashed again before each use; one that differs
is moved back to ``.part`` and repaired the same way.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from posixpath import join
from typing import TYPE_CHECKING

from pilotkit.api import import_asyncssh

from .filesync import Log, Stats, replace
from .sftpio import DIRECT, piece_size, write_all
from .slots import Slots, run_bounded
from .source import Source
from .ssh import CorruptTransfer, Remote, quote
from .tree import FIND_FORMAT, Entry, TreePlan, mode_fixes, parse_listing, parse_sha256sum, plan_tree

if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh = import_asyncssh()

SMALL = 1 << 20
"""Files up to this size are read without leaving the event loop."""


def encode(path: str) -> bytes:
    """A remote path as bytes, so names that are not UTF-8 survive."""
    return os.fsencode(path)


def nul_joined(paths: Sequence[str]) -> bytes:
    return b"".join(encode(p) + b"\0" for p in paths)


class TreeSync:
    """Puts one directory image at ``final`` on the remote side, verified."""

    def __init__(
        self, remote: Remote, source: Source, final: str, *, slots: Slots, chunk: int,
        stats: Stats, progress: Callable[[int, int], None], log: Log,
    ) -> None:  # fmt: skip
        self.remote = remote
        self.source = source
        self.final = final
        self.part = final + ".part"
        self.slots = slots
        self.chunk = chunk
        self.stats = stats
        self.progress = progress
        self.log = log
        self.local = list(source.entries)

    async def listing(self, root: str, *, hashes: bool = True) -> list[Entry]:
        """The remote tree under ``root``: entries and (with ``hashes``) file hashes."""
        found = await self.remote.run(
            f"cd -- {quote(root)} && find . -mindepth 1 -printf '{FIND_FORMAT}'", what="find"
        )
        sums: dict[str, str] = {}
        if hashes:
            out = await self.remote.run(
                f"cd -- {quote(root)} && find . -type f -print0 | xargs -0r sha256sum --", what="sha256sum"
            )
            sums = parse_sha256sum(out)
        return parse_listing(found, sums)

    async def cached(self) -> bool:
        """Whether a verified copy is in place; one that differs is moved back for repair."""
        if not await self.remote.sftp.isdir(self.final):
            return False
        started = time.monotonic()
        remote = await self.listing(self.final)
        self.stats.verify_seconds += time.monotonic() - started
        plan = plan_tree(self.local, remote)
        if plan.empty:
            await self.remote.run(f"touch -c -- {quote(self.final)}")
            return True
        self.stats.discarded += 1
        self.log("warn", f"cached copy {self.final} differs from the image in {_count(plan)} entries: repairing it")
        await self.remote.run(f"rm -rf -- {quote(self.part)}")
        await replace(self.remote, self.final, self.part)
        return False

    async def send(self) -> None:
        """Create or repair ``.part``, verify it and rename it into place."""
        await self.remote.sftp.makedirs(self.part, exist_ok=True)
        started = time.monotonic()
        remote = await self.listing(self.part)
        self.stats.verify_seconds += time.monotonic() - started
        plan = plan_tree(self.local, remote)
        if remote:
            self.log("info", f"resuming {self.final}: {len(plan.uploads)} of {self._files()} files "
                             f"({plan.upload_bytes / 1e6:.1f} MB) still to send")
        started = time.monotonic()
        await self.apply(plan)
        self.stats.transfer_seconds += time.monotonic() - started
        started = time.monotonic()
        remote = await self.listing(self.part)
        fixes = mode_fixes(self.local, remote)
        for mode, paths in fixes.items():
            await self.remote.run(f"cd -- {quote(self.part)} && xargs -0r chmod {mode:o} --", nul_joined(paths))
        if fixes:  # contents were just hashed; only the modes need looking at again
            digests = {e.path: e.digest for e in remote if e.kind == "f"}
            remote = [
                Entry(e.path, e.kind, e.mode, digests.get(e.path, ""), e.size) if e.kind == "f" else e
                for e in await self.listing(self.part, hashes=False)
            ]
        left = plan_tree(self.local, remote)
        self.stats.verify_seconds += time.monotonic() - started
        if not left.empty:
            self.stats.discarded += 1
            raise CorruptTransfer(f"the copy at {self.part} differs from the image in {_count(left)} entries")
        await replace(self.remote, self.part, self.final)

    async def apply(self, plan: TreePlan) -> None:
        part = self.part
        if plan.remove:
            await self.remote.run(f"cd -- {quote(part)} && xargs -0r rm -rf --", nul_joined(plan.remove))
        if plan.mkdirs:
            await self.remote.run(f"cd -- {quote(part)} && xargs -0r mkdir -p --", nul_joined(plan.mkdirs))
        total = plan.upload_bytes
        done = 0
        self.progress(0, total)

        async def link(entry: Entry) -> int:
            await self.remote.sftp.symlink(encode(entry.digest), encode(join(part, entry.path)))
            return 0

        async def upload(entry: Entry) -> int:
            await self._upload(entry)
            return entry.size

        def sent(size: int) -> None:
            nonlocal done
            done += size
            self.stats.sent += size
            self.stats.files += 1
            self.progress(done, total)

        await run_bounded(plan.uploads, upload, self.slots, sent)
        await run_bounded(plan.links, link, self.slots)

    async def _upload(self, entry: Entry) -> None:
        path = self.source.path / entry.path
        target = encode(join(self.part, entry.path))
        attrs = asyncssh.SFTPAttrs(permissions=entry.mode)
        piece = piece_size(self.remote.sftp)
        with open(path, "rb") as local:
            async with self.remote.sftp.open(target, "wb", attrs, encoding=None, block_size=DIRECT) as handle:
                offset = 0
                while True:
                    if entry.size > SMALL:
                        block = await asyncio.to_thread(local.read, self.chunk)
                    else:
                        block = local.read(self.chunk)
                    if not block:
                        break
                    await write_all(handle, block, offset, piece)
                    offset += len(block)

    def _files(self) -> int:
        return sum(1 for e in self.local if e.kind == "f")


def _count(plan: TreePlan) -> int:
    return len(plan.remove) + len(plan.mkdirs) + len(plan.uploads) + len(plan.links) + len(plan.chmods)
