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
) -> int:
    plugins = get_plugins()
    report_plugin_errors(plugins)
    resolved = load_spec(spec_path, plugins, profile=profile)
    outcome = asyncio.run(
        _run(
            resolved,
            plugins,
            as_json=as_json,
            workdir=workdir,
            quiet=quiet,
            progress_interval=progress_interval,
        )
    )
    return exit_code(outcome.state)


def on_terminal() -> bool:
    """Draw the live view only when both streams are a terminal; otherwise (a file, a
    pipe, ``nohup``, a batch log) print plain lines."""
    return sys.stderr.isatty() and sys.stdout.isatty()


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


async def _run(
    resolved: ResolvedSpec,
    plugins: Plugins,
    *,
    as_json: bool,
    workdir: Path | None,
    quiet: bool,
    progress_interval: float = 30.0,
) -> PilotOutcome:
    pilot = Pilot(resolved, plugins, workdir=workdir)
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
    return outcome
