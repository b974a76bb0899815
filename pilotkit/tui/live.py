"""The live source: a pilotkit daemon, through :mod:`pilotkit.client`.

What it follows, on one connection:

- ``status`` every ``poll`` seconds: every pilot's summary (the overview);
- the events of the pilot on screen and of running pilots (up to ``follow_limit``), each
  from where the model left it (``since``), so a reconnect neither loses nor repeats;
- the metrics of the pilot on screen.

A lost connection is shown as such and retried with exponential back-off (``backoff``
seconds doubling up to ``cap``), ``retries`` times; then the source waits for
:meth:`LiveSource.reconnect`. Without a daemon on this machine it says how to start
one; it starts one itself (``pilotkit daemon --detach``, so pilots outlive the
dashboard) only when asked to (``pilotkit tui --start-daemon``): a daemon the user has
just stopped stays stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

import msgspec

from ..client import Client, DaemonError, Target, open_client
from ..errors import PilotkitError
from ..events import PilotStateChanged, TaskCancelled
from ..events import decode as decode_event
from ..protocol import (
    DescribeResult,
    EventsParams,
    FailuresResult,
    NodesResult,
    QueueResult,
    StreamDropped,
    StreamEvent,
    TimelineResult,
)
from .model import Connection, DashboardModel
from .source import ActionRefused, Changed, ConnectionCallback, DataSource, LogPiece, Problem, SubmitRefused

if TYPE_CHECKING:
    from ..campaign import CampaignStatus

log = logging.getLogger("pilotkit.tui")

NO_DAEMON = "no daemon runs here: start one with 'pilotkit daemon --detach' (or 'pilotkit tui --start-daemon')"
"""What the header says when no local daemon answers and the dashboard may not start one."""
CONNECTION_ERRORS = (PilotkitError, ConnectionError, OSError, EOFError, asyncio.IncompleteReadError)


class LiveSource(DataSource):
    mode = "live"
    can_control = True

    def __init__(
        self,
        target: Target | None = None,
        *,
        start_daemon: bool = False,
        retries: int = 8,
        backoff: float = 0.5,
        cap: float = 10.0,
        poll: float = 1.0,
        follow_limit: int = 16,
    ) -> None:
        self.target = target or Target()
        self.local = not (self.target.host or self.target.tcp or self.target.socket)
        self.remote = bool(self.target.host or self.target.tcp)
        self.start_daemon = start_daemon and self.local
        self.retries = retries
        self.backoff = backoff
        self.cap = cap
        self.poll = poll
        self.follow_limit = follow_limit
        self.client: Client | None = None
        self.model: DashboardModel | None = None
        self.watched: str | None = None
        self._wake = asyncio.Event()
        self._poke = asyncio.Event()
        self._cancelled: set[str] = set()
        """Pilots whose queued tasks were just cancelled: their names are fetched (an event
        counts them but does not name them), so the task list shows them."""
        self._description = self._where()
        self._values: tuple[str, int, float, bool] | None = None
        """(pilot, its tasks' version, monotonic time, whether any task had some) of the last
        fetch of parameters and metrics."""

    def _where(self) -> str:
        t = self.target
        if t.host:
            return f"daemon on {t.host} (ssh)"
        if t.tcp:
            return f"daemon at {t.tcp}"
        return "local daemon"

    def describe(self) -> str:
        return self._description

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1, 2...)."""
        return float(min(self.cap, self.backoff * 2 ** max(0, attempt - 1)))

    # -------------------------------------------------------------- control of the loop

    def watch(self, pilot_id: str | None) -> None:
        self.watched = pilot_id
        self._poke.set()

    def reconnect(self) -> None:
        self._wake.set()

    # -------------------------------------------------------------- the loop

    async def run(self, model: DashboardModel, changed: Changed, connection: ConnectionCallback) -> None:
        self.model = model
        model.frozen_clock = False
        attempt = 0
        tried_start = False
        while True:
            error = ""
            connection(Connection("connecting" if attempt == 0 else "reconnecting", self._description, attempt))
            try:
                client = await open_client(self.target)
            except CONNECTION_ERRORS as exc:
                error = _message(exc)
                if self.start_daemon and not tried_start:
                    tried_start = True
                    connection(Connection("connecting", "starting a daemon (pilotkit daemon --detach)"))
                    started = await self._start_daemon()
                    if started is None:
                        continue
                    error = started
                elif self.local and not self.start_daemon:
                    error = f"{error}; {NO_DAEMON}"
            else:
                attempt = 0
                try:
                    await self._session(client, model, changed, connection)
                    error = "the daemon closed the connection"
                except CONNECTION_ERRORS as exc:
                    error = _message(exc)
                finally:
                    self.client = None
                    with contextlib.suppress(Exception):
                        await client.close()
            attempt += 1
            if attempt > self.retries:
                connection(Connection("lost", f"{error} (gave up after {self.retries} retries: R to retry)",
                                      attempt - 1))
                await self._wake.wait()
                self._wake.clear()
                attempt = 0
                continue
            wait = self.delay(attempt)
            connection(Connection("reconnecting", error, attempt, wait))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def _start_daemon(self) -> str | None:
        """Start a detached daemon; None when it runs, else why not."""
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pilotkit.cli.main", "daemon", "--detach",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        except (OSError, TimeoutError) as exc:
            return f"could not start a daemon: {exc}"
        if proc.returncode != 0:
            lines = (err or out).decode(errors="replace").strip().splitlines()
            return f"could not start a daemon: {lines[-1] if lines else f'exit {proc.returncode}'}"
        return None

    async def _session(self, client: Client, model: DashboardModel, changed: Changed,
                       connection: ConnectionCallback) -> None:
        status = await client.status_full()
        self.client = client
        model.server = client.server
        model.where = client.where
        d = status.daemon
        self._description = f"daemon pid {d.pid} on {d.host} ({d.version})"
        model.apply_status(status.pilots, status.daemon)
        model.campaigns = status.campaigns
        connection(Connection("connected", self._description))
        changed()
        followers: dict[str, asyncio.Task[None]] = {}
        metrics: tuple[str, asyncio.Task[None]] | None = None
        try:
            while True:
                desired = [p.id for p in model.ordered() if not p.terminal][: self.follow_limit]
                watched = self.watched
                if watched is not None and watched not in desired:
                    desired.append(watched)
                for pid in desired:
                    task = followers.get(pid)
                    if task is None or task.done():
                        if task is not None:
                            self._check(task)
                            view = model.pilots.get(pid)
                            if view is not None and view.terminal and view.hydrated:
                                continue  # followed to its end
                        followers[pid] = asyncio.ensure_future(self._follow(client, model, pid, changed))
                for pid in [p for p in followers if p not in desired]:
                    followers.pop(pid).cancel()
                if metrics is not None and (metrics[0] != watched or metrics[1].done()):
                    if metrics[1].done():
                        self._check(metrics[1])
                    else:
                        metrics[1].cancel()
                    metrics = None
                if watched is not None and metrics is None:
                    metrics = (watched, asyncio.ensure_future(self._metrics(client, model, watched, changed)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), self.poll)
                self._poke.clear()
                if client.error is not None:
                    raise client.error
                status = await client.status_full()
                model.apply_status(status.pilots, status.daemon)
                model.campaigns = status.campaigns
                await self._fetch_cancelled(client, model)
                await self._fetch_values(client, model)
                changed()
        finally:
            tasks = list(followers.values()) + ([metrics[1]] if metrics is not None else [])
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    async def _fetch_cancelled(self, client: Client, model: DashboardModel) -> None:
        while self._cancelled:
            pid = self._cancelled.pop()
            view = model.pilots.get(pid)
            if view is None:
                continue
            try:
                page = await client.tasks(pid, status=["cancelled"], limit=10_000)
            except DaemonError as exc:
                if exc.code == "closed":
                    raise
                log.info("cannot list the cancelled tasks of %s: %s", pid, exc)
                continue
            view.apply_tasks(page.tasks)

    VALUES_EVERY = 5.0
    """Least seconds between two fetches of the watched pilot's parameters and metrics."""
    VALUES_NONE_EVERY = 30.0
    """The same when the last fetch found none (a pilot of plain commands)."""

    async def _fetch_values(self, client: Client, model: DashboardModel) -> None:
        """The watched pilot's task parameters and metrics (the events do not carry them),
        fetched again only when its tasks changed, at most every :attr:`VALUES_EVERY`."""
        pid = self.watched
        view = model.pilots.get(pid) if pid is not None else None
        if pid is None or view is None:
            return
        last = self._values
        now = time.monotonic()
        if last is not None and last[0] == pid:
            every = self.VALUES_EVERY if last[3] else self.VALUES_NONE_EVERY
            if last[1] == view.tasks_version or now - last[2] < every:
                return
        version = view.tasks_version
        try:
            page = await client.tasks(pid, limit=10_000)
        except DaemonError as exc:
            self._values = (pid, version, now, False)
            if exc.code == "closed":
                raise
            log.info("cannot list the tasks of %s: %s", pid, exc)
            return
        found = any(getattr(t, "params", None) or getattr(t, "metrics", None) for t in page.tasks)
        self._values = (pid, version, now, found)
        view.apply_values(page.tasks)

    @staticmethod
    def _check(task: asyncio.Task[None]) -> None:
        """Re-raise a follower's connection error (others were logged)."""
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, DaemonError) and exc.code == "closed":
            raise exc

    @staticmethod
    async def _services(client: Client, model: DashboardModel, pid: str) -> None:
        """What the pilot serves changes with its state (its app writes it once running)."""
        try:
            detail = await client.pilot(pid)
        except DaemonError as exc:
            if exc.code == "closed":
                raise
            return
        view = model.pilot(pid)
        if detail.services != view.services:
            view.services = list(detail.services)
            view.version += 1

    async def _follow(self, client: Client, model: DashboardModel, pid: str, changed: Changed) -> None:
        """Apply ``pid``'s events from where the model left it, then live ones."""
        view = model.pilot(pid)
        start = view.last_seq
        try:
            if start == 0:
                with contextlib.suppress(DaemonError):
                    model.apply_detail(await client.pilot(pid), tasks=False)
            stream = await client.subscribe("events", EventsParams(pilot=pid, since=start, follow=True))
        except DaemonError as exc:
            if exc.code == "closed":
                raise
            log.info("cannot follow %s: %s", pid, exc)
            return
        upto = stream.result.seq if stream.result is not None else 0
        if start == 0 and upto == 0:
            view.hydrated = True
        n = 0
        try:
            async for item in stream:
                if isinstance(item, StreamEvent):
                    event = _decode(item.event)
                    model.apply_event(event, item.seq)
                    if isinstance(event, TaskCancelled):
                        self._cancelled.add(pid)
                        self._poke.set()
                    if isinstance(event, PilotStateChanged) and item.seq >= upto:
                        await self._services(client, model, pid)
                    if start == 0 and not view.hydrated and item.seq >= upto:
                        view.hydrated = True
                elif isinstance(item, StreamDropped):
                    view.hydrated = False  # counts from the summaries from now on
                    view.log.append((model.now(), {"type": "dropped", "pilot": pid,
                                                   "detail": f"{item.count} event(s) dropped: too slow"}))
                    view.log_total += 1
                n += 1
                if n % 500 == 0:
                    changed()
                    await asyncio.sleep(0)
                elif stream.queue.empty():
                    changed()
            if start == 0:
                view.hydrated = True
            changed()
        finally:
            await stream.close()

    async def _metrics(self, client: Client, model: DashboardModel, pid: str, changed: Changed) -> None:
        try:
            n = 0
            async for sample in client.metrics(pid, history=True):
                if isinstance(sample, msgspec.Struct):
                    model.apply_metric(sample)
                n += 1
                if n % 200 == 0:
                    await asyncio.sleep(0)
                changed()
        except DaemonError as exc:
            if exc.code == "closed":
                raise
            log.info("no metrics for %s: %s", pid, exc)

    # -------------------------------------------------------------- actions

    def _client(self) -> Client:
        if self.client is None:
            raise PilotkitError("not connected to the daemon")
        return self.client

    async def _call(self, coro: Coroutine[Any, Any, str]) -> str:
        try:
            return await coro
        finally:
            self._poke.set()

    async def control(self, action: str, pilot: str) -> str:
        client = self._client()

        async def do() -> str:
            if action == "drain":
                r = await client.drain(pilot)
                return f"{r.pilot}: draining (was {r.state})"
            if action == "cancel":
                r = await client.cancel(pilot)
                return f"{r.pilot}: cancelling (was {r.state})"
            if action == "retry":
                rr = await client.retry(pilot, failed=True)
                return f"{rr.pilot}: run {rr.run}: {rr.requeued} task(s) queued again"
            raise ActionRefused(f"unknown action '{action}'")

        if action == "retry" and self.model is not None:
            view = self.model.pilots.get(pilot)
            if view is not None:
                view.hydrated = False  # a new run: counts from the summaries
        return await self._call(do())

    def _needs(self, method: str) -> Client:
        client = self._client()
        methods = client.server.methods if client.server is not None else []
        if method not in methods:
            raise ActionRefused(f"this daemon has no '{method}' method (an older pilotkit): upgrade it")
        return client

    async def campaign(self, name: str) -> CampaignStatus:
        """From ``campaign.json`` on this machine, else (and always over ``--host``) from
        the daemon's ``campaign``."""
        if not self.remote:
            with contextlib.suppress(PilotkitError):
                return await super().campaign(name)
        from ..campaign import CampaignStatus

        result = await self._needs("campaign").campaign(name)
        try:
            return msgspec.json.decode(result.campaign, type=CampaignStatus)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise PilotkitError(f"campaign '{name}': unreadable: {exc}") from None

    async def queue(self, pilot: str) -> QueueResult:
        return await self._needs("queue").queue(pilot)

    async def throughput(self, pilot: str) -> QueueResult:
        return await self._needs("queue").queue(pilot, limit=0)

    async def describe_pilot(self, pilot: str) -> DescribeResult:
        return await self._needs("describe").describe(pilot)

    async def failures(self, pilot: str) -> FailuresResult:
        return await self._needs("failures").failures(pilot)

    async def retry_tasks(self, pilot: str, tasks: list[str]) -> str:
        client = self._client()

        async def do() -> str:
            r = await client.retry(pilot, failed=True, tasks=tasks)
            return f"{r.pilot}: run {r.run}: {r.requeued} task(s) queued again"

        if self.model is not None:
            view = self.model.pilots.get(pilot)
            if view is not None:
                view.hydrated = False  # a new run: counts from the summaries
        return await self._call(do())

    async def timeline(self, pilot: str) -> TimelineResult:
        return await self._needs("timeline").timeline(pilot)

    async def nodes(self, pilot: str) -> NodesResult:
        return await self._needs("nodes").nodes(pilot)

    async def submit(self, text: str, path: str | None) -> str:
        client = self._client()

        async def do() -> str:
            try:
                result = await client.submit(text, path=path)
            except DaemonError as exc:
                if exc.code == "invalid-spec":
                    data = exc.data if isinstance(exc.data, dict) else {}
                    raw = data.get("problems") or []
                    problems = [Problem.from_dict(p) for p in raw if isinstance(p, dict)]
                    raise SubmitRefused(problems or [Problem(exc.message)]) from None
                raise
            if self.model is not None:
                self.model.pilot(result.pilot)
            return result.pilot

        return await self._call(do())

    async def logs(self, pilot: str, task: str | None, *, stderr: bool = False, tail: int = 500,
                   follow: bool = True) -> AsyncIterator[LogPiece]:
        client = self._client()
        async for item in client.log_items(pilot, task, stderr=stderr, tail=tail, follow=follow):
            yield item.data, item.times


def _decode(raw: msgspec.Raw) -> Any:
    data = bytes(raw)
    try:
        return decode_event(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        value = msgspec.json.decode(data)
        return value if isinstance(value, dict) else {"value": value}


def _message(exc: BaseException) -> str:
    if isinstance(exc, PilotkitError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
