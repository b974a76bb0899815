"""IBM Spectrum LSF: the job script, command lines, and output parsers.

.. note:: LSF support has not yet been run against a real LSF cluster. The formats here
   follow LSF 10.1's documentation; the golden files under ``tests/golden/lsf`` are
   written from it, not recorded from a cluster.

One task slot per core: ``-n <nodes*cores>`` with ``-R "span[ptile=<cores>]"`` puts
``cores`` slots on each of ``nodes`` hosts; with no core count, ``-n <nodes>``,
``span[ptile=1]`` and ``-x`` ask for whole hosts. Sites that allocate whole nodes with
``-nnodes`` (IBM CSM systems) use ``nnodes=True``; memory and GPUs then come with the
nodes and are not asked for. Memory is reserved per host
(``rusage[mem=<n>MB/host]``, LSF 10.1.0.9 or later); ``-W`` is in minutes, rounded up;
``-wa USR1 -wt <minutes>`` warns the agent before the run limit (left out when the
warning, rounded up to whole minutes, would come at the start: the pilot drains at its
margin by itself). ``qos`` has no LSF
equivalent and is refused; ``constraint`` becomes a ``select[...]`` requirement.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .job import BatchJob, refuse_unsupported
from .jobstate import JobInfo, JobState
from .render import directive, render

TEMPLATE = "lsf.sh.tmpl"
BJOBS_FIELDS = "jobid stat exit_code exit_reason exec_host pend_reason time_left"

_JOB_ID = re.compile(r"^\d+(?:\[\d+\])?$")
_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")

# --------------------------------------------------------------------------- script


def minutes(seconds: float) -> int:
    """Whole minutes, rounded up (LSF's ``-W`` and ``-wt`` take minutes)."""
    return math.ceil(seconds / 60)


def render_script(job: BatchJob, *, nnodes: bool = False) -> str:
    """The bsub script for ``job``.

    :param nnodes: ask for whole nodes with ``-nnodes`` (IBM CSM sites) instead of slots.
    :raises ValueError: ``qos`` is set.
    """
    refuse_unsupported(job, "LSF", ("qos",))
    lines: list[str] = []

    def add(option: str, value: str | int | None = None) -> None:
        lines.append(directive("#BSUB", option, value, sep=" "))

    if nnodes:
        add("-nnodes", job.nodes)
    elif job.cores is None:
        add("-n", job.nodes)
        add("-R", "span[ptile=1]")
    else:
        add("-n", job.nodes * job.cores)
        add("-R", f"span[ptile={job.cores}]")
    if job.whole_nodes and not nnodes:
        add("-x")
    if job.memory_mib is not None and not nnodes:
        add("-R", f"rusage[mem={job.memory_mib}MB/host]")
    if job.gpus_per_node and not nnodes:
        add("-gpu", f"num={job.gpus_per_node}")
    if job.constraint:
        add("-R", f"select[{job.constraint}]")
    if job.walltime is not None:
        add("-W", minutes(job.walltime))
    warn = minutes(job.signal_margin)
    if warn and (job.walltime is None or warn < minutes(job.walltime)):
        add("-wa", "USR1")
        add("-wt", warn)
    if job.partition:
        add("-q", job.partition)
    if job.account:
        add("-P", job.account)
    return render(
        TEMPLATE,
        {
            "job_name": job.name,
            "workdir": job.workdir,
            "output": job.output,
            "error": job.error,
            "command": list(job.command),
        },
        {
            "resource_directives": lines,
            "environment": [directive("export", key, value) for key, value in job.env.items()],
        },
    )


# --------------------------------------------------------------------------- argv


def check_job_id(job_id: str) -> str:
    """``job_id`` if it looks like an LSF job id (``1234``, ``1234[2]``).

    :raises ValueError: anything else.
    """
    if not _JOB_ID.match(job_id):
        raise ValueError(f"'{job_id}' is not an LSF job id")
    return job_id


def bsub_argv() -> list[str]:
    """Submit the script given on stdin (``bsub < script`` reads its ``#BSUB`` lines)."""
    return ["bsub"]


def bjobs_argv(job_id: str) -> list[str]:
    """One job's state, exit reason, hosts and time left as JSON."""
    return ["bjobs", "-o", BJOBS_FIELDS, "-json", check_job_id(job_id)]


def bkill_argv(job_id: str) -> list[str]:
    return ["bkill", check_job_id(job_id)]


# --------------------------------------------------------------------------- parsers


def parse_job_id(stdout: str) -> str:
    """The id in ``Job <1234> is submitted to queue <normal>.``

    :raises ValueError: no job id in the output.
    """
    match = _SUBMITTED.search(stdout)
    if match is None:
        raise ValueError(f"bsub printed no job id: {stdout.strip()!r}")
    return match.group(1)


_STATES: dict[str, tuple[JobState, str | None]] = {
    "PEND": (JobState.PENDING, None),
    "WAIT": (JobState.PENDING, "waiting"),
    "PSUSP": (JobState.PENDING, "suspended while pending"),
    "RUN": (JobState.RUNNING, None),
    "USUSP": (JobState.RUNNING, "suspended by its owner"),
    "SSUSP": (JobState.RUNNING, "suspended by LSF"),
    "ZOMBI": (JobState.COMPLETING, "killed; LSF is still cleaning up"),
    "DONE": (JobState.DONE, None),
    "UNKWN": (JobState.UNKNOWN, "LSF lost contact with the job's host"),
}

_EXIT_REASONS: tuple[tuple[str, JobState], ...] = (
    ("TERM_RUNLIMIT", JobState.WALLTIME_EXPIRED),
    ("run time limit", JobState.WALLTIME_EXPIRED),
    ("TERM_MEMLIMIT", JobState.OUT_OF_MEMORY),
    ("memory limit", JobState.OUT_OF_MEMORY),
    ("TERM_PREEMPT", JobState.PREEMPTED),
    ("TERM_OWNER", JobState.CANCELLED),
    ("TERM_ADMIN", JobState.CANCELLED),
    ("TERM_FORCE_OWNER", JobState.CANCELLED),
    ("TERM_FORCE_ADMIN", JobState.CANCELLED),
    ("killed by owner", JobState.CANCELLED),
    ("killed by LSF administrator", JobState.CANCELLED),
    ("TERM_HOST", JobState.NODE_FAIL),
    ("TERM_ZOMBIE", JobState.NODE_FAIL),
)
"""For jobs in state EXIT: the reason LSF gives, by its TERM_* code or its wording."""


def parse_bjobs_json(stdout: str) -> JobInfo | None:
    """The first job in ``bjobs -o ... -json`` output; None when bjobs reports none
    (LSF forgets finished jobs after CLEAN_PERIOD)."""
    if not stdout.strip():
        return None
    data = json.loads(stdout)
    records = data.get("RECORDS") or []
    if not records or not isinstance(records[0], Mapping) or records[0].get("ERROR"):
        return None
    return job_info(records[0])


def job_info(record: Mapping[str, Any]) -> JobInfo:
    """A :class:`JobInfo` from one bjobs JSON record."""
    raw = str(record.get("STAT", "")).strip()
    nodes = exec_hosts(str(record.get("EXEC_HOST", "")))
    code = _int(record.get("EXIT_CODE"))
    if raw == "EXIT":
        why = str(record.get("EXIT_REASON") or "").strip()
        state = JobState.FAILED
        for marker, mapped in _EXIT_REASONS:
            if marker.lower() in why.lower():
                state = mapped
                break
        reason = why or (f"exit code {code}" if code else None)
        return JobInfo(state, reason=reason, nodes=nodes, exit_code=code, raw_state=raw)
    state, reason = _STATES.get(raw, (JobState.UNKNOWN, f"unknown LSF job state '{raw}'"))
    pending = str(record.get("PEND_REASON") or "").strip()
    if state is JobState.PENDING and pending:
        reason = f"{reason}: {pending}" if reason else pending
    time_left = parse_time_left(str(record.get("TIME_LEFT") or "")) if state is JobState.RUNNING else None
    return JobInfo(
        state,
        reason=reason,
        nodes=nodes,
        time_left=time_left,
        exit_code=code if state is JobState.DONE else None,
        raw_state=raw,
    )


def exec_hosts(text: str) -> list[str]:
    """Host names from ``EXEC_HOST`` (``4*node1:4*node2``), first appearance order."""
    hosts: list[str] = []
    for part in re.split(r"[:\s]+", text.strip()):
        host = part.split("*", 1)[-1].strip()
        if host and host != "-" and host not in hosts:
            hosts.append(host)
    return hosts


def parse_time_left(text: str) -> float | None:
    """Seconds from bjobs' ``TIME_LEFT`` (``hh:mm`` then ``L``/``E``/``X``); None if unset."""
    match = re.match(r"^\s*(\d+):(\d{1,2})", text)
    if match is None:
        return None
    return float(int(match.group(1)) * 3600 + int(match.group(2)) * 60)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- errors


def bsub_refusal(output: str) -> str:
    """``normal: No such queue. Job not submitted.`` gives
    ``LSF refused the job: normal: No such queue``."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    messages = [line.removesuffix("Job not submitted.").strip().rstrip(".") for line in lines]
    text = "; ".join(m for m in messages if m)
    return f"LSF refused the job: {text}" if text else "LSF refused the job (bsub gave no reason)"


def is_already_finished(text: str) -> bool:
    """Whether bkill said the job had already ended or is unknown."""
    low = text.lower()
    return "already finished" in low or "is not found" in low


def error_line(text: str) -> str:
    """The lines of an LSF command's output on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(dict.fromkeys(lines)) or "no output"


_TRANSIENT = (
    "lsf is down",
    "not responding",
    "cannot connect",
    "failed in an lsf library call",
    "timeout",
)
"""Text that means LSF's batch daemon did not answer: worth trying again."""


def is_transient(text: str) -> bool:
    """Whether ``text`` (an LSF command's output) says the batch daemon did not answer."""
    low = text.lower()
    return any(pattern in low for pattern in _TRANSIENT)


def is_not_submitted(text: str) -> bool:
    """Whether a bsub failure came from LSF not answering and certainly submitted nothing
    (bsub says "Job not submitted"), so that bsub can be run again."""
    return is_transient(text) and "job not submitted" in text.lower()
