"""HTCondor: the submit description, command lines, and output parsers.

.. note:: HTCondor support has not yet been run against a real HTCondor pool. The formats
   here follow HTCondor's documentation; the golden files under ``tests/golden/htcondor``
   are written from it, not recorded from a pool.

A submit description is not a shell script, so its values are not ``shlex.quote``\\ d:
they must fit on one line, every ``$`` is written ``$(DOLLAR)`` (so no macro expands),
and ``arguments`` and ``environment`` use HTCondor's double-quoted syntax (``'...'``
around a word with spaces, ``''`` and ``""`` for literal quotes).

One node is the vanilla universe; several are the parallel universe with
``machine_count``, where the command starts on *every* machine. HTCondor has no queues,
QoS or exclusive nodes (those are refused), and no signal before a time limit: the
walltime becomes ``allowed_execute_duration``, after which HTCondor *holds* the job
(hold codes 46/47), reported here as walltime-expired; the job stays in the queue until
``condor_rm``. ``account`` is the ``accounting_group``; ``constraint`` is a ClassAd
``requirements`` expression.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .job import BatchJob, refuse_unsupported
from .jobstate import JobInfo, JobState
from .render import Value, render

TEMPLATE = "htcondor.sub.tmpl"
ATTRIBUTES = (
    "ClusterId",
    "ProcId",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "HoldReason",
    "HoldReasonCode",
    "RemoveReason",
    "RemoteHost",
    "RemoteHosts",
    "LastRemoteHost",
    "JobCurrentStartDate",
    "AllowedExecuteDuration",
)
"""The job ClassAd attributes asked of condor_q and condor_history."""

HOLD_JOB_DURATION_EXCEEDED = 46
HOLD_JOB_EXECUTE_EXCEEDED = 47
HOLD_OUT_OF_RESOURCES = 34

_JOB_ID = re.compile(r"^\d+(?:\.\d+)?$")
_TERSE = re.compile(r"(\d+)\.(\d+)\s*-\s*\d+\.\d+")

# --------------------------------------------------------------------------- description


def quote_args(args: Sequence[str]) -> str:
    """Words in HTCondor's double-quoted syntax: ``["a b", "c"]`` gives ``"'a b' c"``."""
    words = []
    for arg in args:
        word = arg.replace('"', '""')
        if not arg or any(c.isspace() for c in arg) or "'" in arg:
            word = "'" + word.replace("'", "''") + "'"
        words.append(word)
    return '"' + " ".join(words) + '"'


def submit_value(key: str, value: Value) -> str:
    """``value`` as it must appear after ``key =`` in a submit description.

    :raises ValueError: a line break, NUL, or surrounding blanks (HTCondor strips them).
    """
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if any(c in value for c in "\r\n\x00") or value != value.strip():
            raise ValueError(f"{key}: cannot go into a submit description: {value!r}")
        text = value
    else:
        args = list(value)
        if any(c in arg for arg in args for c in "\r\n\x00"):
            raise ValueError(f"{key}: a line break or NUL cannot go into a submit description")
        text = quote_args(args)
    return text.replace("$", "$(DOLLAR)")


def render_submit(job: BatchJob) -> str:
    """The condor_submit description for ``job``.

    :raises ValueError: ``partition``, ``qos`` or ``exclusive`` is set.
    """
    refuse_unsupported(job, "HTCondor", ("partition", "qos", "exclusive"))
    commands: list[tuple[str, Value]] = []
    if job.nodes > 1:
        commands.append(("machine_count", job.nodes))
    if job.cores is not None:
        commands.append(("request_cpus", job.cores))
    if job.memory_mib is not None:
        commands.append(("request_memory", job.memory_mib))
    if job.gpus_per_node:
        commands.append(("request_gpus", job.gpus_per_node))
    if job.walltime is not None:
        commands.append(("allowed_execute_duration", math.ceil(job.walltime)))
    if job.account:
        commands.append(("accounting_group", job.account))
    if job.constraint:
        commands.append(("requirements", job.constraint))
    environment = []
    if job.env:
        words = [f"{key}={value}" for key, value in job.env.items()]
        environment.append(f"environment = {submit_value('environment', words)}")
    return render(
        TEMPLATE,
        {
            "universe": "parallel" if job.nodes > 1 else "vanilla",
            "executable": job.command[0],
            "arguments": list(job.command[1:]),
            "workdir": job.workdir,
            "output": job.output,
            "error": job.error,
        },
        {
            "resource_commands": [f"{key} = {submit_value(key, value)}" for key, value in commands],
            "environment": environment,
        },
        quote=submit_value,
    )


# --------------------------------------------------------------------------- argv


def check_job_id(job_id: str) -> str:
    """``job_id`` if it looks like an HTCondor job id (``1234.0`` or a cluster ``1234``).

    :raises ValueError: anything else.
    """
    if not _JOB_ID.match(job_id):
        raise ValueError(f"'{job_id}' is not an HTCondor job id")
    return job_id


def condor_submit_argv(path: str | None = None) -> list[str]:
    """Submit a description; without ``path`` condor_submit reads it from stdin."""
    argv = ["condor_submit", "-terse"]
    return argv if path is None else [*argv, path]


def condor_q_argv(job_id: str) -> list[str]:
    return ["condor_q", "-json", "-attributes", ",".join(ATTRIBUTES), check_job_id(job_id)]


def condor_history_argv(job_id: str) -> list[str]:
    return [
        "condor_history",
        "-json",
        "-limit",
        "1",
        "-attributes",
        ",".join(ATTRIBUTES),
        check_job_id(job_id),
    ]


def condor_rm_argv(job_id: str) -> list[str]:
    return ["condor_rm", check_job_id(job_id)]


# --------------------------------------------------------------------------- parsers


def parse_job_id(stdout: str) -> str:
    """The first job id in ``condor_submit -terse`` output (``1234.0 - 1234.0``).

    :raises ValueError: no job id in the output.
    """
    match = _TERSE.search(stdout)
    if match is None:
        raise ValueError(f"condor_submit printed no job id: {stdout.strip()!r}")
    return f"{match.group(1)}.{match.group(2)}"


def parse_job_ads(stdout: str, *, now: float | None = None) -> JobInfo | None:
    """The first job in ``condor_q -json`` or ``condor_history -json`` output; None when
    there is none.

    :param now: epoch seconds, to compute the time left of a running job.
    """
    if not stdout.strip():
        return None
    ads = json.loads(stdout)
    if not isinstance(ads, list) or not ads or not isinstance(ads[0], Mapping):
        return None
    return job_info(ads[0], now=now)


def job_info(ad: Mapping[str, Any], *, now: float | None = None) -> JobInfo:
    """A :class:`JobInfo` from one job ClassAd (as JSON)."""
    status = _int(ad.get("JobStatus"))
    raw = str(status) if status is not None else ""
    nodes = remote_hosts(ad)
    if status == 1:
        return JobInfo(JobState.PENDING, nodes=nodes, raw_state=raw)
    if status in (2, 7):
        reason = "suspended" if status == 7 else None
        left = _time_left(ad, now)
        return JobInfo(JobState.RUNNING, reason=reason, nodes=nodes, time_left=left, raw_state=raw)
    if status == 3:
        return JobInfo(JobState.CANCELLED, reason=_text(ad.get("RemoveReason")), nodes=nodes, raw_state=raw)
    if status == 4:
        return _completed(ad, nodes, raw)
    if status == 5:
        return _held(ad, nodes, raw)
    if status == 6:
        return JobInfo(JobState.COMPLETING, reason="transferring output", nodes=nodes, raw_state=raw)
    return JobInfo(JobState.UNKNOWN, reason=f"unknown HTCondor JobStatus {raw or 'missing'}", raw_state=raw)


def _completed(ad: Mapping[str, Any], nodes: list[str], raw: str) -> JobInfo:
    if ad.get("ExitBySignal") is True:
        signal = _int(ad.get("ExitSignal"))
        return JobInfo(JobState.FAILED, reason=f"killed by signal {signal}", nodes=nodes, raw_state=raw)
    code = _int(ad.get("ExitCode"))
    if code == 0:
        return JobInfo(JobState.DONE, nodes=nodes, exit_code=0, raw_state=raw)
    reason = f"exit code {code}" if code is not None else "no exit code recorded"
    return JobInfo(JobState.FAILED, reason=reason, nodes=nodes, exit_code=code, raw_state=raw)


def _held(ad: Mapping[str, Any], nodes: list[str], raw: str) -> JobInfo:
    code = _int(ad.get("HoldReasonCode"))
    why = _text(ad.get("HoldReason"))
    if code in (HOLD_JOB_DURATION_EXCEEDED, HOLD_JOB_EXECUTE_EXCEEDED):
        return JobInfo(JobState.WALLTIME_EXPIRED, reason=why, nodes=nodes, raw_state=raw)
    if code == HOLD_OUT_OF_RESOURCES and why and "memory" in why.lower():
        return JobInfo(JobState.OUT_OF_MEMORY, reason=why, nodes=nodes, raw_state=raw)
    return JobInfo(JobState.PENDING, reason=f"held: {why}" if why else "held", nodes=nodes, raw_state=raw)


def remote_hosts(ad: Mapping[str, Any]) -> list[str]:
    """Host names from ``RemoteHosts``/``RemoteHost``/``LastRemoteHost`` (``slot1@host``)."""
    for key in ("RemoteHosts", "RemoteHost", "LastRemoteHost"):
        value = _text(ad.get(key))
        if value:
            hosts: list[str] = []
            for part in value.split(","):
                host = part.strip().rsplit("@", 1)[-1]
                if host and host not in hosts:
                    hosts.append(host)
            return hosts
    return []


def _time_left(ad: Mapping[str, Any], now: float | None) -> float | None:
    duration = _int(ad.get("AllowedExecuteDuration"))
    start = _int(ad.get("JobCurrentStartDate"))
    if now is None or duration is None or start is None:
        return None
    return max(0.0, duration - (now - start))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


# --------------------------------------------------------------------------- errors


def submit_refusal(output: str) -> str:
    """``ERROR: Executable file /x does not exist`` gives
    ``HTCondor refused the job: Executable file /x does not exist``."""
    messages = [
        re.sub(r"^\s*ERROR:\s*", "", line).strip()
        for line in output.splitlines()
        if line.strip().upper().startswith("ERROR")
    ]
    if not messages:
        messages = [line.strip() for line in output.splitlines() if line.strip()][-1:]
    text = "; ".join(m for m in messages if m)
    if not text:
        return "HTCondor refused the job (condor_submit gave no reason)"
    return f"HTCondor refused the job: {text}"


def is_already_finished(text: str) -> bool:
    """Whether condor_rm said there was no such job (any more)."""
    low = text.lower()
    return "couldn't find" in low or "not found" in low


def error_line(text: str) -> str:
    """The lines of an HTCondor command's output on one line, ``ERROR:`` removed."""
    lines = [re.sub(r"^\s*ERROR:\s*", "", line).strip() for line in text.splitlines()]
    return "; ".join(dict.fromkeys(line for line in lines if line)) or "no output"


_TRANSIENT = (
    "failed to connect",
    "can't find address",
    "couldn't contact",
    "connection refused",
    "timed out",
)
"""Text that means the schedd did not answer: worth trying again."""


def is_transient(text: str) -> bool:
    """Whether ``text`` (an HTCondor command's output) says the schedd did not answer."""
    low = text.lower()
    return any(pattern in low for pattern in _TRANSIENT)
