"""Pilot records: what the daemon keeps about each pilot, and their persistence.

Every pilot has a :class:`PilotRecord`, mirrored in the ``pilots`` table; its task
attempts are rows of ``attempts``. :class:`Records` holds the records in memory and is
the only part that reads or writes those two tables (through :class:`Store`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..protocol import Counts
from ..types import NodeInfo
from ..vocab import PILOT_LOG, RESULTS_FILE, TERMINAL_STATES
from .faults import UnknownPilot
from .store import Store

TERMINAL = TERMINAL_STATES
"""Pilot states after which a pilot does not run again (unless retried)."""
FAILED_OUTCOMES = frozenset({"failed", "timeout", "spawn-error", "lost", "killed"})
"""How an attempt ends when its task counts as failed."""

_COLUMNS = (
    "id", "name", "provider", "state", "reason", "spec", "spec_path", "workdir", "created", "updated",
    "ended", "job_id", "allocation", "walltime_end", "nodes", "cores", "gpus", "progress", "run",
    "crashes", "desired", "attached", "profile",
)
_nodes_decoder = msgspec.json.Decoder(list[NodeInfo])
_progress_decoder = msgspec.json.Decoder(dict[str, Counts])


@dataclass
class PilotRecord:
    """What the daemon keeps about one pilot (a row of ``pilots``)."""

    id: str
    name: str
    provider: str
    state: str
    spec: str
    spec_path: str | None
    workdir: str
    created: float
    updated: float
    reason: str | None = None
    ended: float | None = None
    job_id: str | None = None
    allocation: str | None = None
    walltime_end: float | None = None
    nodes: list[NodeInfo] = field(default_factory=list)
    cores: int = 0
    gpus: int = 0
    progress: dict[str, Counts] = field(default_factory=dict)
    run: int = 1
    crashes: int = 0
    desired: str | None = None
    """``drain`` or ``cancel`` once asked (durable: honoured after a restart)."""
    attached: bool = True
    profile: str | None = None
    """The profile given with ``submit --profile`` (the spec is parsed with it again
    after a restart)."""

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> PilotRecord:
        values = dict(zip(_COLUMNS, row, strict=True))
        values["nodes"] = _nodes_decoder.decode(values["nodes"] or "[]")
        values["progress"] = _progress_decoder.decode(values["progress"]) if values["progress"] else {}
        values["attached"] = bool(values["attached"])
        return cls(**values)

    def row(self) -> tuple[Any, ...]:
        values = dict(self.__dict__)
        values["nodes"] = msgspec.json.encode(self.nodes).decode()
        values["progress"] = msgspec.json.encode(self.progress).decode()
        values["attached"] = int(self.attached)
        return tuple(values[c] for c in _COLUMNS)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def results_path(self) -> Path:
        return Path(self.workdir) / RESULTS_FILE

    @property
    def log_path(self) -> Path:
        return Path(self.workdir) / PILOT_LOG


Attempt = tuple[str, str, int, str | None, float | None, float | None, str, int | None]
"""(task, group, attempt, node, started, ended, status, exit code): a row of ``attempts``."""

_INSERT_PILOT = f"INSERT OR REPLACE INTO pilots ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_ATTEMPT_STARTED = (
    "INSERT OR REPLACE INTO attempts (pilot, task, attempt, grp, run, node, started, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, 'running')"
)
_ATTEMPT_FINISHED = (
    "UPDATE attempts SET ended = ?, status = ?, exit_code = ?, duration = ?, final = ? "
    "WHERE pilot = ? AND task = ? AND attempt = ?"
)


class Records:
    """Every pilot record of this daemon, by id, and their rows in the database.

    ``save`` commits before it returns (for what a client is told has happened); the
    ``write_*`` methods queue a write for the store's next group commit (``urgent``:
    committed at once)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_id: dict[str, PilotRecord] = {}

    async def load(self) -> None:
        rows = await self.store.query(f"SELECT {', '.join(_COLUMNS)} FROM pilots ORDER BY created")
        for row in rows:
            record = PilotRecord.from_row(row)
            self._by_id[record.id] = record

    # ------------------------------------------------------------------ in memory

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[PilotRecord]:
        return iter(list(self._by_id.values()))

    def __contains__(self, pilot_id: object) -> bool:
        return pilot_id in self._by_id

    def find(self, pilot_id: str) -> PilotRecord | None:
        """The record with exactly this id."""
        return self._by_id.get(pilot_id)

    def lookup(self, pilot_id: str) -> PilotRecord:
        """The record with this id, or the only one whose id starts with it."""
        record = self._by_id.get(pilot_id)
        if record is not None:
            return record
        matches = [r for r in self._by_id.values() if r.id.startswith(pilot_id)] if pilot_id else []
        if len(matches) == 1:
            return matches[0]
        raise UnknownPilot(pilot_id, len(matches))

    async def add(self, record: PilotRecord) -> None:
        await self.save(record)
        self._by_id[record.id] = record

    # ------------------------------------------------------------------ pilots table

    async def save(self, record: PilotRecord) -> None:
        await self.store.commit(_INSERT_PILOT, record.row())

    async def save_desired(self, record: PilotRecord) -> None:
        await self.store.commit("UPDATE pilots SET desired = ? WHERE id = ?", (record.desired, record.id))

    def write_state(self, record: PilotRecord) -> None:
        self.store.write(
            "UPDATE pilots SET state = ?, reason = ?, updated = ?, ended = ? WHERE id = ?",
            (record.state, record.reason, record.updated, record.ended, record.id),
            urgent=True,
        )

    def write_allocation(self, record: PilotRecord) -> None:
        self.store.write(
            "UPDATE pilots SET job_id = ?, walltime_end = ?, allocation = ? WHERE id = ?",
            (record.job_id, record.walltime_end, record.allocation, record.id),
            urgent=True,
        )

    def write_nodes(self, record: PilotRecord) -> None:
        self.store.write(
            "UPDATE pilots SET nodes = ?, cores = ?, gpus = ? WHERE id = ?",
            (msgspec.json.encode(record.nodes).decode(), record.cores, record.gpus, record.id),
        )

    def write_progress(self, record: PilotRecord) -> None:
        self.store.write(
            "UPDATE pilots SET progress = ? WHERE id = ?",
            (msgspec.json.encode(record.progress).decode(), record.id),
        )

    # ------------------------------------------------------------------ attempts table

    def write_attempt_started(
        self, record: PilotRecord, task: str, attempt: int, group: str, node: str | None, t: float
    ) -> None:
        self.store.write(_ATTEMPT_STARTED, (record.id, task, attempt, group, record.run, node, t))

    def write_attempt_finished(
        self, pilot_id: str, task: str, attempt: int, *, t: float | None, status: str, exit_code: int | None,
        duration: float | None, final: bool,
    ) -> None:
        self.store.write(_ATTEMPT_FINISHED, (t, status, exit_code, duration, int(final), pilot_id, task, attempt))

    async def attempt_numbers(self, pilot_id: str) -> dict[str, int]:
        """The highest attempt number of each task."""
        rows = await self.store.query(
            "SELECT task, max(attempt) FROM attempts WHERE pilot = ? GROUP BY task", (pilot_id,)
        )
        return {task: int(attempt) for task, attempt in rows}

    async def open_attempts(self, pilot_id: str) -> list[tuple[str, int, str, str | None]]:
        """(task, attempt, group, node) of the attempts with no end recorded."""
        rows = await self.store.query(
            "SELECT task, attempt, grp, node FROM attempts WHERE pilot = ? AND ended IS NULL", (pilot_id,)
        )
        return [(task, int(attempt), group, node) for task, attempt, group, node in rows]

    async def recent_attempts(self, pilot_id: str, limit: int = 20) -> list[Attempt]:
        """The latest attempts, newest first."""
        rows = await self.store.query(
            "SELECT task, grp, attempt, node, started, ended, status, exit_code FROM attempts "
            "WHERE pilot = ? ORDER BY started DESC LIMIT ?",
            (pilot_id, limit),
        )
        return [tuple(row) for row in rows]

    async def last_attempts(self, pilot_id: str) -> list[Attempt]:
        """The last attempt of each task."""
        rows = await self.store.query(
            "SELECT task, grp, max(attempt), node, started, ended, status, exit_code FROM attempts "
            "WHERE pilot = ? GROUP BY task",
            (pilot_id,),
        )
        return [tuple(row) for row in rows]

    async def all_attempts(self, pilot_id: str, limit: int) -> tuple[int, list[Attempt]]:
        """How many attempts the pilot has, and the latest ``limit`` of them, oldest first."""
        count = await self.store.query("SELECT count(*) FROM attempts WHERE pilot = ?", (pilot_id,))
        rows = await self.store.query(
            "SELECT task, grp, attempt, node, started, ended, status, exit_code FROM attempts "
            "WHERE pilot = ? ORDER BY started DESC LIMIT ?",
            (pilot_id, max(0, limit)),
        )
        return int(count[0][0]) if count else 0, [tuple(row) for row in reversed(rows)]

    async def last_attempt(self, pilot_id: str, task: str) -> int | None:
        """The number of ``task``'s last recorded attempt (after pending writes)."""
        await self.store.barrier()
        rows = await self.store.query(
            "SELECT max(attempt) FROM attempts WHERE pilot = ? AND task = ?", (pilot_id, task)
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None
