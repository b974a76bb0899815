"""The ``pilotkit`` command line.

User errors print one line on stderr and exit 2; internal errors exit 1 and point to
the log file. Heavy modules are imported inside commands, so start-up stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import PilotkitError, SpecError
from ..vocab import ExitCode
from .params import INTERVAL


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "pilotkit"


def log_file() -> Path:
    return state_dir() / "pilotkit.log"


def setup_logging(verbose: int) -> None:
    path = log_file()
    root = logging.getLogger("pilotkit")
    root.setLevel(logging.DEBUG)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    except OSError:
        pass
    if verbose:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
        console.setFormatter(logging.Formatter("pilotkit: %(message)s"))
        root.addHandler(console)


class PilotkitGroup(click.Group):
    """Turns errors into one line and an exit code; imports each command's module, and
    loads the plugins' commands, only when they are needed."""

    _plugin_commands_loaded = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = {}
        """Command name -> ``module:attribute`` of the click command, imported when the
        command runs (or ``--help`` lists it): ``pilotkit run`` does not pay for
        importing the daemon's, the doctor's or the dashboard's commands."""

    def add_lazy(self, commands: dict[str, str]) -> None:
        self.lazy.update(commands)

    def _load_plugin_commands(self) -> None:
        if not self._plugin_commands_loaded:
            self._plugin_commands_loaded = True
            from ..plugins import get_plugins

            get_plugins().add_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.lazy:
            import importlib

            module, _, attr = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        if command is None:
            self._load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpecError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem.format()}", err=True)
            ctx.exit(ExitCode.BAD_INPUT)
        except PilotkitError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, BrokenPipeError):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(ExitCode.CANCELLED)
        except Exception as exc:
            logging.getLogger("pilotkit").exception("internal error")
            click.echo(f"internal error: {type(exc).__name__}: {exc} (details in {log_file()})", err=True)
            ctx.exit(ExitCode.FAILED)


@click.group(cls=PilotkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pilotkit")
@click.option("-v", "--verbose", count=True, help="Log to stderr too (-vv for debug).")
def cli(verbose: int) -> None:
    """pilotkit: claim resources, deploy a workload across them, run it, evict.

    \b
    Quick start:
      pilotkit doctor [--profile P]        what a run on this site needs, checked
      pilotkit init [--app APP] SPEC.toml  a commented spec to start from
      pilotkit probe                       what this node has
      pilotkit validate SPEC.toml          check a pilot spec
      pilotkit run SPEC.toml               run it (local machine by default)
      pilotkit plugins                     installed plugins and their errors

    Logs go to $XDG_STATE_HOME/pilotkit/pilotkit.log.
    """
    setup_logging(verbose)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--no-gpu", is_flag=True, help="Skip GPU detection.")
def probe(as_json: bool, no_gpu: bool) -> None:
    """Show what this node has: cores, memory, GPUs (through NVML), and the plugins'
    checks (whether this node could run k3s...)."""
    import msgspec

    from ..gpu import detect_gpus
    from ..plugins import get_plugins
    from ..probe import probe_node
    from ..types import GpuReport

    node = probe_node(gpus=False)
    report = GpuReport(reason="GPU detection skipped") if no_gpu else detect_gpus()
    checks = get_plugins().probe_checks()
    if as_json:
        echo_json({
            "node": msgspec.to_builtins(node),
            "gpus": msgspec.to_builtins(report),
            "checks": [{"plugin": plugin, **msgspec.to_builtins(check)} for plugin, check in checks],
        })
        return
    from .render import print_probe

    print_probe(node, report, checks)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--host", metavar="[USER@]HOST",
              help="Have the daemon on this machine check it (over SSH), with the plugins installed there.")
@click.option("--ssh-config", type=click.Path(dir_okay=False), metavar="FILE",
              help="With --host: SSH config file to use instead of ~/.ssh/config.")
@click.option("--remote-socket", metavar="PATH", help="With --host: the daemon's socket there.")
@click.option("--remote-pilotkit", metavar="COMMAND", help="With --host: how to run pilotkit there.")
@click.option("--profile", envvar="PILOTKIT_PROFILE", metavar="NAME",
              help="Start from this profile of the site and user configuration (instead of the spec's).")
def validate(spec: Path, as_json: bool, host: str | None, ssh_config: str | None, remote_socket: str | None,
             remote_pilotkit: str | None, profile: str | None) -> None:
    """Check a pilot spec and report every problem at once."""
    if host:
        from .remote_validate import validate_remote

        validate_remote(spec, as_json, host, ssh_config, remote_socket, remote_pilotkit, profile)
        return
    from ..spec import load_spec

    try:
        resolved = load_spec(spec, profile=profile)
    except SpecError as exc:
        if as_json:
            echo_json({"valid": False, "problems": [p.to_dict() for p in exc.problems]})
            sys.exit(ExitCode.BAD_INPUT)
        raise
    summary = _summary(resolved)
    if as_json:
        echo_json({"valid": True, "problems": [], **summary})
    else:
        click.echo(
            f"{spec}: valid: pilot '{resolved.name}', provider {summary['provider']}, app {summary['app']}"
            + (f", {summary['tasks']} tasks" if summary.get("tasks") is not None else "")
        )


def _summary(resolved: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": resolved.name,
        "provider": resolved.provider_cls.id,
        "app": resolved.app_cls.id,
    }
    groups = getattr(resolved.app_options, "groups", None)
    if groups is not None and resolved.app_cls.id == "tasks":
        from ..scan import count_tasks

        out["tasks"] = sum(count_tasks(g) for g in groups)
    return out


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Stream lifecycle events as JSON lines.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where task dirs, logs and results go (default: ./pilotkit-runs/<pilot-id>).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress view; only the summary.")
@click.option("--progress-interval", type=INTERVAL, default="30s", show_default=True,
              help="Outside a terminal: print a progress line this often (10s, 5m).")
@click.option("--profile", envvar="PILOTKIT_PROFILE", metavar="NAME",
              help="Start from this profile of the site and user configuration (instead of the spec's).")
@click.option("--resume", is_flag=True,
              help="The workdir holds an earlier run of this spec: run only the tasks without an ok result.")
@click.option("--fresh", is_flag=True, help="The workdir holds an earlier run: move it aside to WORKDIR.<time>.")
@click.option("--detach", is_flag=True,
              help="Run in the background with no terminal (output in WORKDIR/run.log); `pilotkit attach` follows it.")
@click.option("--pilot-id", hidden=True)
def run(
    spec: Path, as_json: bool, workdir: Path | None, quiet: bool, progress_interval: float, profile: str | None,
    resume: bool, fresh: bool, detach: bool, pilot_id: str | None,
) -> None:
    """Run a pilot spec to completion: claim, probe, stage, deploy, run, drain, evict.

    Ctrl-C cancels (so does SIGTERM): no new task starts, running ones get SIGTERM
    (SIGKILL after the grace period), the pilot evicts and the summary still prints. A
    second Ctrl-C kills running tasks at once. SIGUSR1 drains: no new task starts,
    running ones finish.

    In a terminal a live view is drawn. Otherwise (a file, a pipe, nohup, a batch log)
    plain lines go to stderr: one per state change, one per failed task (id, exit code,
    last stderr line, log path), and a progress line every --progress-interval.

    A workdir that holds an earlier run is refused unless --resume (keep every ok
    result, run the other tasks; refused when the spec changed) or --fresh.

    A batch pilot (Slurm...) outlives this command: when the terminal goes away
    (SIGHUP: an SSH session dropped) it detaches: the pilot goes on in its allocation,
    its agents keep running their tasks and keep their results, and `pilotkit attach
    WORKDIR` comes back to it (so does it after a kill -9). --detach starts it in the
    background with no terminal.

    Exit codes: 0 done; 1 tasks failed; 2 bad input; 3 walltime expired with work
    left; 4 detached (SIGHUP; `pilotkit attach` comes back); 130 cancelled.
    """
    from .run import run_detached, run_pilot

    if resume and fresh:
        raise click.UsageError("--resume and --fresh exclude each other")
    rerun = "resume" if resume else "fresh" if fresh else None
    if detach:
        sys.exit(run_detached(spec, workdir=workdir, profile=profile, rerun=rerun, progress_interval=progress_interval))
    sys.exit(
        run_pilot(
            spec, as_json=as_json, workdir=workdir, quiet=quiet, progress_interval=progress_interval,
            profile=profile, rerun=rerun, pilot_id=pilot_id,
        )
    )


@cli.command()
@click.argument("pilot", metavar="WORKDIR|PILOT_ID")
@click.option("--json", "as_json", is_flag=True, help="Stream lifecycle events as JSON lines.")
@click.option("--quiet", "-q", is_flag=True, help="No progress view; only the summary.")
@click.option("--progress-interval", type=INTERVAL, default="30s", show_default=True,
              help="Outside a terminal: print a progress line this often (10s, 5m).")
def attach(pilot: str, as_json: bool, quiet: bool, progress_interval: float) -> None:
    """Come back to a batch pilot that `pilotkit run` let go of (its terminal went away,
    it was killed, or it runs with --detach).

    The pilot's agents kept running their tasks and kept their results; they connect
    to this command, which takes over the scan until its end, every result recorded
    once. A client still attached is asked to let go first. Ctrl-C cancels the pilot,
    SIGHUP detaches again. Exit codes as for `pilotkit run`.
    """
    from .run import attach_pilot

    sys.exit(attach_pilot(pilot, as_json=as_json, quiet=quiet, progress_interval=progress_interval))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins: versions, hooks, what they register, load errors."""
    from ..plugins import get_plugins

    pm = get_plugins()
    if as_json:
        echo_json([info.to_dict() for info in pm.info.values()])
        return
    from .render import print_plugins

    print_plugins(pm)


@cli.command(hidden=False)
@click.option("--connect", required=True, metavar="HOST:PORT", help="The pilot's agent address.")
@click.option(
    "--token-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the pilot's token.",
)
@click.option("--pilot", "pilot_id", required=True, help="The pilot's id.")
@click.option(
    "--head", is_flag=True, help="Run as the batch script's head: start node agents, relay signals."
)
@click.option("--node-name", help="Report this node name instead of the host name.")
@click.argument("launch", nargs=-1, type=click.UNPROCESSED)
def agent(
    connect: str, token_file: Path, pilot_id: str, head: bool, node_name: str | None, launch: tuple[str, ...]
) -> None:
    """Run a node agent (started by a batch pilot on each node; not for direct use)."""
    from ..agent_main import agent_command

    sys.exit(agent_command(connect, token_file, pilot_id, head, list(launch), node_name))


@cli.command()
@click.option("--plugin", metavar="KIND:ID", help="A plugin's options instead, e.g. apps:tasks.")
def schema(plugin: str | None) -> None:
    """Print the JSON schema of pilot specs (or of one plugin's options)."""
    from ..spec import json_schema, options_schema

    if plugin is None:
        echo_json(json_schema())
        return
    from ..plugins import get_plugins

    kind, _, ident = plugin.partition(":")
    if kind not in ("providers", "launchers", "runtimes", "stagers", "apps") or not ident:
        raise PilotkitError(
            f"--plugin: expected KIND:ID with KIND one of providers, launchers, runtimes, stagers, apps; got '{plugin}'"
        )
    echo_json(options_schema(get_plugins().get(kind, ident)))


cli.add_lazy(
    {
        **{
            name: f"pilotkit.cli.daemon_commands:{name}"
            for name in (
                *("daemon", "submit", "status", "events", "logs", "tasks", "queue"),
                *("describe", "failures", "drain", "cancel", "retry"),
            )
        },
        "shutdown": "pilotkit.cli.daemon_commands:shutdown_command",
        "timeline": "pilotkit.cli.nodes:timeline",
        "nodes": "pilotkit.cli.nodes:nodes",
        "results": "pilotkit.cli.results:results",
        "tui": "pilotkit.cli.tui:tui",  # click only: the dashboard loads when the command runs
        "container": "pilotkit.cli.container:container",
        "config": "pilotkit.cli.config:config",
        "doctor": "pilotkit.cli.doctor:doctor",
        "init": "pilotkit.cli.init:init",
        "examples": "pilotkit.cli.share:examples",
        "docs": "pilotkit.cli.share:docs",
    }
)


def main() -> None:
    try:
        cli(prog_name="pilotkit")
    except BrokenPipeError:
        _closed_pipe()


def _closed_pipe() -> None:
    """stdout was closed by its reader (``pilotkit status | head -1``): end quietly,
    without a traceback or a complaint when Python flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


if __name__ == "__main__":
    main()
