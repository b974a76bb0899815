"""The ``edge-sync`` stager: copy a local image to the site's cache and hand over that copy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, ClassVar

from pilotkit.api import (
    Log,
    PilotContext,
    PilotkitError,
    ResolvedSpec,
    SpecProblem,
    StagedImage,
    Stager,
    import_asyncssh,
    parse_duration,
    parse_size,
)

from .cache import Layout, RemoteCache
from .filesync import FileSync, Stats
from .lease import LeaseKeeper
from .options import EdgeSyncOptions
from .progress import Progress
from .slots import Slots
from .source import Source, scan, source_path
from .ssh import Remote, describe, destination, open_remote, retryable
from .treesync import TreeSync

if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh = import_asyncssh()

BACKOFF = (0.5, 1.0, 2.0, 5.0)


class EdgeSyncStager(Stager):
    """Copies ``sync:///path/image`` from this machine to ``<cache>/sha256/<digest>`` over SSH.

    The copy is content-addressed, resumed after a dropped connection, verified with
    SHA-256 before use, and marked in use (a lease) while the pilot runs so that the
    cache's LRU eviction leaves it alone.
    """

    id = "edge-sync"
    description = "copy a local image to a site's shared-filesystem cache over SSH"
    schemes: ClassVar[tuple[str, ...]] = ("sync",)
    Options = EdgeSyncOptions

    options: EdgeSyncOptions

    def __init__(self, options: EdgeSyncOptions) -> None:
        super().__init__(options)
        self.stats = Stats()
        self.lease: LeaseKeeper | None = None

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        problems = []
        image = spec.spec.image
        if image is not None and not image.ref.startswith("sync://"):
            problems.append(SpecProblem("image.ref", "edge-sync takes sync:// references (sync:///path/image.sif)"))
        options = spec.stager_options
        if isinstance(options, EdgeSyncOptions):
            if not PurePosixPath(options.cache).is_absolute():
                problems.append(SpecProblem("image.cache", "expected an absolute path on the remote side"))
            try:
                destination(options)
            except PilotkitError as exc:
                problems.append(SpecProblem("image.host", str(exc)))
        return problems

    # ------------------------------------------------------------------ staging

    async def stage(self, ref: str, ctx: PilotContext) -> StagedImage:
        self.stats = Stats()
        base = ctx.spec.base_dir if isinstance(getattr(ctx, "spec", None), ResolvedSpec) else Path.cwd()
        source = await self._scan(source_path(ref, base), ref, ctx)
        layout = Layout(self.options.cache)
        final = layout.final(source.digest, source.format)
        label = destination(self.options).label
        attempts = self.options.retries + 1
        connected = False
        for attempt in range(1, attempts + 1):
            self.stats.attempts = attempt
            try:
                remote = await open_remote(self.options)
                connected = True
                async with remote:
                    await self._sync(remote, layout, source, final, ref, ctx)
                break
            except asyncssh.SFTPError as exc:
                if retryable(exc):
                    await self._retry(exc, attempt, attempts, connected, source, label, final, ctx)
                    continue
                raise PilotkitError(f"edge-sync: SFTP on {label} failed: {exc.reason}") from None
            except Exception as exc:
                if not retryable(exc):
                    raise
                await self._retry(exc, attempt, attempts, connected, source, label, final, ctx)
        ttl = parse_duration(self.options.lease_ttl)
        self.lease = LeaseKeeper(self.options, layout, source.digest, ctx.pilot_id, ttl,
                                 lambda level, text: self._log(ctx, level, text))
        self.lease.start()
        what = "verified cached copy" if self.stats.reused else f"sent {self.stats.sent / 1e6:.1f} MB"
        self._log(ctx, "info", f"image {ref}: {label}:{final} ({source.format}, {what})")
        return StagedImage(ref=ref, path=Path(final), format=source.format, digest=f"sha256:{source.digest}")

    async def _retry(
        self, exc: BaseException, attempt: int, attempts: int, connected: bool,
        source: Source, label: str, final: str, ctx: PilotContext,
    ) -> None:  # fmt: skip
        """Wait before the next attempt, or raise the one-line error when none is left."""
        if attempt == attempts:
            if not connected:
                raise PilotkitError(f"edge-sync: cannot connect to {label}: {describe(exc)} "
                                    f"({attempt} attempt(s))") from None
            raise PilotkitError(
                f"edge-sync: copying {source.path} to {label}:{final} failed after {attempt} "
                f"attempt(s): {describe(exc)}; staging again resumes it"
            ) from None
        doing = "reconnecting to resume" if connected else "trying again"
        self._log(ctx, "warn", f"{describe(exc)} ({label}); {doing} (attempt {attempt + 1} of {attempts})")
        await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF)) - 1])

    async def release(self) -> None:
        """Stop marking the image in use (it becomes evictable once unused)."""
        if self.lease is not None:
            await self.lease.stop()
            self.lease = None

    async def _scan(self, path: Path, ref: str, ctx: PilotContext) -> Source:
        loop = asyncio.get_running_loop()
        progress: Progress | None = None
        done = 0

        def total(size: int) -> None:
            nonlocal progress
            progress = Progress(ctx.emit, ctx.pilot_id, ref, size, "hashing")
            progress.update(0)

        def report(length: int) -> None:
            nonlocal done
            done += length
            if progress is not None:
                progress.update(done)

        def report_soon(length: int) -> None:
            loop.call_soon_threadsafe(report, length)

        def total_soon(size: int) -> None:
            loop.call_soon_threadsafe(total, size)

        started = time.monotonic()
        source = await asyncio.to_thread(scan, path, report_soon, total_soon)
        self.stats.hash_seconds = time.monotonic() - started
        for skipped in source.skipped[:5]:
            self._log(ctx, "warn", f"image {path}: {skipped} is not a file, directory or link; not copied")
        return source

    async def _sync(
        self, remote: Remote, layout: Layout, source: Source, final: str, ref: str, ctx: PilotContext
    ) -> None:
        cache = RemoteCache(remote, layout, parse_duration(self.options.lease_ttl))
        await cache.ensure()
        await cache.take_lease(source.digest, ctx.pilot_id)
        slots = Slots(self.options.max_parallel)
        progress: Progress | None = None

        def report(done: int, total: int) -> None:
            nonlocal progress
            if progress is None or progress.total != total:
                progress = Progress(ctx.emit, ctx.pilot_id, ref, total, f"copying to {remote.label}")
            progress.update(done)

        def log(level: str, text: str) -> None:
            self._log(ctx, level, text)

        kind = TreeSync if source.format == "dir" else FileSync
        sync = kind(remote, source, final, slots=slots, chunk=parse_size(self.options.chunk_size),
                    stats=self.stats, progress=report, log=log)
        try:
            if await sync.cached():
                self.stats.reused = True
                return
            if self.options.cache_limit is not None:
                await cache.evict(parse_size(self.options.cache_limit), source.size, log)
            await sync.send()
        finally:
            self.stats.peak_parallel = max(self.stats.peak_parallel, slots.peak)

    def _log(self, ctx: PilotContext, level: str, message: str) -> None:
        ctx.emit(Log(pilot=ctx.pilot_id, level=level, message=message, source=self.id))
