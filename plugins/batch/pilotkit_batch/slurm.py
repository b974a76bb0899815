"""Slurm: the job script, command lines, and parsers for what the commands print.

Everything here is pure: build an argv, parse an output. Running the commands (with
retries) is :mod:`pilotkit_batch.commands`.

The job script asks for one task per node (the pilot's agent), ``--cpus-per-task`` cores
(whole nodes with ``--exclusive`` when no core count is given), ``--mem`` only when
memory is set, ``--gpus-per-node`` when GPUs are, and ``--signal=B:USR1@<margin>`` so the
agent, which the script ``exec``\\ s, learns that the walltime is about to end. It also
says ``--no-kill`` (a failed node costs the pilot that node, not the whole job) and
``--no-requeue`` (a job Slurm ended is not started again behind the pilot's back).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pilotkit.api import slurm_time

from . import hostlist
from .job import BatchJob, memory_text
from .jobstate import JobInfo, JobState
from .render import directive, render

TEMPLATE = "slurm.sh.tmpl"
SQUEUE_FORMAT = "%T|%r|%N|%L"
"""State, reason, node list, time left; ``|``-separated."""
SACCT_FIELDS = "State,ExitCode,NodeList,Elapsed"
MAX_SIGNAL_MARGIN = 65535
"""sbatch accepts ``--signal=...@N`` only up to this many seconds."""

_JOB_ID = re.compile(r"^\d+(?:[_+]\d+)?$")

# --------------------------------------------------------------------------- script


def render_script(job: BatchJob) -> str:
    """The sbatch script for ``job``."""
    lines: list[str] = []
    if job.cores is not None:
        lines.append(directive("#SBATCH", "--cpus-per-task", job.cores))
    if job.whole_nodes:
        lines.append(directive("#SBATCH", "--exclusive"))
    if job.memory is not None:
        lines.append(directive("#SBATCH", "--mem", memory_text(job.memory)))
    if job.gpus_per_node:
        lines.append(directive("#SBATCH", "--gpus-per-node", job.gpus_per_node))
    if job.walltime is not None:
        lines.append(directive("#SBATCH", "--time", slurm_time(job.walltime)))
    for option, value in (
        ("--comment", job.comment),
        ("--partition", job.partition),
        ("--account", job.account),
        ("--qos", job.qos),
        ("--constraint", job.constraint),
    ):
        if value:
            lines.append(directive("#SBATCH", option, value))
    return render(
        TEMPLATE,
        {
            "job_name": job.name,
            "nodes": job.nodes,
            "workdir": job.workdir,
            "output": job.output,
            "error": job.error,
            "signal_margin": min(MAX_SIGNAL_MARGIN, math.ceil(job.signal_margin)),
            "command": list(job.command),
        },
        {
            "resource_directives": lines,
            "environment": [directive("export", key, value) for key, value in job.env.items()],
            "prologue": prologue_lines(job.prologue),
        },
    )


def prologue_lines(lines: Sequence[str]) -> list[str]:
    """Each prologue line run in the script's own shell (so what it exports or loads
    stays), and the script ends at the first that fails, naming it on stderr."""
    out = []
    for number, line in enumerate(lines, 1):
        said = shlex.quote(f"pilotkit: prologue line {number} failed ({line})")
        out.append(f'{{ {line}\n}} || {{ echo {said}" with exit code $?" >&2; exit 2; }}')
    return out


# --------------------------------------------------------------------------- argv


def check_job_id(job_id: str) -> str:
    """``job_id`` if it looks like a Slurm job id (``123``, ``123_4``, ``123+1``).

    :raises ValueError: anything else, so that no option can be smuggled into an argv.
    """
    if not _JOB_ID.match(job_id):
        raise ValueError(f"'{job_id}' is not a Slurm job id")
    return job_id


def sbatch_argv(script_path: str | None = None) -> list[str]:
    """Submit a script; without ``script_path`` sbatch reads it from stdin."""
    argv = ["sbatch", "--parsable"]
    if script_path is not None:
        argv.append(script_path)
    return argv


def squeue_argv(job_id: str) -> list[str]:
    """One job's state, reason, nodes and time left (any state the controller still holds)."""
    return [
        "squeue",
        "--noheader",
        f"--jobs={check_job_id(job_id)}",
        "--states=all",
        f"--format={SQUEUE_FORMAT}",
    ]


def sacct_argv(job_id: str) -> list[str]:
    """One job's accounting record (the allocation only, not its steps)."""
    return [
        "sacct",
        "--noheader",
        "--parsable2",
        "--allocations",
        f"--jobs={check_job_id(job_id)}",
        f"--format={SACCT_FIELDS}",
    ]


def scancel_argv(job_id: str) -> list[str]:
    return ["scancel", check_job_id(job_id)]


def scontrol_config_argv() -> list[str]:
    return ["scontrol", "show", "config"]


def parse_controller(stdout: str) -> str | None:
    """The first controller's address (else its name) from ``scontrol show config``:
    ``SlurmctldHost[0] = vm(10.213.0.1)`` gives ``10.213.0.1``."""
    for line in stdout.splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip() in ("SlurmctldHost[0]", "ControlAddr", "ControlMachine"):
            value = value.strip()
            match = re.fullmatch(r"([^()\s]+)(?:\(([^()\s]+)\))?", value)
            if match and value.lower() != "(null)":
                return match.group(2) or match.group(1)
    return None


def scontrol_partition_argv(partition: str | None = None) -> list[str]:
    """``scontrol show partition``, one partition per line; all of them when None."""
    argv = ["scontrol", "--oneliner", "show", "partition"]
    if partition is not None:
        if not partition or partition.startswith("-") or any(c.isspace() for c in partition):
            raise ValueError(f"'{partition}' is not a partition name")
        argv.append(partition)
    return argv


# --------------------------------------------------------------------------- parsers


def parse_job_id(stdout: str) -> str:
    """The job id from ``sbatch --parsable``: ``123`` or ``123;cluster``.

    :raises ValueError: no job id in the output.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if lines:
        job_id = lines[-1].split(";", 1)[0].strip()
        if _JOB_ID.match(job_id):
            return job_id
    raise ValueError(f"sbatch printed no job id: {stdout.strip()!r}")


_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "COMPLETING": JobState.COMPLETING,
    "STAGE_OUT": JobState.COMPLETING,
    "COMPLETED": JobState.DONE,
    "FAILED": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "TIMEOUT": JobState.WALLTIME_EXPIRED,
    "DEADLINE": JobState.WALLTIME_EXPIRED,
    "NODE_FAIL": JobState.NODE_FAIL,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
}
"""Slurm's job states (squeue ``%T``, sacct ``State``) to ours.

CONFIGURING (nodes allocated but booting) counts as pending: the agent cannot start yet.
SUSPENDED and STOPPED keep their allocation, so they count as running. DEADLINE (ended at
the ``--deadline`` the job was given) is a time limit, like TIMEOUT. BOOT_FAIL (a node
could not be booted) counts as a node failure.
"""


def map_state(text: str) -> tuple[JobState, str | None]:
    """Our state for a Slurm state, and what the text adds (``CANCELLED by 1000``).

    Unknown codes map to UNKNOWN; a trailing ``+`` (sacct's truncation mark) is ignored.
    """
    text = text.strip()
    word, _, rest = text.partition(" ")
    word = word.rstrip("+").upper()
    state = _STATES.get(word, JobState.UNKNOWN)
    detail = rest.strip() or None
    if state is JobState.CANCELLED and detail and detail.startswith("by "):
        detail = f"cancelled by uid {detail[3:].strip()}"
    return state, detail


_UNSET_TIMES = frozenset({"", "UNLIMITED", "INFINITE", "NOT_SET", "NONE", "INVALID", "N/A"})


def parse_slurm_time(text: str) -> float | None:
    """Seconds from a Slurm time: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``.

    ``UNLIMITED``, ``INFINITE``, ``NOT_SET``, ``NONE`` (and empty) give None.

    :raises ValueError: any other text.
    """
    text = text.strip()
    if text.upper() in _UNSET_TIMES:
        return None
    days = 0
    rest = text
    if "-" in text:
        day_text, rest = text.split("-", 1)
        if not day_text.isdigit():
            raise ValueError(f"'{text}' is not a Slurm time")
        days = int(day_text)
    fields = rest.split(":")
    if not 1 <= len(fields) <= 3 or not all(f.isdigit() for f in fields):
        raise ValueError(f"'{text}' is not a Slurm time")
    numbers = [int(f) for f in fields]
    if "-" in text:
        # days-hours[:minutes[:seconds]]
        numbers += [0] * (3 - len(numbers))
        hours, minutes, seconds = numbers
    elif len(numbers) == 3:
        hours, minutes, seconds = numbers
    elif len(numbers) == 2:
        hours, (minutes, seconds) = 0, numbers
    else:
        hours, minutes, seconds = 0, numbers[0], 0
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def parse_squeue(stdout: str) -> JobInfo | None:
    """The job in the output of :func:`squeue_argv`; None when squeue listed none."""
    for line in stdout.splitlines():
        if not line.strip():
            continue
        parts = line.strip().split("|")
        if len(parts) < 4:
            raise ValueError(f"unexpected squeue line: {line!r}")
        raw, nodes, left = parts[0], parts[-2], parts[-1]
        reason = "|".join(parts[1:-2]).strip()
        state, detail = map_state(raw)
        return JobInfo(
            state=state,
            reason=detail or (None if reason in ("", "None") else reason),
            nodes=_nodes(nodes),
            time_left=None if state.terminal else _time_or_none(left),
            raw_state=raw.strip(),
        )
    return None


def parse_sacct(stdout: str) -> JobInfo | None:
    """The job in the output of :func:`sacct_argv` (its last record); None when empty."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    parts = lines[-1].strip().split("|")
    if len(parts) != 4:
        raise ValueError(f"unexpected sacct line: {lines[-1]!r}")
    raw, exit_text, nodes, _elapsed = parts
    state, detail = map_state(raw)
    exit_code, signal = _exit_code(exit_text)
    reason = detail
    if signal:
        reason = f"{reason}; signal {signal}" if reason else f"killed by signal {signal}"
    if state is JobState.FAILED and reason is None and exit_code:
        reason = f"exit code {exit_code}"
    return JobInfo(
        state=state,
        reason=reason,
        nodes=_nodes(nodes),
        exit_code=exit_code,
        raw_state=raw.strip(),
    )


def _nodes(text: str) -> list[str]:
    text = text.strip()
    if not text or text.startswith("(") or text.lower() in ("none assigned", "(null)", "n/a"):
        return []
    return hostlist.expand(text)


def _time_or_none(text: str) -> float | None:
    try:
        return parse_slurm_time(text)
    except ValueError:
        return None


def _exit_code(text: str) -> tuple[int | None, int]:
    """sacct's ``ExitCode`` (``code:signal``) as (code, signal)."""
    code, _, signal = text.strip().partition(":")
    try:
        return int(code), int(signal or 0)
    except ValueError:
        return None, 0


# --------------------------------------------------------------------------- partitions


@dataclass(frozen=True)
class Partition:
    """What ``scontrol show partition`` says about one partition."""

    name: str
    max_time: float | None
    """Seconds; None for UNLIMITED."""
    default: bool = False
    state: str = "UP"


def parse_partitions(stdout: str) -> list[Partition]:
    """Partitions from ``scontrol show partition``, one-line or multi-line form."""
    partitions: list[Partition] = []
    fields: dict[str, str] = {}

    def flush() -> None:
        if "PartitionName" in fields:
            partitions.append(
                Partition(
                    name=fields["PartitionName"],
                    max_time=parse_max_time(fields.get("MaxTime", "UNLIMITED")),
                    default=fields.get("Default", "NO").upper() == "YES",
                    state=fields.get("State", "UP"),
                )
            )

    for token in stdout.split():
        key, eq, value = token.partition("=")
        if not eq:
            continue
        if key == "PartitionName":
            flush()
            fields = {}
        fields[key] = value
    flush()
    return partitions


def parse_max_time(text: str) -> float | None:
    """A partition's ``MaxTime`` in seconds: ``UNLIMITED`` gives None, ``1:00:00`` 3600,
    ``2-00:00:00`` 172800."""
    return parse_slurm_time(text)


def pick_partition(partitions: Iterable[Partition], name: str | None) -> Partition | None:
    """The partition called ``name``, or the default partition when ``name`` is None."""
    for partition in partitions:
        if (name is None and partition.default) or partition.name == name:
            return partition
    return None


def walltime_problem(walltime: float, partition: Partition) -> str | None:
    """One line saying the walltime is longer than ``partition`` allows, else None."""
    if partition.max_time is None or walltime <= partition.max_time:
        return None
    return (
        f"walltime {slurm_time(walltime)} is longer than partition '{partition.name}' "
        f"allows (MaxTime {slurm_time(partition.max_time)})"
    )


# --------------------------------------------------------------------------- errors

_MESSAGE = re.compile(r"^\s*[\w./-]+:\s+(?:error|fatal):\s*(.*)$", re.IGNORECASE)
_INNER = re.compile(r"^[\w./-]+ error:\s*(.*)$")
_SUMMARY = "batch job submission failed:"

_TRANSIENT = (
    "socket timed out",
    "unable to contact slurm controller",
    "connection refused",
    "connection timed out",
    "communication connection failure",
    "zero bytes were transmitted or received",
    "resource temporarily unavailable",
    "temporarily unable to accept job",
    "backup controller in standby mode",
    "problem talking to the database",
)
"""Text that means the controller (or database) did not answer: worth trying again."""

_NOT_SUBMITTED = (
    "unable to contact slurm controller",
    "connection refused",
    "temporarily unable to accept job",
    "backup controller in standby mode",
)
"""Transient sbatch errors after which the job was certainly not submitted, so sbatch can
be run again without risking a duplicate job. (After "Socket timed out" the controller
may have queued the job anyway.)"""


def error_messages(text: str) -> list[str]:
    """The messages in a Slurm command's stderr, prefixes (``sbatch: error:``) removed,
    duplicates dropped; the last line when no line has such a prefix."""
    messages: list[str] = []
    for line in text.splitlines():
        match = _MESSAGE.match(line)
        if match is None:
            continue
        message = match.group(1).strip()
        inner = _INNER.match(message)
        if inner:
            message = inner.group(1).strip()
        if message and message.lower() not in (m.lower() for m in messages):
            messages.append(message)
    if not messages:
        rest = [line.strip() for line in text.splitlines() if line.strip()]
        if rest:
            inner = _INNER.match(rest[-1])
            messages.append(inner.group(1).strip() if inner else rest[-1])
    return messages


def error_line(text: str) -> str:
    """All of :func:`error_messages` on one line ("no output" when there are none)."""
    return "; ".join(error_messages(text)) or "no output"


def sbatch_refusal(stderr: str) -> str:
    """One clear line for sbatch's refusal.

    ``sbatch: error: invalid partition specified: foo`` gives
    ``Slurm refused the job: invalid partition specified: foo``. The generic
    "Batch job submission failed: ..." line is used only when nothing more specific was said.
    """
    messages = error_messages(stderr)
    specific = [m for m in messages if not m.lower().startswith(_SUMMARY)]
    if not specific:
        specific = [m[len(_SUMMARY) :].strip() if m.lower().startswith(_SUMMARY) else m for m in messages]
    text = "; ".join(m for m in specific if m)
    return f"Slurm refused the job: {text}" if text else "Slurm refused the job (sbatch gave no reason)"


def is_transient(text: str) -> bool:
    """Whether ``text`` (a command's stderr) says the controller did not answer."""
    low = text.lower()
    return any(pattern in low for pattern in _TRANSIENT)


def is_not_submitted(text: str) -> bool:
    """Whether an sbatch failure certainly submitted nothing (see ``_NOT_SUBMITTED``)."""
    low = text.lower()
    return any(pattern in low for pattern in _NOT_SUBMITTED)


def is_unknown_job(text: str) -> bool:
    """Whether squeue/scancel said the controller no longer knows the job."""
    return "invalid job id specified" in text.lower()


def is_already_finished(text: str) -> bool:
    """Whether scancel said the job had already ended."""
    low = text.lower()
    return "already completing or completed" in low or is_unknown_job(text)


def is_unknown_partition(text: str) -> bool:
    """Whether scontrol said there is no such partition."""
    low = text.lower()
    return "partition" in low and "not found" in low
