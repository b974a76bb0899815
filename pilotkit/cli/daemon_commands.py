"""CLI commands for the daemon: ``daemon``, ``submit``, ``status``, ``events``, ``logs``,
``tasks``, ``drain``, ``cancel``, ``retry``, ``shutdown``.

Every command but ``daemon`` is a client of the control API (:mod:`pilotkit.client`):
against this machine's daemon by default, or another machine's with ``--host``.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import PilotkitError
from ..vocab import exit_code
from .campaign import campaign_first, show_campaign
from .params import DurationType

if TYPE_CHECKING:
    from ..campaign import CampaignStatus
    from ..client import Client, DaemonError, EventItem
    from ..protocol import CampaignSummary, PilotDetail, PilotSummary

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")



# --------------------------------------------------------------------------- helpers


def connection_options(fn: F) -> F:
    """The options that say where the daemon is."""
    options = [
        click.option("--host", envvar="PILOTKIT_HOST", metavar="[USER@]HOST",
                     help="Reach the daemon on this machine over SSH (or an alias of your SSH config)."),
        click.option("--ssh-config", type=click.Path(dir_okay=False), metavar="FILE",
                     help="SSH config file to use instead of ~/.ssh/config."),
        click.option("--remote-socket", metavar="PATH",
                     help="The daemon's socket on --host (default: ask the remote pilotkit)."),
        click.option("--remote-pilotkit", metavar="COMMAND",
                     help="How to run pilotkit on --host (default: pilotkit)."),
        click.option("--socket", "socket_path", metavar="PATH", help="The local daemon's socket."),
        click.option("--tcp", metavar="HOST:PORT", help="A daemon listening on TCP."),
        click.option("--token", envvar="PILOTKIT_TOKEN", help="TCP: the daemon's token (hex)."),
        click.option("--tls-ca", metavar="FILE", help="TCP: use TLS and trust this CA file."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def with_client(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run ``fn(client, **options)`` in an event loop, connected as the options say."""

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> T:
        import asyncio

        from ..client import Target, open_client

        host = kwargs.pop("host")
        socket_path = kwargs.pop("socket_path")
        remote_socket = kwargs.pop("remote_socket")
        target = Target(
            host=host,
            socket=remote_socket if host else socket_path,
            ssh_config=kwargs.pop("ssh_config"),
            remote_command=kwargs.pop("remote_pilotkit"),
            tcp=kwargs.pop("tcp"),
            token=kwargs.pop("token"),
            tls_ca=kwargs.pop("tls_ca"),
        )

        async def main() -> T:
            client = await open_client(target)
            try:
                return await fn(client, **kwargs)
            finally:
                await client.close()

        return asyncio.run(main())

    return wrapper


def _echo_json(data: Any) -> None:
    import msgspec

    click.echo(json.dumps(msgspec.to_builtins(data), indent=2))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


# --------------------------------------------------------------------------- daemon


def systemd_unit() -> str:
    """The shipped unit, with ExecStart naming the pilotkit this command runs from."""
    import shutil
    import sys

    from ..resources import shared

    text = (shared("systemd") / "pilotkit.service").read_text(encoding="utf-8")
    exe = shutil.which("pilotkit") or str(Path(sys.executable).with_name("pilotkit"))
    return text.replace("ExecStart=/usr/bin/env pilotkit daemon", f"ExecStart={Path(exe).resolve()} daemon")


@click.command()
@click.option("--detach", is_flag=True, help="Run in the background (logs go to the state dir).")
@click.option("--socket-path", "print_socket", is_flag=True,
              help="Print the socket a client on this machine would use, and exit.")
@click.option("--tcp", metavar="HOST:PORT",
              help="Also listen on TCP (off by default; TLS required on non-loopback addresses).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="TLS certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="TLS private key.")
@click.option("--shutdown-timeout", type=DurationType(bare_seconds=True), default=30.0, show_default=True,
              help="How long local pilots may drain at shutdown before their tasks are stopped "
                   "(30s, 2m; a bare number is seconds).")
@click.option("--log-console/--no-log-console", default=True, hidden=True)
@click.option("--systemd-unit", "print_unit", is_flag=True,
              help="Print a systemd user unit that runs this pilotkit's daemon, and exit.")
def daemon(
    detach: bool, print_socket: bool, tcp: str | None, tls_cert: Path | None, tls_key: Path | None,
    shutdown_timeout: float, log_console: bool, print_unit: bool,
) -> None:
    """Run the pilotkit daemon: pilots keep running without a terminal.

    \b
    It listens on a unix socket in $XDG_RUNTIME_DIR/pilotkit (or /tmp/pilotkit-$UID),
    keeps its state in $XDG_STATE_HOME/pilotkit/state.db and logs to daemon.log there.
    SIGTERM or Ctrl-C: local pilots drain (and resume when the daemon starts again),
    batch pilots keep their allocations; a second signal forces. SIGHUP is ignored.
    """
    from ..protocol import find_socket, runtime_dir, state_dir

    if print_unit:
        click.echo(systemd_unit(), nl=False)
        return
    if print_socket:
        click.echo(str(find_socket()))
        return
    from ..daemon.transport import is_loopback, parse_hostport

    address = parse_hostport(tcp) if tcp else None
    if (tls_cert is None) != (tls_key is None):
        raise PilotkitError("give both --tls-cert and --tls-key, or neither")
    if address is not None and tls_cert is None and not is_loopback(address[0]):
        raise PilotkitError(
            f"--tcp {tcp}: TLS is required on a non-loopback address (give --tls-cert and --tls-key)"
        )
    if detach:
        _detach(tcp, tls_cert, tls_key, shutdown_timeout)
        return
    from ..daemon.server import DaemonConfig, run_daemon

    config = DaemonConfig(
        runtime_dir=runtime_dir(), state_dir=state_dir(), tcp=address, tls_cert=tls_cert, tls_key=tls_key,
        shutdown_timeout=shutdown_timeout,
    )
    run_daemon(config, console=log_console)


def _detach(tcp: str | None, tls_cert: Path | None, tls_key: Path | None, shutdown_timeout: float) -> None:
    """Start the daemon in a new session, in the background; return once it listens."""
    import subprocess

    from ..protocol import runtime_dir, state_dir

    argv = [sys.executable, "-m", "pilotkit.cli.main", "daemon", "--no-log-console",
            "--shutdown-timeout", str(shutdown_timeout)]
    if tcp:
        argv += ["--tcp", tcp]
    if tls_cert is not None and tls_key is not None:
        argv += ["--tls-cert", str(tls_cert.resolve()), "--tls-key", str(tls_key.resolve())]
    from ..daemon.runtime_dir import read_pid

    logs = state_dir()
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / "daemon.log"
    sock = runtime_dir() / "daemon.sock"
    pid_file = runtime_dir() / "daemon.pid"
    if _accepts(sock):
        running = read_pid(pid_file)
        who = f" (pid {running})" if running else ""
        raise DaemonAlreadyRunning(f"a pilotkit daemon is already running{who}, socket {sock}")
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            close_fds=True, cwd="/",
        )
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise PilotkitError(f"the daemon did not start (exit {code}): {tail[0]} (log: {log_file})")
        if _accepts(sock) and read_pid(pid_file) == proc.pid:  # ours, not one already there
            click.echo(f"pilotkit daemon running (pid {proc.pid}); socket {sock}; log {log_file}")
            return
        time.sleep(0.05)
    raise PilotkitError(f"the daemon (pid {proc.pid}) did not open {sock} within 30s (log: {log_file})")


class DaemonAlreadyRunning(PilotkitError):
    """``daemon --detach`` found a daemon listening already: nothing was started."""

    exit_code = 1


def _accepts(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------- submit


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where task dirs, logs and results go (default: the daemon's state dir).")
@click.option("--wait", is_flag=True, help="Follow the pilot to its end; exit with its status.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--profile", envvar="PILOTKIT_PROFILE", metavar="NAME",
              help="Start from this profile of the daemon's site and user configuration (instead of the spec's).")
@click.option("--to", "to", metavar="CAMPAIGN",
              help="Add the spec's task groups to this running campaign (its name or id) instead.")
@connection_options
@with_client
async def submit(
    client: Client, spec: Path, workdir: Path | None, wait: bool, as_json: bool, profile: str | None,
    to: str | None,
) -> None:
    """Hand a pilot spec to the daemon; prints the pilot's id.

    Paths in the spec resolve on the daemon's machine ({spec_dir} is this file's
    directory there: with --host, keep the spec where both machines see it).

    With --wait, exit codes are those of 'pilotkit run': 0 done, 1 failed, 3 walltime
    expired, 130 cancelled.

    A spec with a [campaign] table starts a campaign the daemon owns (prints its id;
    'pilotkit status NAME' shows it, 'pilotkit cancel NAME' cancels it). With --to NAME,
    the spec's task groups are added to the running campaign NAME.
    """
    from ..specfile.parsing import read_text

    if to is not None and (workdir is not None or wait):
        raise click.UsageError("--to adds tasks to a running campaign: --workdir and --wait do not apply")
    text = read_text(spec)  # a small local file, read before anything else happens
    result = await client.submit(
        text, path=str(spec.resolve()), workdir=str(workdir.resolve()) if workdir else None, profile=profile, to=to
    )
    if as_json:
        _echo_json(result)
    elif to is not None:
        click.echo(f"added to campaign {result.pilot}", err=True)
    else:
        click.echo(result.pilot)
    if not wait:
        return
    if result.campaign:
        sys.exit(await _wait_campaign(Path(result.workdir)))

    def on_state(state: str, reason: str | None) -> None:
        because = f" ({reason})" if reason else ""
        click.echo(f"pilotkit: {result.pilot}: {state}{because}", err=True)

    summary = await client.wait(result.pilot, on_state)
    p = summary.progress
    click.echo(
        f"pilotkit: {summary.id} {summary.state}: {p.done} done, {p.failed} failed, {p.cancelled} cancelled "
        f"of {p.total}; results in {summary.workdir}/results.jsonl",
        err=True,
    )
    sys.exit(exit_code(summary.state))


async def _wait_campaign(workdir: Path) -> int:
    """Follow a campaign's ``campaign.json`` (on this machine) to its end; its exit code."""
    import asyncio

    import msgspec

    from ..campaign import CAMPAIGN_FILE, read_status
    from .campaign import summary_lines

    while True:
        try:
            status = await asyncio.to_thread(read_status, workdir / CAMPAIGN_FILE)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            status = None
        if status is not None and status.state not in ("running", "paused"):
            for line in summary_lines(status):
                click.echo(line, err=True)
            return exit_code(status.state)
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- status


@click.command()
@click.argument("pilot", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@campaign_first
@with_client
async def status(client: Client, pilot: str | None, as_json: bool) -> None:
    """Pilots: states, progress, resources, walltime left (one pilot: its details; a
    campaign's name, id or directory: its allocations, backlog and ETA)."""
    if pilot is not None:
        from ..client import DaemonError

        try:
            detail = await client.pilot(pilot)
        except DaemonError as exc:
            status = await _daemon_campaign(client, pilot, exc)
            show_campaign(status, as_json=as_json)
            return
        if as_json:
            _echo_json(detail)
        else:
            _print_detail(detail)
        return
    result = await client.status_full()
    if as_json:
        _echo_json(result)
        return
    if not result.pilots and not result.campaigns:
        click.echo(f"no pilots (daemon pid {result.daemon.pid} on {result.daemon.host})")
        return
    if result.pilots:
        _print_table(result.pilots)
    if result.campaigns:
        if result.pilots:
            click.echo()
        _print_campaigns(result.campaigns)


async def _daemon_campaign(client: Client, name: str, unknown: DaemonError) -> CampaignStatus:
    """The daemon's campaign ``name`` (for a name that is no pilot of it); ``unknown``
    raised again when it is no campaign of it either (or the daemon is too old to say)."""
    import msgspec

    from ..campaign import CampaignStatus
    from ..client import DaemonError
    from ..protocol import ErrorCode

    methods = client.server.methods if client.server is not None else []
    if unknown.code != ErrorCode.NOT_FOUND or "campaign" not in methods:
        raise unknown
    try:
        result = await client.campaign(name)
    except DaemonError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            raise unknown from None
        raise
    try:
        return msgspec.json.decode(result.campaign, type=CampaignStatus)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PilotkitError(f"campaign '{name}': the daemon's campaign.json is unreadable: {exc}") from None


def _print_campaigns(campaigns: list[CampaignSummary]) -> None:
    rows = [("CAMPAIGN", "STATE", "DONE/TOTAL", "FAILED", "RUNNING", "WAITING", "ALLOCATIONS", "ETA")]
    for c in campaigns:
        rows.append((c.id, c.state, f"{c.done}/{c.total}", str(c.failed), str(c.running), str(c.waiting),
                     str(c.allocations), _duration(c.eta)))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def _print_table(pilots: list[PilotSummary]) -> None:
    now = time.time()
    rows = [("PILOT", "STATE", "PROVIDER", "NODES", "CORES", "GPUS", "DONE/TOTAL", "FAILED", "LEFT", "AGE")]
    for s in pilots:
        p = s.progress
        rows.append((
            s.id, s.state + ("" if s.attached else "*"), s.provider, str(s.nodes), str(s.cores), str(s.gpus),
            f"{p.done}/{p.total}", str(p.failed), _duration(s.walltime_left), _duration(now - s.created),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if any(not s.attached for s in pilots):
        click.echo("* not attached (a batch pilot the daemon has let go of)")


def _print_detail(detail: PilotDetail) -> None:
    s = detail.summary
    p = s.progress
    lines = [
        ("pilot", s.id),
        ("state", s.state + (f" ({s.reason})" if s.reason else "")),
        ("provider", s.provider + (f", job {s.job_id}" if s.job_id else "") + ("" if s.attached else ", not attached")),
        ("workdir", s.workdir),
        ("spec", detail.spec_path or "-"),
        ("created", _when(s.created) + (f", ended {_when(s.ended)}" if s.ended else "")),
        ("resources", f"{s.nodes} node(s), {s.cores} cores, {s.gpus} GPUs"),
        ("walltime", f"{_duration(s.walltime_left)} left (ends {_when(s.walltime_end)})" if s.walltime_end else "none"),
        ("run", f"{s.run}" + (f" ({s.crashes} daemon crash(es))" if s.crashes else "")),
        ("progress", f"{p.done}/{p.total} done, {p.failed} failed, {p.running} running, {p.queued} queued, "
                     f"{p.cancelled} cancelled"),
    ]
    for key, value in lines:
        click.echo(f"{key:<10} {value}")
    for name, g in s.groups.items():
        click.echo(f"  {name:<12} {g.done}/{g.total} done, {g.failed} failed, {g.running} running, {g.queued} queued")
    for node in detail.nodes:
        m = node.latest
        load = f", cpu {m.cpu_percent:.0f}%, mem {m.memory_used / 2**30:.1f} GiB" if m else ""
        click.echo(f"node       {node.info.name}: {node.info.cores} cores, {len(node.info.gpus)} GPUs{load}")
    if detail.recent_tasks:
        click.echo("recent attempts:")
        for t in detail.recent_tasks:
            code = f" exit {t.exit_code}" if t.exit_code is not None else ""
            click.echo(f"  {t.task:<20} #{t.attempts} {t.status:<9} {t.node or '-'}{code}")


# --------------------------------------------------------------------------- events, logs, tasks


@click.command()
@click.argument("pilot")
@click.option("--follow", "-f", is_flag=True, help="Keep streaming live events until the pilot ends.")
@click.option("--since", type=int, default=0, help="Only events after this sequence number.")
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines.")
@connection_options
@with_client
async def events(client: Client, pilot: str, follow: bool, since: int, types: tuple[str, ...], as_json: bool) -> None:
    """A pilot's events: the stored ones, then (--follow) the live stream."""
    from ..client import Gap

    out = sys.stdout
    async for item in client.events(pilot, since=since, follow=follow, types=list(types) or None):
        if isinstance(item, Gap):
            line = json.dumps({"type": "dropped", "count": item.count}) if as_json else (
                f"... {item.count} event(s) dropped: this reader was too slow")
        else:
            line = _event_json(item) if as_json else _event_line(item)
        out.write(line + "\n")
        out.flush()


def _event_json(item: EventItem) -> str:
    text = item.raw.decode()
    if text.startswith("{") and len(text) > 2:
        return f'{{"seq":{item.seq},{text[1:]}'
    return text


def _event_line(item: EventItem) -> str:
    import msgspec

    data: dict[str, Any] = dict(item.event) if isinstance(item.event, dict) else msgspec.to_builtins(item.event)
    kind = data.pop("type", "?")
    t = data.pop("t", None)
    data.pop("pilot", None)
    stamp = time.strftime("%H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "-"
    detail = " ".join(f"{k}={_short(v)}" for k, v in data.items())
    return f"{item.seq:>7} {stamp} {kind:<15} {detail}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):
        keys = ("name", "provider", "job_id", "cores", "nodes")
        return "{" + ",".join(f"{k}={_short(value[k])}" for k in keys if k in value) + "}"
    if isinstance(value, list):
        return ",".join(_short(v) for v in value) if len(value) <= 4 else f"[{len(value)} items]"
    return str(value)


@click.command()
@click.argument("pilot")
@click.argument("task", required=False)
@click.option("--follow", "-f", is_flag=True, help="Keep printing what is written, until it ends.")
@click.option("--stderr", is_flag=True, help="The task's stderr instead of its stdout.")
@click.option("--attempt", type=int, help="This attempt (default: the latest).")
@click.option("--tail", type=int, default=100, show_default=True, help="Start with the last N lines (-1: all).")
@click.option("--timestamps", "-t", is_flag=True,
              help="Start each line of a task's output with the time it was written (- where unknown).")
@connection_options
@with_client
async def logs(
    client: Client, pilot: str, task: str | None, follow: bool, stderr: bool, attempt: int | None, tail: int,
    timestamps: bool,
) -> None:
    """A task's output, or (without TASK) the pilot's own log."""
    out = sys.stdout
    partial = ""
    async for item in client.log_items(pilot, task, stderr=stderr, attempt=attempt, tail=tail, follow=follow):
        if not timestamps:
            out.write(item.data)
        else:
            *lines, partial = (partial + item.data).split("\n")
            times = item.times or []
            for i, line in enumerate(lines):
                t = times[i] if i < len(times) else None
                out.write(f"{_written(t)} {line}\n")
        out.flush()
    if partial:
        out.write(f"{_written(None)} {partial}")


def _written(t: float | None) -> str:
    """A line's write time: local ``HH:MM:SS.mmm``; ``-`` padded where unknown."""
    if t is None:
        return f"{'-':<12}"
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


@click.command()
@click.argument("pilot")
@click.option("--status", "statuses", multiple=True,
              help="Only tasks in this state (queued, running, done, failed, cancelled, lost; repeatable).")
@click.option("--group", help="Only this task group.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--offset", type=int, default=0)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@with_client
async def tasks(
    client: Client, pilot: str, statuses: tuple[str, ...], group: str | None, limit: int, offset: int,
    as_json: bool,
) -> None:
    """A pilot's tasks (filtered, paged)."""
    page = await client.tasks(pilot, status=list(statuses) or None, group=group, offset=offset, limit=limit)
    if as_json:
        _echo_json(page)
        return
    for t in page.tasks:
        code = f"exit {t.exit_code}" if t.exit_code is not None else ""
        values = " ".join(f"{k}={v}" for k, v in (t.params or {}).items())
        click.echo(f"{t.task:<24} {t.status:<10} #{t.attempts:<3} {t.node or '-':<16} {t.outcome or '':<11} {code:<8}"
                   f" {values}".rstrip())
    shown = len(page.tasks)
    if page.total > shown:
        click.echo(f"({shown} of {page.total} shown from {page.offset}; use --offset/--limit)", err=True)


@click.command()
@click.argument("pilot")
@click.option("--limit", type=int, default=20, show_default=True, help="Waiting tasks listed (counts cover all).")
@click.option("--window", type=float, default=300.0, show_default=True,
              help="Seconds of finished tasks the rate is measured over.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the daemon's queue result).")
@connection_options
@with_client
async def queue(client: Client, pilot: str, limit: int, window: float, as_json: bool) -> None:
    """What waits in a pilot and why; tasks per minute and the ETA of the backlog against
    the walltime's drain point."""
    q = await client.queue(pilot, limit=limit, window=window)
    if as_json:
        _echo_json(q)
        return
    for line in queue_lines(q):
        click.echo(line)


@click.command()
@click.argument("pilot")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the daemon's describe result).")
@connection_options
@with_client
async def describe(client: Client, pilot: str, as_json: bool) -> None:
    """Everything about a pilot: its spec, resolved resources, job id, nodes, where its
    files are."""
    d = await client.describe(pilot)
    if as_json:
        _echo_json(d)
        return
    for line in d.lines():
        click.echo(line)


@click.command()
@click.argument("pilot")
@click.option("--limit", type=int, default=1000, show_default=True, help="Failed tasks read.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the daemon's failures result).")
@connection_options
@with_client
async def failures(client: Client, pilot: str, limit: int, as_json: bool) -> None:
    """A pilot's failed tasks, grouped by outcome, exit code and the last line of their
    stderr, most first."""
    f = await client.failures(pilot, limit=limit)
    if as_json:
        _echo_json(f)
        return
    click.echo(f"{f.pilot}: {f.failed} failed task(s) in {len(f.groups)} group(s)")
    for g in f.groups:
        code = f"exit {g.exit_code}" if g.exit_code is not None else "no exit code"
        names = ", ".join(g.tasks[:5]) + (f" and {g.count - 5} more" if g.count > 5 else "")
        click.echo(f"{g.count:>6}  {g.outcome} ({code}): {g.last_line or '(no stderr)'}")
        click.echo(f"        {names}")


def queue_lines(q: Any) -> list[str]:
    """The queue result in words (``pilotkit queue``)."""
    lines = [f"{q.pilot}  {q.state}  queued {q.queued}  running {q.running}  "
             f"free cores {q.free_cores}/{q.cores}  free GPUs {q.free_gpus}/{q.gpus}"]
    if q.rate is None:
        lines.append(f"rate: no task finished in the last {q.window:.0f}s")
    else:
        eta = f"backlog {q.queued + q.running}: done in {_span(q.eta)}" if q.eta is not None else ""
        when = ""
        if q.finish_at is not None:
            when = f" (at {time.strftime('%H:%M:%S', time.localtime(q.finish_at))}"
            if q.before_drain is not None and q.drain_at is not None:
                verdict = "before" if q.before_drain else "AFTER"
                when += f", {verdict} the drain point {time.strftime('%H:%M:%S', time.localtime(q.drain_at))}"
            when += ")"
        text = f"rate: {q.rate:.1f} tasks/min over the last {q.window:.0f}s; {eta}{when}"
        color = None if q.before_drain is None else ("green" if q.before_drain else "red")
        lines.append(click.style(text, fg=color) if color else text)
    if q.reasons:
        lines.append("waiting: " + ", ".join(f"{n} {reason}" for reason, n in sorted(q.reasons.items())))
    for t in q.tasks:
        needs = f"{t.cores}c" + (f"+{t.gpus}g" if t.gpus else "")
        lines.append(f"  {t.task:<24} {t.group:<12} {needs:<6} {t.reason:<13} {t.detail}")
    if q.queued > len(q.tasks) and q.tasks:
        lines.append(f"  ({len(q.tasks)} of {q.queued} waiting tasks listed; --limit N)")
    return lines


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


# --------------------------------------------------------------------------- control


def _control(verb: str, call: Callable[[Client, str], Awaitable[Any]], doc: str) -> click.Command:
    @click.argument("pilot")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @connection_options
    @with_client
    async def command(client: Client, pilot: str, as_json: bool) -> None:
        result = await call(client, pilot)
        if as_json:
            _echo_json(result)
        else:
            click.echo(f"{result.pilot}: {verb} ({result.state})")

    command.__doc__ = doc
    return click.command(verb)(command)


drain = _control("drain", lambda c, p: c.drain(p),
                 "Start no new task; let the running ones finish, then end the pilot.")
cancel = _control("cancel", lambda c, p: c.cancel(p),
                  "Cancel a pilot: queued tasks never start, running ones are stopped.")


@click.command()
@click.argument("pilot")
@click.option("--failed/--unfinished-only", default=True, show_default=True,
              help="Re-run failed tasks too, or only those that never finished.")
@click.option("--task", "tasks", multiple=True, metavar="TASK",
              help="Of the failed tasks, re-run only this one (repeatable); the others keep their results.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@with_client
async def retry(client: Client, pilot: str, failed: bool, tasks: tuple[str, ...], as_json: bool) -> None:
    """Run a finished pilot again, keeping its successful results: its failed tasks
    (--failed, the default; --task: only those named) and unfinished ones are queued again."""
    if tasks and not failed:
        raise click.UsageError("--task names failed tasks to re-run: it cannot go with --unfinished-only")
    result = await client.retry(pilot, failed=failed, tasks=list(tasks))
    if as_json:
        _echo_json(result)
    else:
        click.echo(f"{result.pilot}: run {result.run}: {result.requeued} task(s) queued again")


@click.command("shutdown")
@click.option("--force", is_flag=True, help="Kill running tasks instead of draining.")
@connection_options
@with_client
async def shutdown_command(client: Client, force: bool) -> None:
    """Stop the daemon (local pilots drain and resume when it starts again)."""
    await client.shutdown(force=force)
    click.echo("daemon stopping")
