"""The state database's schema, as append-only named migrations.

Each migration is a function registered in order; its name is recorded in
``_migrations`` once applied, in the same transaction as its changes. Never edit or
reorder a released migration: add a new one. A database that records a migration this
version does not know was written by a newer pilotkit and is refused.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from ..errors import PilotkitError

Migration = Callable[[sqlite3.Connection], None]


class Migrations:
    def __init__(self) -> None:
        self.steps: list[tuple[str, Migration]] = []

    def __call__(self, fn: Migration) -> Migration:
        name = fn.__name__
        if any(name == known for known, _ in self.steps):
            raise ValueError(f"migration {name} registered twice")
        self.steps.append((name, fn))
        return fn

    def applied(self, db: sqlite3.Connection) -> list[str]:
        db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
        return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]

    def apply(self, db: sqlite3.Connection) -> list[str]:
        """Apply what is missing, each in its own transaction; returns their names.
        ``db`` must be in autocommit mode (``isolation_level=None``)."""
        done = self.applied(db)
        known = {name for name, _ in self.steps}
        unknown = [name for name in done if name not in known]
        if unknown:
            raise PilotkitError(
                f"the state database has migrations this pilotkit does not know ({', '.join(unknown)}): "
                "it was written by a newer version"
            )
        ran: list[str] = []
        for name, fn in self.steps:
            if name in done:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                fn(db)
                db.execute("INSERT INTO _migrations (name, applied) VALUES (?, ?)", (name, time.time()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            ran.append(name)
        return ran


migrations = Migrations()


@migrations
def m001_initial(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE pilots (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            provider TEXT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT,
            spec TEXT NOT NULL,
            spec_path TEXT,
            workdir TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            ended REAL,
            job_id TEXT,
            allocation TEXT,
            walltime_end REAL,
            nodes TEXT NOT NULL DEFAULT '[]',
            cores INTEGER NOT NULL DEFAULT 0,
            gpus INTEGER NOT NULL DEFAULT 0,
            progress TEXT,
            run INTEGER NOT NULL DEFAULT 1,
            crashes INTEGER NOT NULL DEFAULT 0,
            desired TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE attempts (
            pilot TEXT NOT NULL,
            task TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            grp TEXT NOT NULL,
            run INTEGER NOT NULL,
            node TEXT,
            started REAL,
            ended REAL,
            status TEXT NOT NULL,
            exit_code INTEGER,
            duration REAL,
            final INTEGER,
            PRIMARY KEY (pilot, task, attempt)
        ) WITHOUT ROWID
        """
    )
    db.execute(
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            pilot TEXT NOT NULL,
            t REAL NOT NULL,
            type TEXT NOT NULL,
            data BLOB NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX events_by_pilot ON events (pilot, seq)")
    db.execute(
        """
        CREATE TABLE daemon_runs (
            id INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            clean INTEGER NOT NULL DEFAULT 0
        )
        """
    )


@migrations
def m002_attempts_by_start(db: sqlite3.Connection) -> None:
    """Recent attempts of a pilot, newest first (``pilot`` detail)."""
    db.execute("CREATE INDEX attempts_by_start ON attempts (pilot, started)")


@migrations
def m003_pilot_attached(db: sqlite3.Connection) -> None:
    """Whether the daemon holds a batch pilot's allocation (False once detached)."""
    db.execute("ALTER TABLE pilots ADD COLUMN attached INTEGER NOT NULL DEFAULT 1")


@migrations
def m004_pilot_profile(db: sqlite3.Connection) -> None:
    """The profile a pilot was submitted with (``submit --profile``), or NULL."""
    db.execute("ALTER TABLE pilots ADD COLUMN profile TEXT")
