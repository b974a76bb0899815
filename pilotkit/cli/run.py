"""``pilotkit run``: one pilot in this process, with a live progress view."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from ..events import Event, Log, encode
from ..pilot import Pilot, PilotOutcome
from ..plugins import Plugins, get_plugins
from ..progress import Progress
from ..rundir import RerunRefused, earlier_run, move_aside, record_spec, resume_results, spec_changes
from ..scheduler import Resume
from ..spec import ResolvedSpec, load_spec
from ..vocab import exit_code
from .hangup import hangup_ignored, release_terminal


def report_plugin_errors(plugins: Plugins) -> None:
    for name, error in plugins.errors.items():
        click.echo(f"pilotkit: plugin '{name}' failed to load and is skipped: {error}", err=True)


def run_pilot(
    spec_path: Path,
    *,
    as_json: bool,
    workdir: Path | None,
    quiet: bool,
    progress_interval: float = 30.0,
    profile: str | None = None,
    rerun: str | None = None,
    pilot_id: str | None = None,
) -> int:
    plugins = get_plugins()
    report_plugin_errors(plugins)
    resolved = load_spec(spec_path, plugins, profile=profile)
    workdir = workdir.absolute() if workdir is not None else None
    target = workdir or configured_workdir(resolved)
    resume = None
    if target is not None:
        resume = _earlier_run(target, resolved, rerun)
        record_spec(target, resolved.spec)
    if resolved.spec.campaign is not None:
        from .campaign import run_campaign

        return run_campaign(resolved, plugins, as_json=as_json, workdir=workdir, quiet=quiet,
                            progress_interval=progress_interval, resume=resume)  # fmt: skip
    outcome = asyncio.run(
        _run(
            resolved,
            plugins,
            as_json=as_json,
            workdir=workdir,
            quiet=quiet,
            progress_interval=progress_interval,
            resume=resume,
            pilot_id=pilot_id,
        )
    )
    return exit_code(outcome.state)


def on_terminal() -> bool:
    """Draw the live view only when both streams are a terminal; otherwise (a file, a
    pipe, ``nohup``, a batch log) print plain lines."""
    return sys.stderr.isatty() and sys.stdout.isatty()


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


def configured_workdir(resolved: ResolvedSpec) -> Path | None:
    """The spec's own ``[pilot] workdir``, where the pilot will put it (None: a new
    directory per pilot)."""
    configured = resolved.spec.pilot.workdir
    if not configured:
        return None
    path = Path(configured)
    return path if path.is_absolute() else resolved.base_dir / path


def _earlier_run(workdir: Path, resolved: ResolvedSpec, rerun: str | None) -> Resume | None:
    """What to do with an earlier run in ``workdir``: nothing there (None), refuse, move
    it aside (``fresh``) or resume it (``resume``)."""
    if not earlier_run(workdir):
        return None
    if rerun is None:
        raise RerunRefused(
            f"{workdir} holds an earlier run: add --resume to run only the tasks without an ok "
            "result, or --fresh to move it aside"
        )
    from ..daemon.workdir import kill_orphans

    killed = kill_orphans(workdir)  # an earlier `pilotkit run` killed with -9 left its tasks
    if killed:
        click.echo(f"pilotkit: killed {killed} process(es) the earlier run in {workdir} left running", err=True)
    if rerun == "fresh":
        moved = move_aside(workdir)
        click.echo(f"pilotkit: the earlier run in {workdir} is now in {moved}", err=True)
        return None
    changed = spec_changes(workdir, resolved.spec)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise RerunRefused(
            f"{workdir}: the spec changed since the earlier run ({shown}): --resume needs the same "
            "spec; use --fresh to start over"
        )
    results, attempts = resume_results(workdir)
    click.echo(f"pilotkit: resuming {workdir}: {len(results)} task(s) already ok", err=True)
    return Resume(results=results, attempts=attempts)


async def _run(
    resolved: ResolvedSpec,
    plugins: Plugins,
    *,
    as_json: bool,
    workdir: Path | None,
    quiet: bool,
    progress_interval: float = 30.0,
    resume: Resume | None = None,
    pilot_id: str | None = None,
) -> PilotOutcome:
    pilot = Pilot(resolved, plugins, workdir=workdir, resume=resume, pilot_id=pilot_id)
    progress = Progress()
    pilot.bus.subscribe(progress.apply)
    terminal = on_terminal()
    view = None
    plain = None
    if as_json:
        out = sys.stdout.buffer

        def write(event: Event) -> None:
            out.write(encode(event) + b"\n")
            out.flush()

        pilot.bus.subscribe(write)
    elif not quiet and terminal:
        from .render import LiveProgress

        view = LiveProgress(pilot.id, progress)
        live_view = view

        def messages(event: Event) -> None:
            if isinstance(event, Log) and event.level != "debug":
                live_view.log(event.source or "pilot", event.message)

        pilot.bus.subscribe(messages)
    elif not quiet:
        from .logview import PlainLog

        plain = PlainLog(pilot.id, pilot.workdir, progress, progress_interval, _echo_err)
        pilot.bus.subscribe(plain.event)
    plain_task = asyncio.create_task(plain.run()) if plain is not None else None

    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_interrupt(signame: str) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            pilot.cancel(f"interrupted ({signame})")
        else:
            pilot.kill()

    def on_hangup() -> None:
        release_terminal()
        on_interrupt("SIGHUP: the terminal went away")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_interrupt, sig.name)
    if not hangup_ignored():
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    loop.add_signal_handler(signal.SIGUSR1, pilot.drain, "SIGUSR1: the allocation ends soon")
    try:
        if view is not None:
            with view:
                outcome = await pilot.run()
        else:
            outcome = await pilot.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    if plain is not None and plain_task is not None:
        plain.close()
        await plain_task
    if not as_json:
        from .render import print_summary

        await asyncio.to_thread(print_summary, outcome, progress, plain=not terminal)
    if outcome.storage:
        click.echo(f"pilotkit: {outcome.storage}", err=True)
    return outcome
