"""Resuming a campaign whose process (the daemon, ``pilotkit run``) died: its earlier
allocations, and the tasks their agents finished after its last word."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec

from ..journal import read_journals
from ..spec import ResolvedSpec
from ..types import CarriedAttempt
from ..vocab import JOURNAL_DIR, Outcome
from .records import ALLOCATIONS_DIR, CAMPAIGN_FILE, AllocationRecord, read_status

log = logging.getLogger("pilotkit.campaign")


def earlier_allocations(
    workdir: Path, why: str = "lost: the earlier run died"
) -> tuple[list[AllocationRecord], list[AllocationRecord]]:
    """The allocations ``campaign.json`` lists from before the restart, and those of them
    that had not ended: they ended with the process that ran the campaign (their agents
    stop their tasks once it is gone), ``why``."""
    path = workdir / CAMPAIGN_FILE
    try:
        status = read_status(path)
        died = path.stat().st_mtime
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return [], []
    live = [record for record in status.allocations if record.state != "ended"]
    for record in live:
        record.state, record.ended, record.why = "ended", died, why
    return status.allocations, live


async def ended_after_the_last_word(
    resolved: ResolvedSpec, workdir: Path, live: list[AllocationRecord]
) -> dict[str, CarriedAttempt]:
    """What the allocations ``live`` finished ok after the last word of the process that
    ran the campaign (each an attempt its node agent journaled), once their jobs have
    ended so that nothing more can end. Those tasks are recorded, not run again."""
    provider = resolved.provider_cls(resolved, resolved.provider_options)
    jobs = [r.job_id for r in live if r.job_id and r.provider == resolved.provider_cls.id]
    ends = await asyncio.gather(*(provider.end_job(job_id) for job_id in jobs), return_exceptions=True)
    for job_id, ended in zip(jobs, ends, strict=True):
        if isinstance(ended, BaseException):
            log.warning("%s job %s of the earlier run: %s", resolved.provider_cls.id, job_id, ended)
    carried: dict[str, CarriedAttempt] = {}
    for record in live:
        journals = workdir / ALLOCATIONS_DIR / record.name / JOURNAL_DIR
        for result in await asyncio.to_thread(read_journals, journals):
            if result.status == Outcome.OK:
                carried[result.task_id] = CarriedAttempt(
                    task_id=result.task_id, attempt=result.attempt, node=result.node, start=result.start, exit=result
                )
    return carried
