"""The campaigns a daemon runs: the coordinator of :mod:`pilotkit.campaign` (the one
``pilotkit run`` uses) in the daemon's event loop.

Each campaign the daemon owns has a record in ``<state dir>/daemon-campaigns/<id>.json``:
its spec, workdir, the specs added to it (``pilotkit submit --to``) and whether it was
asked to cancel. After the daemon restarts (even after ``kill -9``), every campaign
whose record is not ended runs again in its directory with its id: the task processes
the dead daemon left running are killed first (found by their pid records, as for
local pilots), the tasks with an ``ok`` line in ``results.jsonl`` are kept, and the
others run again (the ``pilotkit run --resume`` logic). Its allocations are new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from ..campaign import CAMPAIGN_FILE, Campaign
from ..campaign.resume import earlier_allocations, ended_after_the_last_word
from ..errors import PilotkitError, SpecError
from ..plugins import Plugins
from ..protocol import CampaignResult, CampaignSummary, ControlResult, SubmitParams, SubmitResult
from ..rundir import earlier_run, resume_results
from ..scheduler import Resume
from ..spec import ResolvedSpec, parse_spec
from ..types import CarriedAttempt
from .faults import BadParams, Refused, UnknownCampaign
from .workdir import kill_orphans

log = logging.getLogger("pilotkit.daemon.campaigns")

CAMPAIGNS_DIR = "daemon-campaigns"
"""In the daemon's state dir: one record per campaign it owns."""


class AddedSpec(msgspec.Struct, kw_only=True):
    spec: str
    path: str | None = None


class CampaignEntry(msgspec.Struct, kw_only=True):
    """What the daemon keeps of a campaign to run it again after a restart."""

    id: str
    name: str
    spec: str
    spec_path: str | None = None
    profile: str | None = None
    workdir: str
    added: list[AddedSpec] = []
    desired: str | None = None
    """``cancel`` or ``drain`` once it was asked to."""
    ended: bool = False


class Campaigns:
    """Every campaign this daemon runs (see the module docstring)."""

    def __init__(self, plugins: Plugins, state_dir: Path) -> None:
        self.plugins = plugins
        self.dir = state_dir / CAMPAIGNS_DIR
        self.live: dict[str, tuple[CampaignEntry, Campaign, asyncio.Future[None]]] = {}
        self.stopping = False

    # ------------------------------------------------------------------ records

    def _path(self, entry: CampaignEntry) -> Path:
        return self.dir / f"{entry.id}.json"

    async def _save(self, entry: CampaignEntry) -> None:
        def write() -> None:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self._path(entry)
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "wb") as f:
                f.write(msgspec.json.encode(entry))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)

        await asyncio.to_thread(write)

    def _entries(self) -> list[CampaignEntry]:
        out: list[CampaignEntry] = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                out.append(msgspec.json.decode(path.read_bytes(), type=CampaignEntry))
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("%s: unreadable campaign record skipped: %s", path, exc)
        return out

    # ------------------------------------------------------------------ calls

    def find(self, name: str) -> tuple[CampaignEntry, Campaign] | None:
        """The running campaign with id ``name``, or the one named ``name``."""
        for entry, campaign, _ in self.live.values():
            if name in (entry.id, entry.name):
                return entry, campaign
        return None

    async def status_of(self, name: str) -> CampaignResult:
        """A campaign of this daemon, running (its state now) or ended (its
        ``campaign.json``): by id, name (the latest of that name) or a unique id prefix."""
        found = self.find(name)
        if found is not None:
            return CampaignResult(campaign=msgspec.Raw(msgspec.json.encode(found[1].status())))
        entries = await asyncio.to_thread(self._entries)
        named = [e for e in entries if e.id == name] or [e for e in entries if e.name == name]
        if not named:
            named = [e for e in entries if e.id.startswith(name)]
            if len(named) > 1:
                raise BadParams(f"{len(named)} campaigns start with '{name}': {', '.join(e.id for e in named)}")
        if not named:
            raise UnknownCampaign(name)
        entry = max(named, key=lambda e: e.id)  # of a name: the latest (ids are the name, then the time)
        path = Path(entry.workdir) / CAMPAIGN_FILE
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise UnknownCampaign(name, f"{path}: {exc.strerror}") from None
        return CampaignResult(campaign=msgspec.Raw(data))

    def summaries(self) -> list[CampaignSummary]:
        """The running campaigns, for the ``status`` listing."""
        out: list[CampaignSummary] = []
        for entry, campaign, _ in self.live.values():
            status = campaign.status()
            out.append(CampaignSummary(
                id=entry.id, name=entry.name, state=status.state, workdir=entry.workdir, total=status.total,
                done=status.done, failed=status.failed, running=status.running, waiting=status.waiting,
                allocations=sum(1 for a in status.allocations if a.active), eta=status.eta(),
            ))  # fmt: skip
        return out

    async def submit(self, params: SubmitParams, resolved: ResolvedSpec, campaign_id: str,
                     workdir: Path) -> SubmitResult:  # fmt: skip
        self._one_of_its_name(resolved.name)
        if await asyncio.to_thread(earlier_run, workdir):
            raise BadParams(f"workdir {workdir} holds an earlier run: give another one")
        self._one_of_its_name(resolved.name)  # no other submit of it started meanwhile
        campaign = Campaign(resolved, self.plugins, campaign_id=campaign_id, workdir=workdir, say=_say)
        entry = CampaignEntry(id=campaign.id, name=resolved.name, spec=params.spec, spec_path=params.path,
                              profile=params.profile, workdir=str(workdir))  # fmt: skip
        self._launch(entry, campaign)
        await self._save(entry)
        return SubmitResult(pilot=campaign.id, name=resolved.name, workdir=str(workdir), campaign=True)

    def _one_of_its_name(self, name: str) -> None:
        running = self.find(name)
        if running is not None:
            raise Refused(f"campaign {name} is running already ({running[0].id}): cancel it, or give "
                          "the spec another name")  # fmt: skip

    async def add(self, name: str, params: SubmitParams) -> SubmitResult:
        """Add the groups of ``params``' spec to the running campaign ``name``."""
        found = self._taking(name)
        more = await self._parse(params.spec, params.path, params.profile)
        entry, campaign = self._taking(name)  # still, after the parse
        if campaign is not found[1]:
            raise Refused(f"campaign {name} was replaced while {params.path or 'the spec'} was read: try again")
        campaign.add_groups(more, params.spec)
        entry.added.append(AddedSpec(spec=params.spec, path=params.path))
        await self._save(entry)
        return SubmitResult(pilot=entry.id, name=entry.name, workdir=entry.workdir, campaign=True)

    def _taking(self, name: str) -> tuple[CampaignEntry, Campaign]:
        """The running campaign ``name`` that can take more tasks."""
        found = self.find(name)
        if found is None or found[1].closed or found[1].stopping or found[1].draining:
            raise Refused(f"no running campaign {name}: 'pilotkit submit --to' adds tasks to a campaign this "
                          "daemon runs")  # fmt: skip
        return found

    async def control(self, name: str, verb: str) -> ControlResult | None:
        """Cancel (``verb`` ``cancel``) or drain (``drain``: no new allocation or task,
        the running tasks finish) the running campaign ``name``; None: ``name`` is no
        campaign of this daemon (a pilot, then). Refused for a campaign that has ended."""
        found = self.find(name)
        if found is None:
            ended = await asyncio.to_thread(self._ended, name)
            if ended is not None:
                raise Refused(f"cannot {verb} campaign {ended.id}: it has ended")
            return None
        entry, campaign = found
        if entry.desired != "cancel":
            entry.desired = verb
        await self._save(entry)
        if verb == "cancel":
            campaign.cancel("cancelled by the user")
        else:
            campaign.drain("drain requested")
        return ControlResult(pilot=entry.id, state="running")

    def _ended(self, name: str) -> CampaignEntry | None:
        ended = [e for e in self._entries() if e.ended and name in (e.id, e.name)]
        return ended[-1] if ended else None

    # ------------------------------------------------------------------ runs

    async def _parse(self, text: str, path: str | None, profile: str | None) -> ResolvedSpec:
        try:
            return await asyncio.to_thread(parse_spec, text, path, self.plugins, profile=profile)
        except SpecError:
            raise
        except PilotkitError as exc:
            raise BadParams(exc.message) from None

    def _launch(
        self, entry: CampaignEntry, campaign: Campaign, before: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        run = asyncio.ensure_future(self._run(entry, campaign, before))
        self.live[entry.id] = (entry, campaign, run)

    async def _run(
        self, entry: CampaignEntry, campaign: Campaign, before: Callable[[], Awaitable[None]] | None
    ) -> None:
        try:
            if before is not None:
                await before()
            await campaign.run()  # its last line says how it ended
        except Exception:
            log.exception("campaign %s failed", entry.id)
        finally:
            self.live.pop(entry.id, None)
        if not self.stopping:  # a daemon that stops runs it again when it starts
            entry.ended = True
            await self._save(entry)

    async def recover(self) -> None:
        """Run again every campaign whose record is not ended (the daemon stopped or
        died under it)."""
        entries = await asyncio.to_thread(self._entries)
        for entry in entries:
            if entry.ended:
                continue
            try:
                await self._resume(entry)
            except Exception as exc:
                log.exception("resuming campaign %s failed", entry.id)
                entry.ended = True
                await self._save(entry)
                _say(f"campaign {entry.id}: could not be resumed: {exc}")

    async def _resume(self, entry: CampaignEntry) -> None:
        workdir = Path(entry.workdir)
        killed = await asyncio.to_thread(kill_orphans, workdir)
        resolved = await self._parse(entry.spec, entry.spec_path, entry.profile)
        records, live = await asyncio.to_thread(earlier_allocations, workdir, "lost: the daemon died")
        carried: dict[str, CarriedAttempt] = {}  # filled before the campaign makes a task

        async def settle() -> None:
            carried.update(await ended_after_the_last_word(resolved, workdir, live))

        results, attempts = await asyncio.to_thread(resume_results, workdir)
        campaign = Campaign(resolved, self.plugins, campaign_id=entry.id, workdir=workdir, say=_say,
                            resume=Resume(results=results, attempts=attempts, carried=carried))  # fmt: skip
        campaign.records = records
        for added in entry.added:
            more = await self._parse(added.spec, added.path, entry.profile)
            campaign.add_groups(more, added.spec)
        _say(f"campaign {entry.id}: resumed after the daemon restarted: {len(results)} task(s) already ok"
             + (f", killed {killed} process(es) the previous daemon left running" if killed else ""))
        if entry.desired == "cancel":
            campaign.cancel("cancelled by the user (the daemon restarted while it was stopping)")
        elif entry.desired == "drain":
            campaign.drain("drain requested (before the daemon restarted)")
        self._launch(entry, campaign, before=settle if live else None)

    async def shutdown(self, timeout: float) -> None:
        """The daemon stops: each campaign's allocations stop their tasks (they run
        again when the daemon starts again)."""
        self.stopping = True
        runs = [run for _, _, run in self.live.values()]
        for _, campaign, _ in self.live.values():
            campaign.cancel("the daemon stopped")
        if runs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), timeout)


def _say(line: str) -> None:
    log.info("%s", line)
