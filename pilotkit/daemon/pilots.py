"""The pilots a daemon runs: one coordinator over parts that each do one job.

- :mod:`~pilotkit.daemon.records`: the pilot records and their rows (``pilots``,
  ``attempts``).
- :mod:`~pilotkit.daemon.events`: the event recorder (numbering, storing, fan-out to
  followers, folding into the records).
- :mod:`~pilotkit.daemon.runs`: the live runs (start, follow to the end, stop).
- :mod:`~pilotkit.daemon.recovery`: running a pilot again in its workdir (restart, retry).
- :mod:`~pilotkit.daemon.views`: what ``status``, ``pilot`` and ``tasks`` return.

:class:`PilotManager` wires them together and carries out the calls that change
pilots (submit, drain, cancel, retry). Errors are the domain errors of
:mod:`~pilotkit.daemon.faults`; the dispatcher maps them to protocol errors.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ..errors import PilotkitError, SpecError
from ..pilot import new_pilot_id
from ..plugins import Plugins
from ..protocol import (
    ControlResult,
    MetricSample,
    RetryResult,
    SubmitParams,
    SubmitResult,
    ValidateParams,
    ValidateResult,
)
from ..rundir import earlier_run
from ..spec import ResolvedSpec, parse_spec
from .campaigns import Campaigns
from .events import EventRecorder
from .faults import BadParams, Refused, ShuttingDown, UnknownPilot
from .metrics import MetricsBuffer
from .records import PilotRecord, Records
from .recovery import Recovery
from .runs import LivePilot, Runs
from .store import Store
from .validation import validate
from .views import Views


class PilotManager:
    """Every pilot of this daemon (see the module docstring)."""

    PROGRESS_EVERY = 2.0
    """Seconds between progress snapshots of running pilots in the database."""

    def __init__(self, store: Store, plugins: Plugins, metrics: MetricsBuffer, state_dir: Path) -> None:
        self.plugins = plugins
        self.state_dir = state_dir
        self.records = Records(store)
        self.recorder = EventRecorder(store, self.records, metrics)
        self.runs = Runs(self.records, self.recorder, plugins, metrics)
        self.views = Views(self.records, self.runs, metrics)
        self.runs.on_end = self.views.forget
        self.recovery = Recovery(self.records, self.recorder, self.runs, plugins)
        self.campaigns = Campaigns(plugins, state_dir)

    async def load(self) -> None:
        await self.records.load()
        await self.recorder.load()

    async def recover(self, crashed: bool) -> None:
        await self.recovery.recover(crashed)
        await self.campaigns.recover()

    # ------------------------------------------------------------------ calls

    async def submit(self, params: SubmitParams) -> SubmitResult:
        if self.runs.stopping:
            raise ShuttingDown
        if params.to is not None:
            return await self.campaigns.add(params.to, params)
        try:
            resolved = await asyncio.to_thread(
                parse_spec, params.spec, params.path, self.plugins, profile=params.profile
            )
        except SpecError:
            raise
        except PilotkitError as exc:  # --profile names no profile of the daemon's files
            raise BadParams(exc.message) from None
        if resolved.spec.campaign is not None:
            campaign_id = new_pilot_id(resolved.name)
            workdir = self._workdir(resolved, campaign_id, params.workdir)
            return await self.campaigns.submit(params, resolved, campaign_id, workdir)
        pilot_id = new_pilot_id(resolved.name)
        while pilot_id in self.records:
            pilot_id = new_pilot_id(resolved.name)
        workdir = self._workdir(resolved, pilot_id, params.workdir)
        if await asyncio.to_thread(earlier_run, workdir):
            raise BadParams(
                f"workdir {workdir} holds an earlier run: give another one (or 'pilotkit retry PILOT' "
                "runs that pilot's unfinished and failed tasks again)"
            )
        now = time.time()
        record = PilotRecord(
            id=pilot_id, name=resolved.name, provider=resolved.provider_cls.id, state="new",
            spec=params.spec, spec_path=params.path, workdir=str(workdir), created=now, updated=now,
            profile=params.profile,
        )
        await self.records.add(record)
        await self.runs.start(record, None, new_run=False, resolved=resolved)
        return SubmitResult(pilot=pilot_id, name=record.name, workdir=record.workdir)

    def _workdir(self, resolved: ResolvedSpec, pilot_id: str, given: str | None) -> Path:
        if given:
            path = Path(given)
            if not path.is_absolute():
                raise BadParams(f"workdir must be an absolute path, got '{given}'")
            return path
        configured = resolved.spec.pilot.workdir
        if configured:
            path = Path(configured)
            return path if path.is_absolute() else resolved.base_dir / path
        return self.state_dir / "runs" / pilot_id

    async def validate(self, params: ValidateParams) -> ValidateResult:
        return await asyncio.to_thread(validate, params, self.plugins)

    def _live_for_control(self, record: PilotRecord, what: str) -> LivePilot:
        if record.terminal:
            raise Refused(f"cannot {what} pilot {record.id}: it has finished ({record.state})")
        live = self.runs.get(record.id)
        if live is None:
            job = f" (job {record.job_id})" if record.job_id else ""
            raise Refused(f"cannot {what} pilot {record.id}: the daemon is not attached to it{job}")
        return live

    async def drain(self, pilot_id: str) -> ControlResult:
        drained = await self.campaigns.control(pilot_id, "drain")
        if drained is not None:
            return drained
        record = self.records.lookup(pilot_id)
        live = self._live_for_control(record, "drain")
        record.desired = record.desired or "drain"
        await self.records.save_desired(record)
        live.pilot.drain("drain requested")
        return ControlResult(pilot=record.id, state=record.state)

    async def cancel(self, pilot_id: str) -> ControlResult:
        cancelled = await self.campaigns.control(pilot_id, "cancel")
        if cancelled is not None:
            return cancelled
        record = self.records.lookup(pilot_id)
        live = self._live_for_control(record, "cancel")
        record.desired = "cancel"
        await self.records.save_desired(record)
        live.pilot.cancel("cancelled by the user")
        return ControlResult(pilot=record.id, state=record.state)

    async def retry(self, pilot_id: str, failed: bool, tasks: list[str] | None = None) -> RetryResult:
        if self.runs.stopping:
            raise ShuttingDown
        record = self.records.lookup(pilot_id)
        if not record.terminal or self.runs.get(record.id) is not None:
            raise Refused(f"pilot {record.id} is still {record.state}: retry it once it ends")
        requeued = await self.recovery.retry_tasks(record, failed, tasks)
        return RetryResult(pilot=record.id, requeued=requeued, run=record.run)

    def heartbeat(self, sample: MetricSample) -> None:
        record = self.records.find(sample.pilot)
        if record is None:
            raise UnknownPilot(sample.pilot)
        if record.terminal:
            raise Refused(f"pilot {record.id} has finished ({record.state})")
        self.views.heartbeat(sample)

    # ------------------------------------------------------------------ the daemon's side

    async def snapshot_progress(self) -> None:
        await self.runs.snapshot_progress()

    async def shutdown(self, timeout: float, force: asyncio.Event) -> None:
        await asyncio.gather(self.runs.shutdown(timeout, force), self.campaigns.shutdown(timeout))
