"""The LSF provider: the shared agent path on LSF's commands.

.. note:: Not yet run against a real LSF cluster; tested against the golden files and
   fake ``bsub``/``bjobs``/``bkill``/``blaunch`` commands.

The job script (:mod:`pilotkit_batch.lsf`) asks for ``nodes`` hosts (``span[ptile=...]``)
and ``exec``\\ s the head agent, which runs ``agents.sh`` (written in the pilot's working
directory): one ``blaunch <host>`` per host of ``$LSB_MCPU_HOSTS``, each starting a node
agent named after its host. ``-wa USR1 -wt <minutes>`` warns the head agent before the
run limit (the pilot also drains at its margin by itself); ``bkill`` sends TERM, which
the head agent relays.
"""

from __future__ import annotations

from pathlib import Path

from pilotkit.api import PilotkitError, Rendezvous

from . import commands, lsf
from .base import BatchOptions, BatchProvider
from .job import BatchJob
from .jobstate import JobInfo, JobState
from .render import render

LSF = commands.Dialect("LSF", "LSF's batch daemon", lsf.error_line, lsf.is_transient)
AGENTS_TEMPLATE = "lsf-agents.sh.tmpl"


class LsfOptions(BatchOptions, forbid_unknown_fields=True, omit_defaults=True):
    """Options of ``[provider] type = "lsf"``."""

    nnodes: bool = False
    """Ask for whole nodes with ``-nnodes`` (IBM CSM sites) instead of task slots."""


async def submit(script: str, workdir: Path, *, retry: commands.Retry = commands.DEFAULT_RETRY) -> str:
    """Submit ``script`` with bsub (its stdin, so its ``#BSUB`` lines count); the job id."""
    result = await commands.run(
        lsf.bsub_argv(),
        retry,
        dialect=LSF,
        cwd=str(workdir),
        input=script.encode(),
        retry_if=lsf.is_not_submitted,
    )
    if result.returncode != 0:
        raise PilotkitError(lsf.bsub_refusal(commands.said(result)), title="job refused")
    try:
        return lsf.parse_job_id(result.stdout)
    except ValueError as exc:
        raise PilotkitError(str(exc), title="unexpected bsub output") from None


async def job_state(job_id: str, *, retry: commands.Retry = commands.DEFAULT_RETRY) -> JobInfo:
    """Where job ``job_id`` is; UNKNOWN when LSF no longer reports it (CLEAN_PERIOD)."""
    result = await commands.run(lsf.bjobs_argv(job_id), retry, dialect=LSF)
    try:
        info = lsf.parse_bjobs_json(result.stdout)
    except ValueError as exc:
        raise PilotkitError(f"unexpected output from 'bjobs': {exc}", title="LSF error") from None
    if info is None and result.returncode != 0 and "not found" not in commands.said(result).lower():
        output = lsf.error_line(commands.said(result))
        raise PilotkitError(f"bjobs failed for job {job_id}: {output}", title="LSF error")
    return info or JobInfo(JobState.UNKNOWN, reason=f"LSF reports no job {job_id}")


async def cancel(job_id: str, *, retry: commands.Retry = commands.DEFAULT_RETRY) -> None:
    """bkill ``job_id``; a job that has already ended is not an error."""
    result = await commands.run(lsf.bkill_argv(job_id), retry, dialect=LSF)
    if result.returncode != 0 and not lsf.is_already_finished(commands.said(result)):
        output = lsf.error_line(commands.said(result))
        raise PilotkitError(f"LSF refused to cancel job {job_id}: {output}", title="cancel refused")


class LsfProvider(BatchProvider):
    """Claims ``resources.nodes`` hosts as one LSF job."""

    id = "lsf"
    Options = LsfOptions
    system = "LSF"
    unsupported = ("qos",)
    description = "an LSF job; one node agent per host (blaunch); not yet run against a real cluster"

    def launch_argv(self, rdv: Rendezvous, workdir: Path) -> list[str]:
        path = workdir / "agents.sh"
        path.write_text(render(AGENTS_TEMPLATE, {"agent": rdv.node_agent_argv()}))
        return ["/bin/bash", str(path)]

    def render(self, job: BatchJob) -> str:
        return lsf.render_script(job, nnodes=self.options.nnodes)

    def time_left(self, info: JobInfo, walltime: float) -> float:
        """bjobs gives the time left in whole minutes, rounded down: up to 59 s short.
        The job has just started, so the walltime bounds the rest."""
        if info.time_left is None:
            return walltime
        return min(walltime, info.time_left + 60.0)

    def job_files(self, workdir: Path) -> tuple[str, str, str]:
        return "job.sh", str(workdir / "lsf-%J.out"), str(workdir / "lsf-%J.err")

    async def submit(self, script: str, workdir: Path) -> str:
        return await submit(script, workdir)

    async def job_state(self, job_id: str) -> JobInfo:
        return await job_state(job_id)

    async def cancel(self, job_id: str) -> None:
        await cancel(job_id)
