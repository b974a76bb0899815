"""``pilotkit run``: one pilot in this process, with a live progress view."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import click
import msgspec

from ..errors import PilotkitError
from ..events import AllocationClaimed, Event, Log, encode
from ..interfaces import Provider
from ..pilot import Pilot, PilotOutcome
from ..plugins import Plugins, get_plugins
from ..progress import Progress
from ..rundir import RerunRefused, earlier_run, move_aside, record_spec, resume_results, spec_changes
from ..scheduler import Resume
from ..spec import ResolvedSpec, load_spec
from ..states import PilotState
from ..vocab import ATTACH_FILE, ExitCode, exit_code
from .attach import AttachRecord, this_client, write_record
from .hangup import hangup_ignored, release_terminal

_DETACHABLE = (PilotState.STAGING, PilotState.DEPLOYING, PilotState.RUNNING)
"""States in which SIGHUP detaches a batch pilot (every agent connected); before (the
job queued, agents connecting) and after (draining, evicting) it cancels, as Ctrl-C does."""


async def _unless_detached(running: asyncio.Future[PilotOutcome], detached: list[str]) -> PilotOutcome | None:
    """The pilot's outcome; None when it was detached (its run cancelled for that)."""
    try:
        return await running
    except asyncio.CancelledError:
        if detached and running.cancelled():
            return None
        raise


def _keep_attach_record(pilot: Pilot, record: AttachRecord) -> None:
    """Write ``attach.json`` once the batch job runs (and name this process in it)."""

    def claimed(event: Event) -> None:
        if isinstance(event, AllocationClaimed) and event.allocation.job_id:
            mine = msgspec.structs.replace(this_client(record), pilot=pilot.id, job_id=event.allocation.job_id)
            try:
                write_record(pilot.workdir, mine)
            except OSError as exc:
                click.echo(f"pilotkit: cannot write {pilot.workdir / ATTACH_FILE}: {exc.strerror or exc}", err=True)

    pilot.bus.subscribe(claimed)


def _note_detached(pilot: Pilot, when: str) -> None:
    """Say in ``attach.json`` when the client let go."""
    from .attach import read_record

    with contextlib.suppress(PilotkitError, OSError):
        record = read_record(pilot.workdir)
        write_record(pilot.workdir, msgspec.structs.replace(
            record, client_pid=0, detached=f"{when}: SIGHUP (the terminal went away)"))  # fmt: skip


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
            record=AttachRecord(pilot="", job_id="", spec=str(spec_path.absolute()), profile=profile),
        )
    )
    return ExitCode.DETACHED if outcome is None else exit_code(outcome.state)


def run_detached(
    spec_path: Path, *, workdir: Path | None, profile: str | None, rerun: str | None, progress_interval: float
) -> int:
    """``pilotkit run --detach``: the same run in a background process with no terminal
    (its own session; output in ``run.log`` of the run directory)."""
    import subprocess

    from ..pilot import new_pilot_id
    from ..rundir import earlier_run

    resolved = load_spec(spec_path, get_plugins(), profile=profile)
    pilot_id = new_pilot_id(resolved.name)
    target = (workdir or configured_workdir(resolved) or Path("pilotkit-runs") / pilot_id).absolute()
    if rerun is None and earlier_run(target):
        raise RerunRefused(
            f"{target} holds an earlier run: add --resume to run only the tasks without an ok "
            "result, or --fresh to move it aside"
        )
    target.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pilotkit.cli.main", "run", "--workdir", str(target), "--pilot-id", pilot_id,
            "--progress-interval", f"{progress_interval:g}s", str(spec_path.absolute())]  # fmt: skip
    if profile:
        argv[4:4] = ["--profile", profile]
    if rerun is not None:
        argv[4:4] = [f"--{rerun}"]
    log = target / "run.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_hangup_default,  # `pilotkit attach` asks it to let go with SIGHUP, even under nohup
        )
    click.echo(f"pilotkit: pilot {pilot_id} runs in the background (pid {proc.pid}; output in {log})")
    click.echo(f"pilotkit: follow it with: pilotkit attach {target}")
    return 0


def _hangup_default() -> None:
    """In the child of ``--detach``: SIGHUP handled again, whatever its parent ignored."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def attach_pilot(target: str, *, as_json: bool, quiet: bool, progress_interval: float = 30.0) -> int:
    """``pilotkit attach``: come back to a batch pilot that a ``pilotkit run`` let go of."""
    from ..daemon.workdir import latest_results, launched_attempts, repair_results
    from ..vocab import RESULTS_FILE
    from .attach import find_workdir, read_record, take_over

    workdir = find_workdir(target)
    record = read_record(workdir)
    if take_over(record):
        click.echo(f"pilotkit: the client attached to {record.pilot} let go", err=True)
    plugins = get_plugins()
    report_plugin_errors(plugins)
    resolved = load_spec(Path(record.spec), plugins, profile=record.profile)
    latest = latest_results(repair_results(workdir / RESULTS_FILE))
    done = {t for t, r in latest.items() if r.status != "cancelled"}
    resume = Resume(results=latest, attempts=launched_attempts(workdir, done))
    click.echo(f"pilotkit: attaching to pilot {record.pilot} (job {record.job_id}): {len(done)} task(s) "
               "recorded", err=True)  # fmt: skip
    outcome = asyncio.run(
        _run(
            resolved, plugins, as_json=as_json, workdir=workdir, quiet=quiet, progress_interval=progress_interval,
            resume=resume, pilot_id=record.pilot, record=record, reattach=record.job_id,
        )
    )  # fmt: skip
    return ExitCode.DETACHED if outcome is None else exit_code(outcome.state)


def on_terminal() -> bool:
    """Draw the live view only when both streams are a terminal; otherwise (a file, a
    pipe, ``nohup``, a batch log) print plain lines."""
    return sys.stderr.isatty() and sys.stdout.isatty()


def _echo_err(line: str) -> None:
    """A plain line on stderr. Once its reader has gone (an SSH session that dropped: the
    SIGHUP follows) lines are dropped, and the pilot goes on."""
    with contextlib.suppress(OSError):
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
    record: AttachRecord | None = None,
    reattach: str | None = None,
) -> PilotOutcome | None:
    """Run the pilot here; None when it was detached (SIGHUP to a batch pilot)."""
    from ..daemon.reattach import bound, detachable, linger

    if reattach is not None:
        resolved = bound(resolved, reattach)
    flag = None
    if resolved.provider_cls.reattach is not Provider.reattach:  # a batch system's job
        resolved, flag = detachable(resolved)
    pilot = Pilot(resolved, plugins, workdir=workdir, resume=resume, pilot_id=pilot_id)
    if flag is not None:
        pilot.ctx.linger = linger(resolved)  # the agents wait for `pilotkit attach`
        if record is not None:
            _keep_attach_record(pilot, record)
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

    detached: list[str] = []
    letting_go: list[asyncio.Future[None]] = []

    def on_hangup() -> None:
        if flag is not None and pilot.allocation is not None and pilot.state in _DETACHABLE:
            # The pilot goes on in its allocation; `pilotkit attach` comes back to it.
            detached.append(time.strftime("%Y-%m-%d %H:%M:%S"))
            flag.detached = True
            pilot.detach()
            _note_detached(pilot, detached[0])
            release_terminal()
            # The tasks handed to the agents reach them before the connections go.
            letting_go.append(asyncio.ensure_future(pilot.flush()))
            letting_go[0].add_done_callback(lambda _: running.cancel())
            return
        release_terminal()
        on_interrupt("SIGHUP: the terminal went away")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_interrupt, sig.name)
    if not hangup_ignored():
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    loop.add_signal_handler(signal.SIGUSR1, pilot.drain, "SIGUSR1: the allocation ends soon")
    running = asyncio.ensure_future(pilot.run())
    try:
        if view is not None:
            with view:
                outcome = await _unless_detached(running, detached)
        else:
            outcome = await _unless_detached(running, detached)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    if outcome is None:
        if plain is not None and plain_task is not None:
            plain.close()
            await plain_task
        with contextlib.suppress(OSError):
            click.echo(f"pilotkit: detached from pilot {pilot.id}: it goes on in its allocation; come back "
                       f"with: pilotkit attach {pilot.workdir}", err=True)  # fmt: skip
        return None
    if flag is not None:
        with contextlib.suppress(OSError):
            (pilot.workdir / ATTACH_FILE).unlink()
    if plain is not None and plain_task is not None:
        plain.close()
        await plain_task
    if not as_json:
        if terminal:
            from .render import print_summary
        else:
            from .summary import print_plain_summary as print_summary  # no rich: less to load at the end

        await asyncio.to_thread(print_summary, outcome, progress)
    if outcome.storage:
        click.echo(f"pilotkit: {outcome.storage}", err=True)
    return outcome
