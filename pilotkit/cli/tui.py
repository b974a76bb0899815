"""``pilotkit tui``: the click command. The dashboard (:mod:`pilotkit.tui`, and Textual)
is imported only when it runs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import PilotkitError
from .daemon_commands import connection_options


@click.command("tui")
@click.argument("spec", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@connection_options
@click.option("--readonly", is_flag=True, help="Watch only: no submit, drain, cancel or retry (their keys are hidden).")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="EVENTS.jsonl",
              help="Replay a recorded event log (JSON lines of pilotkit events) instead of a daemon.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Replay: times the recorded pace (+ and - change it, space pauses).")
@click.option("--instant", is_flag=True, help="Replay: the whole log at once.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Replay: the pilot's run directory, to show its task output.")
@click.option("--pilot", "pilot_id", metavar="ID", help="Open this pilot's page.")
@click.option("--campaign", metavar="NAME",
              help="Open this campaign's page (its name, id or directory): allocations, backlog, ETA.")
@click.option("--start-daemon", is_flag=True,
              help="Start a daemon (pilotkit daemon --detach) when none runs here; without it the dashboard "
                   "says how to start one and waits.")
@click.option("--no-start", is_flag=True, hidden=True, help="The default (kept for old command lines).")
@click.option("--serve", is_flag=True,
              help="Serve the dashboard to a browser (textual-serve) on localhost; reach it through an SSH "
                   "tunnel: ssh -L PORT:localhost:PORT HOST.")
@click.option("--port", type=int, default=8000, show_default=True, help="--serve: the local port.")
def tui(spec: Path | None, readonly: bool, replay: Path | None, speed: float, instant: bool,
        workdir: Path | None, pilot_id: str | None, campaign: str | None, start_daemon: bool, no_start: bool, serve: bool, port: int, **target: Any) -> None:
    """The live dashboard: pilots, nodes, task progress, logs; submit, drain, cancel.

    \b
      pilotkit tui                          the local daemon (--start-daemon: start one if none runs)
      pilotkit tui SPEC.toml                submit a spec and watch it
      pilotkit tui --host user@login        a daemon on another machine, over SSH
      pilotkit tui --readonly               watch without the power to cancel
      pilotkit tui --replay events.jsonl    replay a recorded event log

    Keys: ? help, q quit, / filter, ctrl+p palette, esc back, l logs, c cancel.
    """
    if replay is not None and spec is not None:
        raise PilotkitError("give a spec to submit or --replay, not both")
    try:
        import textual  # noqa: F401
    except ImportError:
        raise PilotkitError("the dashboard needs Textual: pip install 'pilotkit[tui]'") from None
    if serve:
        _serve(port)
        return
    from ..client import Target
    from ..tui.app import PilotkitApp
    from ..tui.source import DataSource

    source: DataSource
    if replay is not None:
        from ..tui.replay import ReplaySource

        source = ReplaySource(replay, speed=None if instant else speed, workdir=workdir)
    else:
        from ..tui.live import LiveSource

        host = target.pop("host")
        socket_path = target.pop("socket_path")
        remote_socket = target.pop("remote_socket")
        where = Target(
            host=host, socket=remote_socket if host else socket_path, ssh_config=target.pop("ssh_config"),
            remote_command=target.pop("remote_pilotkit"), tcp=target.pop("tcp"), token=target.pop("token"),
            tls_ca=target.pop("tls_ca"),
        )
        source = LiveSource(where, start_daemon=start_daemon and not no_start)
    app = PilotkitApp(source, readonly=readonly, spec=spec, pilot=pilot_id, campaign=campaign)
    app.run()


def _serve(port: int) -> None:
    """Run the same command line, less ``--serve``, in textual-serve on localhost."""
    try:
        from textual_serve.server import Server
    except ImportError:
        raise PilotkitError("--serve needs textual-serve: pip install textual-serve") from None
    argv = _without_serve(sys.argv[1:])
    command = shlex.join([sys.executable, "-m", "pilotkit.cli.main", *argv])
    click.echo(f"pilotkit: serving the dashboard on http://localhost:{port} (from another machine: "
               f"ssh -L {port}:localhost:{port} <this host>)", err=True)
    Server(command, host="localhost", port=port, title="pilotkit").serve()


def _without_serve(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--serve":
            continue
        if arg == "--port":
            skip = True
            continue
        if arg.startswith("--port="):
            continue
        out.append(arg)
    return out
