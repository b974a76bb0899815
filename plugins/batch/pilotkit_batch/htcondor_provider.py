"""The HTCondor provider: the shared agent path on HTCondor's commands, one node per pilot.

.. note:: Not yet run against a real HTCondor pool; tested against the golden files and
   fake ``condor_submit``/``condor_q``/``condor_history``/``condor_rm`` commands.

A pilot is one vanilla-universe job on one machine: its executable is the head agent,
which starts one node agent beside itself. More nodes would need the parallel universe,
which needs a dedicated scheduler few pools configure, and which starts the same command
on every machine rather than a head that starts the rest; so ``resources.nodes`` must be
1 (run more pilots for more machines). HTCondor sends no warning before a time limit:
the walltime becomes ``allowed_execute_duration`` and the pilot drains at its
``drain_margin`` by itself; a job that overruns is *held* (walltime-expired) and removed
when the pilot releases it. ``condor_rm`` from outside sends TERM, which the head agent
relays. The job runs with HTCondor's environment, not the submitter's: the agents are
started with the absolute path of ``python``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pilotkit.api import PilotkitError, Rendezvous

from . import commands, htcondor
from .base import BatchOptions, BatchProvider
from .job import BatchJob
from .jobstate import JobInfo, JobState

HTCONDOR = commands.Dialect("HTCondor", "the HTCondor schedd", htcondor.error_line, htcondor.is_transient)
HELD = "5"


class HtcondorOptions(BatchOptions, forbid_unknown_fields=True, omit_defaults=True):
    """Options of ``[provider] type = "htcondor"``."""


async def submit(description: str, workdir: Path, *, retry: commands.Retry = commands.DEFAULT_RETRY) -> str:
    """Submit ``description`` with ``condor_submit -terse`` (its stdin); the job id."""
    result = await commands.run(
        htcondor.condor_submit_argv(), retry, dialect=HTCONDOR, cwd=str(workdir), input=description.encode()
    )
    if result.returncode != 0:
        raise PilotkitError(htcondor.submit_refusal(commands.said(result)), title="job refused")
    try:
        return htcondor.parse_job_id(result.stdout)
    except ValueError as exc:
        raise PilotkitError(str(exc), title="unexpected condor_submit output") from None


async def job_state(job_id: str, *, retry: commands.Retry = commands.DEFAULT_RETRY) -> JobInfo:
    """Where job ``job_id`` is: condor_q while it is in the queue, condor_history after."""
    for argv in (htcondor.condor_q_argv(job_id), htcondor.condor_history_argv(job_id)):
        result = await commands.run(argv, retry, dialect=HTCONDOR)
        if result.returncode != 0:
            output = htcondor.error_line(commands.said(result))
            raise PilotkitError(f"{argv[0]} failed for job {job_id}: {output}", title="HTCondor error")
        try:
            info = htcondor.parse_job_ads(result.stdout, now=time.time())
        except ValueError as exc:
            raise PilotkitError(
                f"unexpected output from '{argv[0]}': {exc}", title="HTCondor error"
            ) from None
        if info is not None:
            return info
    return JobInfo(JobState.UNKNOWN, reason=f"HTCondor knows no job {job_id} (condor_q and condor_history)")


async def cancel(job_id: str, *, retry: commands.Retry = commands.DEFAULT_RETRY) -> None:
    """condor_rm ``job_id``; a job that is gone already is not an error."""
    result = await commands.run(htcondor.condor_rm_argv(job_id), retry, dialect=HTCONDOR)
    if result.returncode != 0 and not htcondor.is_already_finished(commands.said(result)):
        output = htcondor.error_line(commands.said(result))
        raise PilotkitError(f"HTCondor refused to remove job {job_id}: {output}", title="cancel refused")


class HtcondorProvider(BatchProvider):
    """Claims one machine as one vanilla-universe HTCondor job."""

    id = "htcondor"
    Options = HtcondorOptions
    system = "HTCondor"
    unsupported = ("partition", "qos", "exclusive")
    max_nodes = 1
    description = "an HTCondor job on one machine; not yet run against a real pool"

    def launch_argv(self, rdv: Rendezvous, workdir: Path) -> list[str]:
        return rdv.node_agent_argv()

    def render(self, job: BatchJob) -> str:
        return htcondor.render_submit(job)

    def job_files(self, workdir: Path) -> tuple[str, str, str]:
        return "job.sub", str(workdir / "htcondor.out"), str(workdir / "htcondor.err")

    async def submit(self, script: str, workdir: Path) -> str:
        return await submit(script, workdir)

    async def job_state(self, job_id: str) -> JobInfo:
        return await job_state(job_id)

    async def cancel(self, job_id: str) -> None:
        await cancel(job_id)

    def allocation_data(self) -> dict[str, str]:
        return {"accounting_group": self.spec.spec.resources.account or ""}

    async def finish(self, info: JobInfo | None) -> None:
        """A job held at its time limit stays in the queue until removed."""
        if info is not None and info.raw_state == HELD and self.job_id is not None:
            await cancel(self.job_id)
