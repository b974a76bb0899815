"""Copying one image file into the cache: resumable, verified, renamed into place.

Resume design: the file is written to ``<final>.part`` in chunks, several in flight
at once. Because writes complete out of order, the size of the ``.part`` file does
not prove that everything below it arrived (there may be a hole). So a resume record,
``<final>.part.resume``, holds the *committed* offset: every byte below it was
acknowledged by the server. It is one fixed-width line, rewritten in place with a
single write whenever the committed offset has grown by two chunks, through its own
SFTP session so that it does not queue behind the data.

On a new attempt, the committed prefix is hashed on both ends (``head -c N | sha256sum``
remotely, in parallel with the same locally); when the hashes agree the copy goes on
from there, otherwise it starts over. Once every byte is sent, the whole ``.part`` is
hashed remotely (``openssl dgst -sha256``, or ``sha256sum``) and compared with the
local digest; only then is it renamed (atomically) to its final, content-addressed name. A cached final file is
hashed again before each use; one that does not match is removed and sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pilotkit.api import import_asyncssh

from .sftpio import DIRECT, piece_size, write_all
from .slots import Slots, run_bounded
from .source import Source, sha256_file
from .ssh import CorruptTransfer, Remote, quote

if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh = import_asyncssh()

RESUME_MAGIC = "edge-sync-resume 1"
SAVE_EVERY_CHUNKS = 2


class ResumeRecord:
    """``<final>.part.resume``: ``edge-sync-resume 1 <digest> <committed offset>``.

    While a copy runs the record stays open on a second SFTP session and each save is
    one write of a line of constant length at offset 0.
    """

    def __init__(self, remote: Remote, path: str, digest: str) -> None:
        self.remote = remote
        self.path = path
        self.digest = digest
        self._sftp: asyncssh.SFTPClient | None = None
        self._handle: asyncssh.SFTPClientFile | None = None

    def line(self, committed: int) -> bytes:
        return f"{RESUME_MAGIC} {self.digest} {committed:020d}\n".encode()

    async def __aenter__(self) -> ResumeRecord:
        self._sftp = await self.remote.conn.start_sftp_client()
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC
        self._handle = await self._sftp.open(self.path, flags, encoding=None)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Every save was acknowledged when made; a failed close loses nothing.
        with contextlib.suppress(asyncssh.Error, OSError):
            if self._handle is not None:
                await self._handle.close()
        if self._sftp is not None:
            self._sftp.exit()

    async def save(self, committed: int) -> None:
        assert self._handle is not None, "open the record first"
        await self._handle.write(self.line(committed), 0)

    async def read(self) -> int:
        """The committed offset recorded for this digest; 0 when there is none."""
        try:
            async with self.remote.sftp.open(self.path, "r", errors="replace") as handle:
                text = str(await handle.read(4096))
        except asyncssh.SFTPNoSuchFile:
            return 0
        fields = text.split()
        if len(fields) != 4 or " ".join(fields[:2]) != RESUME_MAGIC or fields[2] != self.digest:
            return 0
        return int(fields[3]) if fields[3].isdigit() else 0


@dataclass
class Stats:
    """What one ``stage`` did; read by tests and the benchmark."""

    sent: int = 0
    """Image bytes written to the remote side, over all attempts."""
    resumed_from: int = 0
    """Offset the last resumed file copy went on from (0: none resumed)."""
    reused: bool = False
    """The verified cached copy was used; nothing was sent."""
    discarded: int = 0
    """Cached or partial copies thrown away because their checksum did not match."""
    files: int = 0
    """Files sent (1 for a file image)."""
    attempts: int = 0
    peak_parallel: int = 0
    hash_seconds: float = 0.0
    transfer_seconds: float = 0.0
    verify_seconds: float = 0.0


Log = Callable[[str, str], None]


HASH_FUNCTION = (
    "h() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r; else sha256sum; fi; }; "
)
"""A shell function hashing stdin: OpenSSL where present (several times faster), else coreutils."""


async def remote_sha256(remote: Remote, path: str, *, touch: bool = False, limit: int | None = None) -> str:
    """SHA-256 hex of a remote file (``touch``: also mark it used; ``limit``: a prefix).

    The file is opened by the shell, so a missing one fails the command rather than
    hashing nothing.
    """
    if limit is not None:
        command = f"{HASH_FUNCTION}head -c {int(limit)} < {quote(path)} | h"
    else:
        command = HASH_FUNCTION + (f"touch -c -- {quote(path)} && " if touch else "") + f"h < {quote(path)}"
    out = await remote.run("(set -o pipefail) 2>/dev/null && set -o pipefail; " + command, what="sha256")
    return out.split(b" ", 1)[0].decode("ascii", errors="replace").strip()


async def replace(remote: Remote, source: str, target: str) -> None:
    """Rename atomically, replacing ``target`` (POSIX rename where the server offers it)."""
    try:
        await remote.sftp.posix_rename(source, target)
    except asyncssh.SFTPOpUnsupported:
        await remote.run(f"mv -f -- {quote(source)} {quote(target)}")


async def remove_quietly(remote: Remote, *paths: str) -> None:
    for path in paths:
        try:
            await remote.sftp.remove(path)
        except asyncssh.SFTPNoSuchFile:
            pass


class FileSync:
    """Puts one SIF/squashfs file at ``final`` on the remote side, verified."""

    def __init__(
        self, remote: Remote, source: Source, final: str, *, slots: Slots, chunk: int,
        stats: Stats, progress: Callable[[int, int], None], log: Log,
    ) -> None:  # fmt: skip
        self.remote = remote
        self.source = source
        self.final = final
        self.part = final + ".part"
        self.record = final + ".part.resume"
        self.slots = slots
        self.chunk = chunk
        self.stats = stats
        self.progress = progress
        self.log = log

    async def cached(self) -> bool:
        """Whether a verified copy is already in place; a corrupt one is removed."""
        try:
            await self.remote.sftp.stat(self.final)
        except asyncssh.SFTPNoSuchFile:
            return False
        started = time.monotonic()
        actual = await remote_sha256(self.remote, self.final, touch=True)
        self.stats.verify_seconds += time.monotonic() - started
        if actual == self.source.digest:
            return True
        self.stats.discarded += 1
        self.log("warn", f"cached copy {self.final} fails its checksum (sha256 {actual}): removing it, sending again")
        await remove_quietly(self.remote, self.final)
        return False

    async def send(self) -> None:
        """Copy (or finish copying) the file, verify it and rename it into place."""
        size = self.source.size
        start = await self.resume_point()
        self.stats.resumed_from = start
        self.stats.files = 1
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | (asyncssh.FXF_TRUNC if start == 0 else 0)
        started = time.monotonic()
        fd = os.open(self.source.path, os.O_RDONLY)
        try:
            async with ResumeRecord(self.remote, self.record, self.source.digest) as record:
                await record.save(start)
                async with self.remote.sftp.open(self.part, flags, encoding=None, block_size=DIRECT) as handle:
                    await self._chunks(handle, fd, start, size, record)
                await record.save(size)
        finally:
            os.close(fd)
        self.stats.transfer_seconds += time.monotonic() - started
        started = time.monotonic()
        actual = await remote_sha256(self.remote, self.part)
        self.stats.verify_seconds += time.monotonic() - started
        if actual != self.source.digest:
            self.stats.discarded += 1
            await remove_quietly(self.remote, self.part, self.record)
            raise CorruptTransfer(f"the copy at {self.part} failed its checksum (sha256 {actual})")
        await replace(self.remote, self.part, self.final)
        await remove_quietly(self.remote, self.record)

    async def _chunks(
        self, handle: asyncssh.SFTPClientFile, fd: int, start: int, size: int, record: ResumeRecord
    ) -> None:
        committed = start
        finished: dict[int, int] = {}
        saver: asyncio.Task[None] | None = None
        saved = start
        piece = piece_size(self.remote.sftp)

        async def send_chunk(offset: int) -> tuple[int, int]:
            length = min(self.chunk, size - offset)
            data = await asyncio.to_thread(os.pread, fd, length, offset)
            await write_all(handle, data, offset, piece)
            return offset, len(data)

        def done(result: tuple[int, int]) -> None:
            nonlocal committed, saver, saved
            offset, length = result
            finished[offset] = length
            self.stats.sent += length
            while committed in finished:
                committed += finished.pop(committed)
            self.progress(committed, size)
            if committed - saved >= SAVE_EVERY_CHUNKS * self.chunk and (saver is None or saver.done()):
                saved = committed
                saver = asyncio.ensure_future(record.save(committed))

        self.progress(start, size)
        try:
            await run_bounded(range(start, size, self.chunk), send_chunk, self.slots, done)
        finally:
            if saver is not None:
                await asyncio.gather(saver, return_exceptions=True)

    async def read_record(self) -> int:
        return await ResumeRecord(self.remote, self.record, self.source.digest).read()

    async def resume_point(self) -> int:
        """Where to go on from: the committed offset if its prefix hashes the same on both
        ends, else 0."""
        try:
            attrs = await self.remote.sftp.stat(self.part)
        except asyncssh.SFTPNoSuchFile:
            return 0
        committed = min(await self.read_record(), self.source.size)
        if committed <= 0 or (attrs.size or 0) < committed:
            self.log("info", f"partial copy {self.part} has no usable resume record: starting over")
            return 0
        started = time.monotonic()
        remote_hex, local_hex = await asyncio.gather(
            remote_sha256(self.remote, self.part, limit=committed),
            asyncio.to_thread(sha256_file, self.source.path, committed),
        )
        self.stats.verify_seconds += time.monotonic() - started
        if remote_hex != local_hex:
            self.stats.discarded += 1
            self.log("warn", f"partial copy {self.part} does not match the image's first "
                             f"{committed} bytes: starting over")
            return 0
        self.log("info", f"resuming {self.final} at {committed / 1e6:.1f} of {self.source.size / 1e6:.1f} MB")
        return committed
