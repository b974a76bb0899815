"""Recovery: running a pilot again in its workdir, after a daemon restart or a retry.

After a restart (:meth:`Recovery.recover`), a local pilot that had not finished is run
again in the same workdir with the same id, resuming from its results file and the
recorded attempts; attempts that were running are recorded as ``lost`` and their tasks
run again with the next attempt number. A pilot that was asked to drain or cancel ends
instead. A batch pilot is handed to :func:`pilotkit.daemon.reattach.reattach`.

:meth:`Recovery.retry` runs a finished pilot again, keeping its successful results.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..errors import PilotkitError
from ..events import TaskFinished
from ..plugins import Plugins
from ..scheduler import Resume
from .events import EventRecorder
from .faults import Refused
from .reattach import reattach
from .records import FAILED_OUTCOMES, PilotRecord, Records
from .runs import LivePilot, Runs
from .workdir import kill_orphans, latest_results, launched_attempts, recorded_attempts, repair_results

log = logging.getLogger("pilotkit.daemon.recovery")


class Recovery:
    def __init__(self, records: Records, recorder: EventRecorder, runs: Runs, plugins: Plugins) -> None:
        self.records = records
        self.recorder = recorder
        self.runs = runs
        self.plugins = plugins

    async def recover(self, crashed: bool) -> None:
        """Resume or re-attach every pilot that had not finished (``crashed``: the
        previous daemon did not shut down cleanly)."""
        for record in self.records:
            if record.terminal:
                continue
            try:
                if record.provider == "local":
                    await self._resume_local(record, crashed)
                else:
                    await self._reattach(record, crashed)
            except Exception as exc:
                log.exception("recovering pilot %s failed", record.id)
                await self.runs.finish(record, "failed", f"could not be resumed: {exc}")

    async def _resume_local(self, record: PilotRecord, crashed: bool) -> None:
        pilot_log = self.recorder.pilot_log
        results = await asyncio.to_thread(repair_results, record.results_path, record.log_path)
        started = await asyncio.to_thread(recorded_attempts, Path(record.workdir))
        killed = await asyncio.to_thread(kill_orphans, Path(record.workdir))
        if killed:
            pilot_log(record, "warn", f"killed {killed} process(es) left running by the previous daemon")
        latest = latest_results(results)
        lost = 0
        for task, attempt, group, node in await self.records.open_attempts(record.id):
            result = latest.get(task)
            if result is not None and result.attempts == attempt and result.status != "cancelled":
                # It finished; the daemon died before recording that.
                self.records.write_attempt_finished(
                    record.id, task, attempt, t=result.end, status=result.status, exit_code=result.exit_code,
                    duration=result.duration, final=True,
                )
                continue
            lost += 1
            self.recorder.record(record, TaskFinished(
                pilot=record.id, task=task, group=group, attempt=attempt, node=node or "?",
                status="lost", final=False,
            ))
        if crashed:
            record.crashes += 1
        why = "crashed" if crashed else "stopped"
        if record.desired == "cancel":
            await self.runs.finish(record, "cancelled", f"cancelled (the daemon {why} while it was stopping)")
            return
        if record.desired == "drain":
            failed = sum(1 for r in latest.values() if r.status in FAILED_OUTCOMES)
            state = "failed" if failed else "done"
            await self.runs.finish(record, state, f"drained (the daemon {why} while it was draining)")
            return
        attempts = await self.records.attempt_numbers(record.id)
        # Task events reach the database in groups every few milliseconds, so a crash can
        # lose the start of an attempt; its files in the task dir cannot be lost.
        done = {t for t, r in latest.items() if r.status != "cancelled"}
        launched = await asyncio.to_thread(launched_attempts, Path(record.workdir), done)
        for task, n in started.items():
            if task not in done:
                launched[task] = max(n, launched.get(task, 0))
        unrecorded = sorted(f"{t} #{n}" for t, n in launched.items() if n > attempts.get(t, 0))
        for task, n in launched.items():
            attempts[task] = max(n, attempts.get(task, 0))
        if unrecorded:
            lost += len(unrecorded)
            pilot_log(record, "warn", f"attempts started but not recorded before the crash, lost: "
                      f"{', '.join(unrecorded)}")
        pilot_log(
            record, "info",
            f"resuming after the daemon {why}: {len(done)} task(s) finished, {lost} lost and re-queued",
        )
        await self.runs.start(record, Resume(results=latest, attempts=attempts), new_run=True)

    async def _reattach(self, record: PilotRecord, crashed: bool) -> None:
        if crashed:
            record.crashes += 1
        try:
            provider_cls = self.plugins.provider(record.provider)
        except PilotkitError:
            provider_cls = None
        resume = None
        if provider_cls is not None and record.job_id is not None:
            resume = await self._recorded(record)
        pilot, flag, reason = await reattach(record, provider_cls, self.plugins, resume)
        record.reason = reason
        record.attached = pilot is not None
        await self.records.save(record)
        if pilot is not None:
            self.recorder.pilot_log(record, "info", reason)
            self.runs.launch(LivePilot(record, pilot, flag))
        else:
            log.info("pilot %s: %s", record.id, reason)

    async def _recorded(self, record: PilotRecord) -> Resume:
        """What a batch pilot's earlier run recorded: its results and attempt numbers
        (the attempts its agents kept are added when they rejoin)."""
        results = await asyncio.to_thread(repair_results, record.results_path, record.log_path)
        latest = latest_results(results)
        attempts = await self.records.attempt_numbers(record.id)
        done = {t for t, r in latest.items() if r.status != "cancelled"}
        launched = await asyncio.to_thread(launched_attempts, Path(record.workdir), done)
        for task, n in launched.items():
            attempts[task] = max(n, attempts.get(task, 0))
        return Resume(results=latest, attempts=attempts)

    async def retry(self, record: PilotRecord, failed: bool) -> int:
        """Run a finished pilot again: its unfinished tasks, and (``failed``) its failed
        ones. Returns how many tasks were queued again."""
        return await self.retry_tasks(record, failed, None)

    async def retry_tasks(self, record: PilotRecord, failed: bool, tasks: list[str] | None) -> int:
        """:meth:`retry`, re-running only ``tasks`` of the failed tasks (None: all of them);
        each must have failed."""
        results = await asyncio.to_thread(repair_results, record.results_path, record.log_path)
        latest = latest_results(results)
        again = [t for t, r in latest.items() if r.status in FAILED_OUTCOMES] if failed else []
        if tasks:
            chosen = set(tasks)
            wrong = sorted(chosen.difference(again))
            if wrong:
                more = f" and {len(wrong) - 10} more" if len(wrong) > 10 else ""
                raise Refused(f"not failed tasks of {record.id}: {', '.join(wrong[:10])}{more}")
            again = [t for t in again if t in chosen]
        for task in again:
            del latest[task]
        unfinished = sum(1 for r in latest.values() if r.status == "cancelled")
        requeued = len(again) + unfinished
        if requeued == 0 and record.state == "done":
            raise Refused(f"nothing to retry: every task of {record.id} succeeded")
        attempts = await self.records.attempt_numbers(record.id)
        self.recorder.pilot_log(
            record, "info", f"retry: {len(again)} failed and {unfinished} unfinished task(s) re-queued"
        )
        await self.runs.start(record, Resume(results=latest, attempts=attempts), new_run=True)
        return requeued
