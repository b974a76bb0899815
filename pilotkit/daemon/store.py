"""Durable state: SQLite in WAL mode, written by one dedicated thread.

The event loop never touches SQLite. Writes are handed to the writer thread, which
groups whatever has arrived into one transaction (group commit): a burst of thousands of
task events a second costs a few commits, not thousands. A plain :meth:`Store.write`
waits up to :attr:`Store.LINGER` for company; :meth:`Store.commit` wakes the writer at
once and returns only when its change (and everything queued before it) is committed:
submits, cancels and pilot state changes go that way. Reads run on a second connection
in their own thread (WAL lets them proceed while the writer commits).

The database refuses to live on a network filesystem (NFS, Lustre, GPFS...): SQLite's
locking and WAL's shared memory are not reliable there. WAL is tested with a real write
at start-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import PilotkitError
from .migrations import migrations

log = logging.getLogger("pilotkit.daemon.store")

T = TypeVar("T")
Params = Sequence[Any]
WriteFn = Callable[[sqlite3.Connection], None]

NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs", "ceph", "cephfs",
    "glusterfs", "fuse.glusterfs", "fuse.sshfs", "afs", "panfs", "pvfs2", "orangefs",
    "fuse.beegfs", "9p", "fuse.cephfs", "davfs", "fuse.s3fs", "wekafs", "quobyte",
})


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_of(path: Path, mounts_text: str) -> tuple[str, str]:
    """(mount point, filesystem type) of the mount holding ``path`` (resolved)."""
    target = str(path.resolve())
    best = ("/", "unknown")
    best_len = -1
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point, fstype = _unescape(parts[1]), parts[2]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best_len:  # the later of equal mounts shadows the earlier
            best, best_len = (point, fstype), len(point)
    return best


def check_local_filesystem(directory: Path, mounts: Path = Path("/proc/mounts")) -> None:
    """Raise when ``directory`` is on a network filesystem."""
    try:
        text = mounts.read_text()
    except OSError:
        return  # no mount table (not Linux): nothing to check against
    point, fstype = mount_of(directory, text)
    if fstype in NETWORK_FILESYSTEMS or fstype.startswith("nfs"):
        raise PilotkitError(
            f"the state database cannot live in {directory}: it is on {fstype} (mounted at {point}), "
            "a network filesystem where SQLite's locking and WAL are unreliable; "
            "set XDG_STATE_HOME to a local directory"
        )


class _Op:
    __slots__ = ("fn", "future", "params", "sql")

    def __init__(
        self,
        sql: str | None,
        params: Params,
        fn: WriteFn | None,
        future: asyncio.Future[None] | None,
    ) -> None:
        self.sql = sql
        self.params = params
        self.fn = fn
        self.future = future


class Store:
    """The daemon's SQLite database (see the module docstring)."""

    LINGER = 0.005
    """Seconds a plain write waits for others to share its transaction."""
    BACKLOG_WARNING = 100_000
    """Queued writes that mean the disk cannot keep up (logged once per episode)."""

    def __init__(self, path: Path, *, mounts: Path = Path("/proc/mounts")) -> None:
        self.path = path
        self._mounts = mounts
        self._cond = threading.Condition()
        self._ops: list[_Op] = []
        self._urgent = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pilotkit-db-read")
        self._read_db: sqlite3.Connection | None = None
        self.migrated: list[str] = []
        self.commits = 0

    # ------------------------------------------------------------------ open / close

    async def open(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(check_local_filesystem, self.path.parent, self._mounts)
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._writer, args=(ready,), name="pilotkit-db-write", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(ready, loop=loop)
        await loop.run_in_executor(self._reader, self._open_reader)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True, timeout=10.0)
        db.execute("PRAGMA busy_timeout = 10000")
        return db

    def _open_writer(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.Error as exc:
            raise PilotkitError(f"cannot open the state database {self.path}: {exc}") from None
        if str(mode).lower() != "wal":
            db.close()
            raise PilotkitError(
                f"the state database {self.path} cannot use WAL mode (journal_mode is {mode}); "
                "put XDG_STATE_HOME on a local filesystem"
            )
        db.execute("PRAGMA synchronous = FULL")
        try:  # a real write, through the WAL, before anything else relies on it
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE IF NOT EXISTS _probe (t REAL)")
            db.execute("INSERT INTO _probe VALUES (julianday('now'))")
            db.execute("DELETE FROM _probe")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.close()
            raise PilotkitError(
                f"the state database {self.path} does not work in WAL mode ({exc}); "
                "put XDG_STATE_HOME on a local filesystem"
            ) from None
        self.migrated = migrations.apply(db)
        if self.migrated:
            log.info("state database %s: applied %s", self.path, ", ".join(self.migrated))
        os.chmod(self.path, 0o600)
        return db

    def _open_reader(self) -> None:
        self._read_db = self._connect()
        self._read_db.execute("PRAGMA query_only = 1")

    async def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._read_db is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._reader, self._read_db.close)
            self._read_db = None
        self._reader.shutdown(wait=False)

    # ------------------------------------------------------------------ writing

    def write(self, sql: str, params: Params = (), *, urgent: bool = False) -> None:
        """Queue a write; committed within a few milliseconds (at once if ``urgent``)."""
        self._put(_Op(sql, params, None, None), urgent)

    def write_fn(self, fn: WriteFn, *, urgent: bool = False) -> None:
        """Queue a function to run with the writer's connection, inside its transaction.
        It may do file I/O too (the pilot log is appended this way)."""
        self._put(_Op(None, (), fn, None), urgent)

    async def commit(self, sql: str | None = None, params: Params = ()) -> None:
        """Queue a write (or nothing: a barrier) and wait until it is committed, with
        everything queued before it. Raises if the write fails."""
        assert self._loop is not None, "store not open"
        future: asyncio.Future[None] = self._loop.create_future()
        self._put(_Op(sql, params, None, future), True)
        await future

    async def barrier(self) -> None:
        await self.commit()

    def _put(self, op: _Op, urgent: bool) -> None:
        with self._cond:
            if self._closing and self._thread is None:
                raise RuntimeError("store closed")
            wake = not self._ops or (urgent and not self._urgent)
            self._ops.append(op)
            if len(self._ops) == self.BACKLOG_WARNING:
                log.warning("%d writes wait for the state database: the disk is not keeping up", len(self._ops))
            if urgent:
                self._urgent = True
            if wake:
                self._cond.notify()

    def _writer(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            db = self._open_writer()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while True:
                with self._cond:
                    while not self._ops and not self._closing:
                        self._cond.wait()
                    if not self._urgent and not self._closing:
                        self._cond.wait(self.LINGER)
                    ops, self._ops = self._ops, []
                    self._urgent = False
                    closing = self._closing
                if ops:
                    self._apply(db, ops)
                if closing:
                    with self._cond:
                        if not self._ops:
                            break
        finally:
            db.close()

    def _apply(self, db: sqlite3.Connection, ops: list[_Op]) -> None:
        try:
            db.execute("BEGIN")
            self._run_all(db, ops)
            db.execute("COMMIT")
            self.commits += 1
        except Exception:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for op in ops:  # one bad write must not take the others with it
                try:
                    db.execute("BEGIN")
                    self._run_one(db, op)
                    db.execute("COMMIT")
                except Exception as exc:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    log.error("state database write failed: %s (%s)", exc, op.sql or op.fn)
                    self._resolve(op, exc)
                else:
                    self._resolve(op, None)
            return
        for op in ops:
            self._resolve(op, None)

    def _run_all(self, db: sqlite3.Connection, ops: list[_Op]) -> None:
        i = 0
        while i < len(ops):
            op = ops[i]
            if op.sql is None:
                self._run_one(db, op)
                i += 1
                continue
            j = i + 1
            while j < len(ops) and ops[j].sql == op.sql and ops[j].fn is None:
                j += 1
            if j - i == 1:
                db.execute(op.sql, op.params)
            else:
                db.executemany(op.sql, [o.params for o in ops[i:j]])
            i = j

    @staticmethod
    def _run_one(db: sqlite3.Connection, op: _Op) -> None:
        if op.fn is not None:
            op.fn(db)
        elif op.sql is not None:
            db.execute(op.sql, op.params)

    def _resolve(self, op: _Op, error: Exception | None) -> None:
        future = op.future
        if future is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(_settle, future, error)

    # ------------------------------------------------------------------ reading

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the read connection, in the reader thread."""
        loop = asyncio.get_running_loop()

        def call() -> T:
            assert self._read_db is not None, "store not open"
            return fn(self._read_db)

        return await loop.run_in_executor(self._reader, call)

    async def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return await self.read(lambda db: db.execute(sql, params).fetchall())


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
