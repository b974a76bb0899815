"""PBS Pro (and OpenPBS): the job script, command lines, and output parsers.

.. note:: PBS support has not yet been run against a real PBS server. The formats here
   follow PBS Pro's documentation; the golden files under ``tests/golden/pbs`` are written
   from it, not recorded from a server.

The job asks for ``select=<nodes>:ncpus=<cores>[:ngpus=<gpus>][:mem=<mem>]`` with
``place=scatter`` (one chunk per host; ``scatter:excl`` for whole nodes, which is also
what no core count asks for). PBS has no "signal before the walltime" option: the agent
must watch the walltime itself. ``qos`` and ``constraint`` have no PBS equivalent and are
refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .job import BatchJob, hms, memory_text, refuse_unsupported
from .jobstate import JobInfo, JobState
from .render import directive, render

TEMPLATE = "pbs.sh.tmpl"

_JOB_ID = re.compile(r"^\d+(?:\[\d*\])?(?:\.[A-Za-z0-9_.-]+)?$")

# Exit_status values PBS sets itself (JOB_EXEC_KILL_*).
EXIT_KILL_NCPUS_SUM = -25
EXIT_KILL_VMEM = -26
EXIT_KILL_MEM = -27
EXIT_KILL_CPUT = -28
EXIT_KILL_WALLTIME = -29
SUBSTATE_TERMINATED = 91
"""A history job's substate after qdel."""


# --------------------------------------------------------------------------- script


def select_statement(job: BatchJob) -> str:
    """``<nodes>:ncpus=<cores>[:ngpus=<n>][:mem=<size>]``."""
    chunk = [str(job.nodes)]
    if job.cores is not None:
        chunk.append(f"ncpus={job.cores}")
    if job.gpus_per_node:
        chunk.append(f"ngpus={job.gpus_per_node}")
    if job.memory is not None:
        chunk.append(f"mem={memory_text(job.memory, units=('gb', 'mb'))}")
    return ":".join(chunk)


def render_script(job: BatchJob) -> str:
    """The qsub script for ``job``.

    :raises ValueError: ``qos`` or ``constraint`` is set.
    """
    refuse_unsupported(job, "PBS", ("qos", "constraint"))
    lines: list[str] = []
    if job.walltime is not None:
        lines.append(directive("#PBS", "-l", f"walltime={hms(job.walltime)}", sep=" "))
    if job.partition:
        lines.append(directive("#PBS", "-q", job.partition, sep=" "))
    if job.account:
        lines.append(directive("#PBS", "-A", job.account, sep=" "))
    return render(
        TEMPLATE,
        {
            "job_name": job.name,
            "select": select_statement(job),
            "place": "scatter:excl" if job.whole_nodes else "scatter",
            "output": job.output,
            "error": job.error,
            "workdir": job.workdir,
            "command": list(job.command),
        },
        {
            "resource_directives": lines,
            "environment": [directive("export", key, value) for key, value in job.env.items()],
        },
    )


# --------------------------------------------------------------------------- argv


def check_job_id(job_id: str) -> str:
    """``job_id`` if it looks like a PBS job id (``1234.server``, ``1234[].server``).

    :raises ValueError: anything else.
    """
    if not _JOB_ID.match(job_id):
        raise ValueError(f"'{job_id}' is not a PBS job id")
    return job_id


def qsub_argv(script_path: str | None = None) -> list[str]:
    """Submit a script; without ``script_path`` qsub reads it from stdin."""
    return ["qsub"] if script_path is None else ["qsub", script_path]


def qstat_argv(job_id: str, *, json_output: bool = True) -> list[str]:
    """Full status of one job, finished jobs included (``-x``, needs job history)."""
    argv = ["qstat", "-f"]
    if json_output:
        argv += ["-F", "json"]
    return [*argv, "-x", check_job_id(job_id)]


def qdel_argv(job_id: str) -> list[str]:
    return ["qdel", check_job_id(job_id)]


# --------------------------------------------------------------------------- parsers


def parse_job_id(stdout: str) -> str:
    """The job id qsub prints (``1234.server``).

    :raises ValueError: no job id in the output.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if lines and _JOB_ID.match(lines[-1]):
        return lines[-1]
    raise ValueError(f"qsub printed no job id: {stdout.strip()!r}")


def parse_qstat_json(stdout: str, job_id: str | None = None) -> JobInfo | None:
    """The job in ``qstat -f -F json`` output (``job_id``'s, or the first); None if absent."""
    if not stdout.strip():
        return None
    data = json.loads(stdout)
    jobs = data.get("Jobs") or {}
    if not isinstance(jobs, dict) or not jobs:
        return None
    attrs = jobs.get(job_id) if job_id is not None else None
    if attrs is None:
        attrs = next(iter(jobs.values()))
    return job_info(attrs)


def parse_qstat_full(stdout: str) -> dict[str, dict[str, Any]]:
    """Plain ``qstat -f`` output as ``{job id: attributes}``.

    Dotted names (``Resource_List.walltime``) become nested tables, as in the JSON form,
    and PBS's wrapped continuation lines (starting with a tab) are joined back.
    """
    jobs: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    last: tuple[dict[str, Any], str] | None = None
    for line in stdout.splitlines():
        if line.startswith("Job Id:"):
            current = jobs.setdefault(line.split(":", 1)[1].strip(), {})
            last = None
        elif line.startswith("\t") and last is not None:
            table, key = last
            table[key] = f"{table[key]}{line.strip()}"
        elif current is not None and " = " in line:
            name, value = line.strip().split(" = ", 1)
            table = current
            if "." in name:
                outer, name = name.split(".", 1)
                table = current.setdefault(outer, {})
            table[name] = value
            last = (table, name)
    return jobs


_STATES: dict[str, tuple[JobState, str | None]] = {
    "Q": (JobState.PENDING, None),
    "H": (JobState.PENDING, "held"),
    "W": (JobState.PENDING, "waiting for its start time"),
    "T": (JobState.PENDING, "being moved to a new location"),
    "R": (JobState.RUNNING, None),
    "B": (JobState.RUNNING, None),
    "S": (JobState.RUNNING, "suspended"),
    "U": (JobState.RUNNING, "suspended: the workstation is busy"),
    "E": (JobState.COMPLETING, None),
    "M": (JobState.UNKNOWN, "moved to another server"),
}


def job_info(attrs: Mapping[str, Any]) -> JobInfo:
    """A :class:`JobInfo` from one job's attributes (JSON or :func:`parse_qstat_full`)."""
    raw = str(attrs.get("job_state", "")).strip()
    nodes = exec_hosts(str(attrs.get("exec_host", "")))
    comment = str(attrs["comment"]).strip() if attrs.get("comment") else None
    if raw in ("F", "X"):
        state, reason, code = _finished(attrs)
        return JobInfo(state, reason=reason, nodes=nodes, exit_code=code, raw_state=raw)
    state, reason = _STATES.get(raw, (JobState.UNKNOWN, f"unknown PBS job state '{raw}'"))
    if state is JobState.PENDING and comment:
        reason = f"{reason}: {comment}" if reason else comment
    time_left = None
    if state is JobState.RUNNING:
        time_left = _time_left(attrs)
    return JobInfo(state, reason=reason, nodes=nodes, time_left=time_left, raw_state=raw)


def _finished(attrs: Mapping[str, Any]) -> tuple[JobState, str | None, int | None]:
    code = _int(attrs.get("Exit_status"))
    substate = _int(attrs.get("substate"))
    if code == EXIT_KILL_WALLTIME:
        return JobState.WALLTIME_EXPIRED, "killed at the walltime limit", code
    if code in (EXIT_KILL_MEM, EXIT_KILL_VMEM):
        return JobState.OUT_OF_MEMORY, "killed for exceeding its memory limit", code
    if substate == SUBSTATE_TERMINATED:
        return JobState.CANCELLED, "deleted (qdel)", code
    if code is None:
        return JobState.UNKNOWN, "finished without an exit status", None
    if code == 0:
        return JobState.DONE, None, 0
    if code == EXIT_KILL_NCPUS_SUM:
        return JobState.FAILED, "killed for using more CPUs than requested", code
    if code == EXIT_KILL_CPUT:
        return JobState.FAILED, "killed at its CPU time limit", code
    if code < 0:
        return JobState.FAILED, f"PBS could not run the job (Exit_status {code})", code
    if code > 256:
        return JobState.FAILED, f"killed by signal {code - 256}", code
    return JobState.FAILED, f"exit code {code}", code


def exec_hosts(text: str) -> list[str]:
    """Host names from ``exec_host`` (``node1/0*4+node2/0*4``), first appearance order."""
    hosts: list[str] = []
    for part in text.split("+"):
        host = part.split("/", 1)[0].strip()
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def _time_left(attrs: Mapping[str, Any]) -> float | None:
    limits = attrs.get("Resource_List") or {}
    used = attrs.get("resources_used") or {}
    limit = _hms_seconds(limits.get("walltime")) if isinstance(limits, Mapping) else None
    spent = _hms_seconds(used.get("walltime")) if isinstance(used, Mapping) else None
    if limit is None:
        return None
    return max(0.0, limit - (spent or 0.0))


def _hms_seconds(value: Any) -> float | None:
    if value is None:
        return None
    fields = str(value).strip().split(":")
    if not 1 <= len(fields) <= 3 or not all(f.isdigit() for f in fields):
        return None
    seconds = 0
    for f in fields:
        seconds = seconds * 60 + int(f)
    return float(seconds)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- errors


def error_line(text: str) -> str:
    """The messages of a PBS command's stderr on one line, ``qsub:`` prefixes removed."""
    messages: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:qsub|qstat|qdel):\s*", "", line).strip()
        if line and line not in messages:
            messages.append(line)
    return "; ".join(messages) or "no output"


def qsub_refusal(stderr: str) -> str:
    """``qsub: Unknown queue`` gives ``PBS refused the job: Unknown queue``."""
    return f"PBS refused the job: {error_line(stderr)}"


def is_already_finished(text: str) -> bool:
    """Whether qdel said the job had already ended or is unknown."""
    low = text.lower()
    return "unknown job id" in low or "job has finished" in low


_TRANSIENT = (
    "cannot connect to server",
    "connection refused",
    "connection timed out",
    "pbs_iff",
    "server is busy",
)
"""Text that means the PBS server did not answer: worth trying again."""


def is_transient(text: str) -> bool:
    """Whether ``text`` (a PBS command's stderr) says the server did not answer."""
    low = text.lower()
    return any(pattern in low for pattern in _TRANSIENT)


def is_not_submitted(text: str) -> bool:
    """Whether a qsub failure certainly submitted nothing (the server could not be reached)."""
    low = text.lower()
    return "cannot connect to server" in low or "connection refused" in low


def is_unknown_job(text: str) -> bool:
    """Whether qstat said the server does not know the job (history off, or purged)."""
    return "unknown job id" in text.lower()
