"""Keeping an image marked in use while the pilot runs.

The lease file is rewritten every third of the lease TTL over a short-lived SSH
connection; a pilot that dies simply stops renewing it, and after the TTL its image
may be evicted again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from .cache import Layout, RemoteCache
from .options import EdgeSyncOptions
from .ssh import open_remote

_running: set[asyncio.Task[None]] = set()
"""Renewal tasks, kept referenced so they are not collected while they run."""


class LeaseKeeper:
    """Renews ``<cache>/leases/<digest>.<pilot>`` until :meth:`stop`."""

    def __init__(
        self, options: EdgeSyncOptions, layout: Layout, digest: str, pilot: str, ttl: float,
        log: Callable[[str, str], None],
    ) -> None:  # fmt: skip
        self.options = options
        self.layout = layout
        self.digest = digest
        self.pilot = pilot
        self.ttl = ttl
        self.log = log
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._renew())
            _running.add(self._task)
            self._task.add_done_callback(_running.discard)

    async def _renew(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.ttl / 3)
            try:
                await asyncio.wait_for(self._write(), self.ttl)
            except Exception as exc:  # try again next round
                if self._stopping:  # a cancellation that the SSH library turned into an error
                    return
                self.log("warn", f"renewing the lease on {self.digest[:12]} failed: {exc}")

    async def _write(self) -> None:
        async with await open_remote(self.options) as remote:
            await RemoteCache(remote, self.layout, self.ttl).take_lease(self.digest, self.pilot)

    async def stop(self, drop: bool = True) -> None:
        """Stop renewing; with ``drop``, remove the lease so the image may be evicted."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 10)
            self._task = None
        if drop:
            try:
                await asyncio.wait_for(self._drop(), 60)
            except Exception as exc:  # it expires anyway
                self.log("warn", f"removing the lease on {self.digest[:12]} failed: {exc}")

    async def _drop(self) -> None:
        async with await open_remote(self.options) as remote:
            await RemoteCache(remote, self.layout, self.ttl).drop_lease(self.digest, self.pilot)
