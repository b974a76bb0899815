"""Where the dashboard's data comes from: the contract both sources fulfil.

A source runs as one long task (a Textual worker). It applies what it receives to the
:class:`~pilotkit.tui.model.DashboardModel` in place and calls ``changed()`` after each
batch; the app coalesces those calls into at most ten repaints a second. It reports its
connection through ``connection()``. Actions (drain, cancel, submit...) and log streams
are methods the screens call from their own workers.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PilotkitError, SpecProblem
from ..protocol import DescribeResult, FailuresResult, NodesResult, QueueResult, TimelineResult
from .model import Connection, DashboardModel

if TYPE_CHECKING:
    from ..campaign import CampaignStatus

ACTIONS = ("drain", "cancel", "retry")

Changed = Callable[[], None]
LogPiece = tuple[str, list[float | None] | None]
"""A piece of a log: its text, and the time each line ending in it was written (one for
each newline, None where unknown; no list: no times at all)."""
ConnectionCallback = Callable[[Connection], None]


class ActionRefused(PilotkitError):
    """An action this dashboard may not do (read-only, a replay, an old daemon)."""


@dataclass(frozen=True)
class Problem:
    """One problem of a spec, from a local check or from the daemon."""

    message: str
    key: str = ""
    line: int | None = None
    suggestion: str | None = None

    @classmethod
    def from_spec(cls, p: SpecProblem) -> Problem:
        return cls(message=p.message, key=p.key, line=p.line, suggestion=p.suggestion)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Problem:
        line = d.get("line")
        return cls(
            message=str(d.get("message", "")),
            key=str(d.get("key") or ""),
            line=line if isinstance(line, int) else None,
            suggestion=d.get("suggestion") if isinstance(d.get("suggestion"), str) else None,
        )

    def format(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        key = f"{self.key}: " if self.key else ""
        hint = f" (did you mean '{self.suggestion}'?)" if self.suggestion else ""
        return f"{where}{key}{self.message}{hint}"


class SubmitRefused(PilotkitError):
    """The daemon refused a spec; ``problems`` says where."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.format() for p in problems) or "invalid spec", title="invalid spec")
        self.problems = problems


class DataSource(abc.ABC):
    """A live daemon or a recorded event log."""

    mode: str = "live"
    """``live`` or ``replay``."""
    can_control: bool = True
    """Whether actions (drain, cancel, submit...) can work at all."""
    remote: bool = False
    """The daemon runs on another machine (its local pilots' nodes are not this one)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data comes from, for the header."""

    @abc.abstractmethod
    async def run(self, model: DashboardModel, changed: Changed, connection: ConnectionCallback) -> None:
        """Feed ``model`` until cancelled (a replay may return once its log is in)."""

    def watch(self, pilot_id: str | None) -> None:  # noqa: B027 - optional
        """The user looks at this pilot (None: at none): follow its events and metrics."""

    def reconnect(self) -> None:  # noqa: B027 - optional
        """Try again now (after the source gave up, or while it waits)."""

    @abc.abstractmethod
    def logs(self, pilot: str, task: str | None, *, stderr: bool = False, tail: int = 500,
             follow: bool = True) -> AsyncIterator[LogPiece]:
        """Text of a task's stdout/stderr (or, without ``task``, the pilot's log), with
        the time its lines were written where known."""

    @abc.abstractmethod
    async def control(self, action: str, pilot: str) -> str:
        """Do ``action`` (one of :data:`ACTIONS`) to ``pilot``; a line saying what happened."""

    async def queue(self, pilot: str) -> QueueResult:
        """What waits in ``pilot`` and why, its rate and ETA (the daemon's ``queue``)."""
        raise ActionRefused("the queue comes from a live daemon: a replay has none")

    async def throughput(self, pilot: str) -> QueueResult:
        """``pilot``'s rate and ETA against the drain point (the daemon's ``queue``
        without its list of tasks)."""
        raise ActionRefused("the rate comes from a live daemon: a replay has none")

    async def describe_pilot(self, pilot: str) -> DescribeResult:
        """``pilot``'s spec, resources, job, nodes and files (the daemon's ``describe``)."""
        raise ActionRefused("describe comes from a live daemon: a replay has no spec")

    async def failures(self, pilot: str) -> FailuresResult:
        """``pilot``'s failed tasks grouped alike (the daemon's ``failures``)."""
        raise ActionRefused("failures come from a live daemon: a replay has none")

    async def retry_tasks(self, pilot: str, tasks: list[str]) -> str:
        """Run ``pilot`` again with only these of its failed tasks (and its unfinished
        ones); a line saying what happened."""
        raise ActionRefused("retry: a replay is read-only")

    async def timeline(self, pilot: str) -> TimelineResult:
        """Which task ran on which node and when (the daemon's ``timeline``)."""
        raise ActionRefused("the timeline comes from a live daemon")

    async def nodes(self, pilot: str) -> NodesResult:
        """Each node of ``pilot`` now (the daemon's ``nodes``)."""
        raise ActionRefused("the node view comes from a live daemon")

    async def campaign(self, name: str) -> CampaignStatus:
        """The campaign ``name`` (its name, id or directory) from its ``campaign.json``
        on this machine, as ``pilotkit status NAME`` reads it."""
        from ..campaign import find_campaign, read_status

        def read() -> CampaignStatus:
            path = find_campaign(name)
            if path is None:
                raise PilotkitError(f"no campaign '{name}' on this machine (its name, id or directory)")
            try:
                return read_status(path)
            except (OSError, ValueError) as exc:
                raise PilotkitError(f"{path}: {exc}") from None

        return await asyncio.to_thread(read)

    @abc.abstractmethod
    async def submit(self, text: str, path: str | None) -> str:
        """Submit a spec; the new pilot's id. Raises :class:`SubmitRefused`."""
