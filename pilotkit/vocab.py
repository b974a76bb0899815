"""The words of pilotkit, defined once: pilot states, task states, attempt outcomes,
exit codes, task counts and the paths of a run directory.

Every other module (the pilot, the scheduler, the daemon, the CLI, the dashboard and
the wire protocol) uses these. Two words are easy to mix up:

- a task's **status** is where it is: ``queued``, ``running``, ``done``, ``failed``,
  ``cancelled`` (:class:`TaskStatus`);
- an attempt's **outcome** is how it ended: ``ok``, ``failed``, ``timeout``,
  ``killed``, ``lost``, ``spawn-error``, ``stopped``, or ``cancelled`` for a task that
  never ran to the end (:class:`Outcome`). A task's outcome is its last attempt's.

To **drain** is to start no new task and let the running ones finish; to **cancel** is
to stop the running ones too (SIGTERM, SIGKILL after the grace period).
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Literal

import msgspec

# --------------------------------------------------------------------------- pilots


class PilotState(enum.StrEnum):
    """Where a pilot is in its life. The last four are terminal."""

    NEW = "new"
    """Created, nothing claimed yet."""
    CLAIMING = "claiming"
    """Asking the provider for resources (for a batch system: queued)."""
    PROBING = "probing"
    """Node agents are starting and reporting what each node has."""
    STAGING = "staging"
    """The container image is being made available on the nodes."""
    DEPLOYING = "deploying"
    """The app is starting its services (a scheduler, workers...)."""
    RUNNING = "running"
    """The app's work is running."""
    DRAINING = "draining"
    """No new work starts; running work finishes (drain) or is stopped (cancel)."""
    EVICTING = "evicting"
    """Agents stop, the allocation is released."""
    DONE = "done"
    """Everything ran and succeeded."""
    FAILED = "failed"
    """Something failed: a task after its retries, or the pilot itself."""
    CANCELLED = "cancelled"
    """Stopped by the user (Ctrl-C, cancel) or from outside (scancel)."""
    WALLTIME_EXPIRED = "walltime-expired"
    """The allocation's walltime ran out; not a failure. Unfinished work is reported."""

    @property
    def terminal(self) -> bool:
        return self.value in TERMINAL_STATES


TERMINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled", "walltime-expired"})
"""The pilot states a pilot never leaves."""

WINDING_DOWN_STATES: frozenset[str] = frozenset({"draining", "evicting"})
"""The states in which a killed attempt counts as cancelled, not failed."""


# --------------------------------------------------------------------------- tasks


class TaskStatus(enum.StrEnum):
    """Where a task is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    """Failed its last allowed attempt."""
    CANCELLED = "cancelled"
    """Never ran to the end because the pilot drained or was cancelled."""


class Outcome(enum.StrEnum):
    """How an attempt ended (and a task: its last attempt's outcome)."""

    OK = "ok"
    """Exit status 0."""
    FAILED = "failed"
    """A non-zero exit status."""
    TIMEOUT = "timeout"
    """Ran past the task's time limit and was stopped."""
    KILLED = "killed"
    """Stopped by a signal it did not ask for (the pilot cancelling it, the OOM killer...)."""
    LOST = "lost"
    """Its node was lost; the attempt does not count against the task's retries."""
    SPAWN_ERROR = "spawn-error"
    """The command could not be started."""
    STOPPED = "stopped"
    """Stopped by its app because it was no longer needed (a service): a success."""
    CANCELLED = "cancelled"
    """The task never ran to the end: the pilot drained or was cancelled first."""
    PRUNED = "pruned"
    """Stopped by an adaptive search whose pruner judged its intermediate reports
    unpromising: not a failure, never retried."""
    PREEMPTED = "preempted"
    """Stopped at its allocation's drain point, to run again in another allocation of
    its campaign; not counted against the task's retries (never a task's last outcome)."""


SUCCESS_OUTCOMES: frozenset[str] = frozenset({"ok", "stopped", "pruned"})


def final_status(outcome: str, winding_down: bool = False) -> TaskStatus:
    """A task's status once its last attempt ended with ``outcome``; ``winding_down``:
    the pilot was draining or evicting (a killed attempt was then cancelled)."""
    if outcome in SUCCESS_OUTCOMES:
        return TaskStatus.DONE
    if outcome == Outcome.CANCELLED or (outcome == Outcome.KILLED and winding_down):
        return TaskStatus.CANCELLED
    return TaskStatus.FAILED


class Counts(msgspec.Struct):
    """Task counts of a pilot or of one task group (on the wire, in ``status``)."""

    total: int = 0
    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled

    def settle(self) -> None:
        """Set ``queued`` from the others (counts folded from events)."""
        self.queued = self.total - self.running - self.finished

    def add(self, other: Counts) -> None:
        self.total += other.total
        self.queued += other.queued
        self.running += other.running
        self.done += other.done
        self.failed += other.failed
        self.cancelled += other.cancelled


# --------------------------------------------------------------------------- exit codes


class ExitCode(enum.IntEnum):
    """How ``pilotkit run`` and ``pilotkit submit --wait`` exit."""

    DONE = 0
    FAILED = 1
    """A task failed after its retries, or the pilot failed; also any unexpected error."""
    BAD_INPUT = 2
    """A bad spec, option or argument (one line names the file, line and key)."""
    WALLTIME_EXPIRED = 3
    DETACHED = 4
    """``pilotkit run`` let go of a batch pilot that goes on in its allocation (its
    terminal went away: SIGHUP); ``pilotkit attach`` comes back to it."""
    CANCELLED = 130
    """Cancelled (Ctrl-C, ``pilotkit cancel``, scancel): 128 + SIGINT."""


_EXIT_CODES: dict[str, ExitCode] = {
    PilotState.DONE: ExitCode.DONE,
    PilotState.FAILED: ExitCode.FAILED,
    PilotState.WALLTIME_EXPIRED: ExitCode.WALLTIME_EXPIRED,
    PilotState.CANCELLED: ExitCode.CANCELLED,
}


def exit_code(state: str) -> int:
    """The exit status for a pilot that ended in ``state``."""
    return int(_EXIT_CODES.get(state, ExitCode.FAILED))


# --------------------------------------------------------------------------- run directory


RESULTS_FILE = "results.jsonl"
"""One JSON line per finished task (:mod:`pilotkit.results`)."""
PILOT_LOG = "pilot.log"
SPEC_RECORD = "spec.json"
"""The spec a run started with (``pilotkit run``), to compare a ``--resume`` against."""
PIDS_DIR = "pids"
"""``pids/<task id>.<attempt>``: ``pid start-time mark`` of each running attempt."""
TASKS_DIR = "tasks"
SEARCH_DIR = "search"
"""Where adaptive searches keep their state (a sampler's study), one file per group."""
"""``tasks/<task id>/attempt-<n>.out|err``: each attempt's output."""
TOKEN_FILE = "token"
"""In the daemon's runtime directory: the secret a TCP client presents."""
ATTACH_FILE = "attach.json"
"""In a batch pilot's run directory (``pilotkit run``): what ``pilotkit attach`` needs to
come back to it."""
PILOT_TOKEN_FILE = ".pilot-token"
"""In a batch pilot's run directory: the secret its node agents present (0600)."""
PILOT_ADDRESS_FILE = ".pilot-address"
"""In a batch pilot's run directory: ``host:port`` its agents call back to; an agent
whose connection dropped reads it again, so a pilot that comes back elsewhere is found."""
JOURNAL_DIR = ".journal"
"""``.journal/<node>.jsonl``: each node agent's finished attempts, appended and fsynced
before they are sent (:mod:`pilotkit.journal`)."""

Stream = Literal["out", "err"]

CheckLevel = Literal["ok", "warning", "error"]
"""How one check of ``pilotkit doctor`` or ``pilotkit probe`` came out."""

ATTEMPT_FILE = re.compile(r"attempt-(\d+)\.(?:out|err)")


def attempt_file(attempt: int, stream: Stream) -> str:
    """``attempt-<n>.out`` or ``attempt-<n>.err``."""
    return f"attempt-{attempt}.{stream}"


def metrics_file(attempt: int) -> str:
    """``attempt-<n>.metrics.jsonl``: where an attempt appends its metrics
    (``PILOTKIT_METRICS``), one JSON object a line."""
    return f"attempt-{attempt}.metrics.jsonl"


def pid_file(workdir: Path, task_id: str, attempt: int) -> Path:
    """Where a running attempt's pid, start time and mark are recorded."""
    return workdir / PIDS_DIR / f"{task_id}.{attempt}"


def journal_file(workdir: Path, node: str) -> Path:
    """A node agent's journal of finished attempts in a run directory."""
    return workdir / JOURNAL_DIR / f"{node}.jsonl"


def task_dir(workdir: Path, task_id: str) -> Path:
    """A task's directory in a run directory."""
    return workdir / TASKS_DIR / task_id


def attempt_log(workdir: Path, task_id: str, attempt: int, stream: Stream) -> Path:
    """Where an attempt's stdout (``out``) or stderr (``err``) goes."""
    return workdir / TASKS_DIR / task_id / attempt_file(attempt, stream)
