"""``pilotkit run`` of a spec with a ``[campaign]`` table, and ``pilotkit status`` of a
campaign (read from its ``campaign.json``; no daemon needed)."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .hangup import hangup_ignored, release_terminal

if TYPE_CHECKING:
    from ..campaign import Campaign, CampaignStatus
    from ..plugins import Plugins
    from ..scheduler import Resume
    from ..spec import ResolvedSpec

CAMPAIGN_FILE = "campaign.json"

T = TypeVar("T")


def run_campaign(
    resolved: ResolvedSpec,
    plugins: Plugins,
    *,
    as_json: bool,
    workdir: Path | None,
    quiet: bool,
    progress_interval: float,
    resume: Resume | None,
) -> int:
    """Run the campaign in this process (``resume``: what an earlier run of it in the same
    workdir finished); its exit status."""
    return asyncio.run(_run(resolved, plugins, as_json=as_json, workdir=workdir, quiet=quiet,
                            progress_interval=progress_interval, resume=resume))  # fmt: skip


async def _run(
    resolved: ResolvedSpec, plugins: Plugins, *, as_json: bool, workdir: Path | None, quiet: bool,
    progress_interval: float, resume: Resume | None,
) -> int:  # fmt: skip
    from ..campaign import Campaign

    campaign: Campaign | None = None
    closed = False

    def say(line: str) -> None:
        nonlocal closed
        if closed:
            return
        try:
            if as_json:
                click.echo(json.dumps({"type": "campaign", "campaign": campaign.id if campaign else "",
                                       "t": time.time(), "message": line}))  # fmt: skip
            elif not quiet:
                click.echo(f"pilotkit: {line}", err=True)
        except (BrokenPipeError, ValueError):  # the reader went away (`| head`): the campaign goes on
            closed = True

    campaign = Campaign(resolved, plugins, workdir=workdir, say=say, resume=resume)
    assert campaign is not None
    loop = asyncio.get_running_loop()

    def on_interrupt(signame: str) -> None:
        campaign.cancel(f"interrupted ({signame})")

    def on_hangup() -> None:
        release_terminal()
        on_interrupt("SIGHUP: the terminal went away")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_interrupt, sig.name)
    if not hangup_ignored():
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    loop.add_signal_handler(signal.SIGUSR1, campaign.drain, "SIGUSR1")

    async def progress() -> None:
        while True:
            await asyncio.sleep(progress_interval)
            say(progress_line(campaign.status()))

    ticker = asyncio.ensure_future(progress())
    try:
        if resume is not None:  # the earlier run's batch jobs end first; their ok results count
            from ..campaign.resume import earlier_allocations, ended_after_the_last_word

            _, live = await asyncio.to_thread(earlier_allocations, campaign.workdir)
            resume.carried.update(await ended_after_the_last_word(resolved, campaign.workdir, live))
        outcome = await campaign.run()
    finally:
        ticker.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
    if not as_json:
        for line in summary_lines(outcome.status):
            click.echo(line, err=True)
    return outcome.exit_code


def progress_line(status: CampaignStatus) -> str:
    states: dict[str, int] = {}
    for a in status.allocations:
        states[a.state] = states.get(a.state, 0) + 1
    allocations = ", ".join(f"{n} {s}" for s, n in states.items()) or "none yet"
    eta = status.eta()
    return (f"campaign {status.id}: {status.done}/{status.total} done, {status.failed} failed, "
            f"{status.running} in allocations, {status.waiting} waiting; allocations: {allocations}"
            + (f"; ETA {_duration(eta)}" if eta is not None else ""))  # fmt: skip


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def summary_lines(status: CampaignStatus) -> list[str]:
    """The campaign's allocations, backlog and figures, as ``pilotkit status`` prints them."""
    now = time.time()
    state = status.state + (f": {status.reason}" if status.reason else "")
    used = sum(1 for a in status.allocations if not a.submit_failed)
    width = max([10, *(len(a.name) for a in status.allocations)])
    lines = [
        f"campaign {status.id} ({status.name}): {state}",
        f"  tasks: {status.total} total, {status.done} done, {status.failed} failed, "
        f"{status.running} in allocations, {status.waiting} waiting"
        + (f" ({status.resumed} done before it resumed)" if status.resumed else "")
        + (f"; ETA {_duration(status.eta(now))}" if status.eta(now) is not None else ""),
        f"  allocations: {used} used of at most {status.max_allocations}, {status.parallel} at once"
        + (f"; the work needed at least {status.min_allocations}" if status.min_allocations else ""),
        f"  results: {status.results}",
        f"  {'allocation':<{width}} {'job':<10} {'state':<9} {'ok':>4} {'back':>4} {'idle core-s':>11}  why",
    ]
    for a in status.allocations:
        idle = a.idle_core_seconds(now)
        lines.append(f"  {a.name:<{width}} {a.job_id or '-':<10} {a.state:<9} {a.ok:>4} {a.preempted:>4} "
                     f"{'-' if idle is None else f'{idle:.1f}':>11}  {a.why or ''}")  # fmt: skip
    for ended, nxt, gap in status.handovers():
        lines.append(f"  hand-over {ended} -> {nxt}: {gap:.1f}s without an allocation running tasks")
    return lines


def campaign_first(fn: Callable[..., T]) -> Callable[..., T | None]:
    """For ``pilotkit status NAME``: a campaign named NAME (or its directory) on this
    machine is shown from its ``campaign.json``; anything else goes to the daemon (which
    knows its own campaigns too: ``--host``)."""

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> T | None:
        from ..campaign import find_campaign

        name = kwargs.get("pilot")
        found = find_campaign(name) if name and not kwargs.get("host") else None
        if found is None:
            return fn(**kwargs)
        from ..campaign import read_status

        show_campaign(read_status(found), as_json=bool(kwargs.get("as_json")))
        return None

    return wrapper


def show_campaign(status: CampaignStatus, *, as_json: bool) -> None:
    """Print a campaign as ``pilotkit status NAME`` does (``--json``: with its figures)."""
    if as_json:
        import msgspec

        data = msgspec.to_builtins(status)
        data["eta"] = status.eta()
        data["handovers"] = [{"ended": e, "next": n, "gap": g} for e, n, g in status.handovers()]
        for record, allocation in zip(status.allocations, data["allocations"], strict=True):
            allocation["idle_core_seconds"] = record.idle_core_seconds()
        click.echo(json.dumps(data, indent=2))
    else:
        for line in summary_lines(status):
            click.echo(line)
