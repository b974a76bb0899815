"""The PBS Pro (and OpenPBS) provider: the shared agent path on PBS's commands.

.. note:: Not yet run against a real PBS server; tested against the golden files and
   fake ``qsub``/``qstat``/``qdel``/``pbsdsh`` commands.

The job script (:mod:`pilotkit_batch.pbs`) asks for ``select=<nodes>:...`` with
``place=scatter`` and ``exec``\\ s the head agent, which runs ``agents.sh`` (written in
the pilot's working directory): one ``pbsdsh -n <index>`` per distinct host of
``$PBS_NODEFILE``, each starting a node agent named after its host. PBS sends no signal
before the walltime, so the pilot drains at its ``drain_margin`` by itself; ``qdel``
sends TERM, which the head agent relays. Job status comes from ``qstat -f -F json -x``,
which needs the server's job history (``job_history_enable``) to see finished jobs.
"""

from __future__ import annotations

from pathlib import Path

from pilotkit.api import Completed, PilotkitError, Rendezvous

from . import commands, pbs
from .base import BatchOptions, BatchProvider
from .job import BatchJob
from .jobstate import JobInfo, JobState
from .render import render

PBS = commands.Dialect("PBS", "the PBS server", pbs.error_line, pbs.is_transient)
AGENTS_TEMPLATE = "pbs-agents.sh.tmpl"


class PbsOptions(BatchOptions, forbid_unknown_fields=True, omit_defaults=True):
    """Options of ``[provider] type = "pbs"``."""


async def submit(
    script: str, workdir: Path, *, queue: str | None = None, retry: commands.Retry = commands.DEFAULT_RETRY
) -> str:
    """Submit ``script`` with qsub (its stdin), run in ``workdir``; the job id.

    :param queue: the queue asked for, named in a refusal that is about the queue (qsub's
        "Unknown queue" does not say which).
    """
    result = await commands.run(
        pbs.qsub_argv(),
        retry,
        dialect=PBS,
        cwd=str(workdir),
        input=script.encode(),
        retry_if=pbs.is_not_submitted,
    )
    if result.returncode != 0:
        line = pbs.qsub_refusal(commands.said(result))
        if queue and "queue" in line.lower() and queue not in line:
            line += f" (queue '{queue}')"
        raise PilotkitError(line, title="job refused")
    return _parsed(pbs.parse_job_id, result)


async def job_state(job_id: str, *, retry: commands.Retry = commands.DEFAULT_RETRY) -> JobInfo:
    """Where job ``job_id`` is; UNKNOWN when the server no longer knows it."""
    result = await commands.run(pbs.qstat_argv(job_id), retry, dialect=PBS)
    if result.returncode != 0:
        output = commands.said(result)
        if pbs.is_unknown_job(output):
            return JobInfo(JobState.UNKNOWN, reason=f"PBS knows no job {job_id} (is job history enabled?)")
        raise PilotkitError(f"qstat failed for job {job_id}: {pbs.error_line(output)}", title="PBS error")
    try:
        info = pbs.parse_qstat_json(result.stdout, job_id)
    except ValueError as exc:
        raise PilotkitError(f"unexpected output from 'qstat': {exc}", title="PBS error") from None
    return info or JobInfo(JobState.UNKNOWN, reason=f"qstat listed no job {job_id}")


async def cancel(job_id: str, *, retry: commands.Retry = commands.DEFAULT_RETRY) -> None:
    """qdel ``job_id``; a job that has already ended is not an error."""
    result = await commands.run(pbs.qdel_argv(job_id), retry, dialect=PBS)
    if result.returncode != 0 and not pbs.is_already_finished(commands.said(result)):
        output = pbs.error_line(commands.said(result))
        raise PilotkitError(f"PBS refused to cancel job {job_id}: {output}", title="cancel refused")


def _parsed(parse: object, result: Completed) -> str:
    assert callable(parse)
    try:
        job_id: str = parse(result.stdout)
    except ValueError as exc:
        raise PilotkitError(str(exc), title=f"unexpected {result.argv[0]} output") from None
    return job_id


class PbsProvider(BatchProvider):
    """Claims ``resources.nodes`` nodes as one PBS Pro job."""

    id = "pbs"
    Options = PbsOptions
    system = "PBS"
    unsupported = ("qos", "constraint")
    description = "a PBS Pro job; one node agent per node (pbsdsh); not yet run against a real server"

    def launch_argv(self, rdv: Rendezvous, workdir: Path) -> list[str]:
        path = workdir / "agents.sh"
        path.write_text(render(AGENTS_TEMPLATE, {"agent": rdv.node_agent_argv()}))
        return ["/bin/bash", str(path)]

    def render(self, job: BatchJob) -> str:
        return pbs.render_script(job)

    def job_files(self, workdir: Path) -> tuple[str, str, str]:
        return "job.sh", str(workdir / "pbs.out"), str(workdir / "pbs.err")

    async def submit(self, script: str, workdir: Path) -> str:
        return await submit(script, workdir, queue=self.spec.spec.resources.partition)

    async def job_state(self, job_id: str) -> JobInfo:
        return await job_state(job_id)

    async def cancel(self, job_id: str) -> None:
        await cancel(job_id)
