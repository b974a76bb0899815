"""Running batch-system commands: the shared runner with retries, and Slurm's commands
(submit, query, cancel, and look up a partition's limit).

Every command goes through :func:`pilotkit.api.run_command` (an argv, never a shell
string). :func:`run` is shared by every batch system (:class:`Dialect` says how one
system's errors read); PBS, LSF and HTCondor's wrappers live with their providers. When the controller does not answer ("Socket timed out", "Unable to contact
slurm controller"...) the command is tried again after an exponentially growing pause,
a bounded number of times (:class:`Retry`; its ``sleep`` can be replaced in tests). A
definite refusal is raised at once as a :class:`~pilotkit.errors.PilotkitError` with one
clear line.

sbatch is retried only when the job certainly was not submitted (the controller could not
be reached); after a timeout the job may exist, so the error says to check ``squeue``
rather than risk a duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pilotkit.api import Completed, PilotkitError, run_command

from . import slurm
from .jobstate import JobInfo, JobState

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Retry:
    """How often, and after which pauses, a command is tried again."""

    attempts: int = 5
    """Tries in all (at least 1)."""
    initial: float = 1.0
    """Seconds before the second try."""
    factor: float = 2.0
    maximum: float = 30.0
    """No pause is longer than this."""
    timeout: float = 60.0
    """Seconds one try may take."""
    sleep: Sleep = asyncio.sleep

    def delays(self) -> Iterator[float]:
        """The pauses between tries: ``attempts - 1`` of them."""
        delay = self.initial
        for _ in range(max(0, self.attempts - 1)):
            yield min(delay, self.maximum)
            delay *= self.factor


DEFAULT_RETRY = Retry()


@dataclass(frozen=True)
class Dialect:
    """How one batch system's commands report trouble."""

    name: str
    """``Slurm``, ``PBS``..., for messages."""
    server: str
    """What does not answer when the system is down: ``the Slurm controller``."""
    error_line: Callable[[str], str]
    """A command's output as one line."""
    is_transient: Callable[[str], bool]
    """Whether a command's output says the server did not answer."""


SLURM = Dialect("Slurm", "the Slurm controller", slurm.error_line, slurm.is_transient)


def said(result: Completed) -> str:
    """What a command printed, stderr first (some commands print errors on stdout)."""
    return "\n".join(text for text in (result.stderr, result.stdout) if text.strip())



class _Timeout(Exception):
    """One try took longer than :attr:`Retry.timeout`."""


async def _once(
    argv: Sequence[str], retry: Retry, *, cwd: str | None, input: bytes | None, purpose: str
) -> Completed:
    try:
        return await asyncio.wait_for(
            run_command(argv, timeout=None, cwd=cwd, input=input, check=False, purpose=purpose),
            retry.timeout,
        )
    except TimeoutError:
        raise _Timeout from None


async def run(
    argv: Sequence[str],
    retry: Retry,
    *,
    dialect: Dialect = SLURM,
    cwd: str | None = None,
    input: bytes | None = None,
    retry_if: Callable[[str], bool] | None = None,
) -> Completed:
    """Run ``argv``, trying again while it fails in a way ``retry_if`` accepts (default:
    the dialect's transient errors) or times out. Returns the last result, successful or
    not; raises PilotkitError when every try failed transiently."""
    retry_if = retry_if or dialect.is_transient
    delays = retry.delays()
    while True:
        try:
            result = await _once(argv, retry, cwd=cwd, input=input, purpose=dialect.name)
        except _Timeout:
            problem = f"no answer within {retry.timeout:g}s"
        else:
            text = said(result)
            if result.returncode == 0 or not retry_if(text):
                return result
            problem = dialect.error_line(text)
        delay = next(delays, None)
        if delay is None:
            raise PilotkitError(
                f"'{argv[0]}' failed {retry.attempts} times, {dialect.server} did not answer: {problem}",
                title=f"{dialect.name} unreachable",
            )
        await retry.sleep(delay)



async def submit(script_text: str, workdir: str | Path, *, retry: Retry = DEFAULT_RETRY) -> str:
    """Submit ``script_text`` with sbatch (run in ``workdir``); returns the job id.

    :raises PilotkitError: Slurm refused the job (one line saying why), could not be
        reached, or did not answer (the job may then exist: the message says so).
    """
    result = await run(
        slurm.sbatch_argv(),
        retry,
        cwd=str(workdir),
        input=script_text.encode(),
        retry_if=slurm.is_not_submitted,
    )
    if result.returncode != 0:
        output = said(result)
        if slurm.is_transient(output):
            raise PilotkitError(
                f"sbatch: the Slurm controller did not answer ({slurm.error_line(output)}); "
                "the job may have been submitted anyway, check with 'squeue --me'",
                title="Slurm unreachable",
            )
        raise PilotkitError(slurm.sbatch_refusal(output), title="job refused")
    try:
        return slurm.parse_job_id(result.stdout)
    except ValueError as exc:
        raise PilotkitError(str(exc), title="unexpected sbatch output") from None


async def job_state(job_id: str, *, retry: Retry = DEFAULT_RETRY) -> JobInfo:
    """Where job ``job_id`` is: squeue while the controller holds the job, sacct after.

    A job neither knows (purged from the controller, accounting disabled or not yet
    written) is UNKNOWN.
    """
    queued: JobInfo | None = None
    result = await run(slurm.squeue_argv(job_id), retry)
    if result.returncode == 0:
        queued = _parsed(slurm.parse_squeue, result)
        if queued is not None and not queued.state.terminal:
            return queued
    elif not slurm.is_unknown_job(said(result)):
        raise PilotkitError(
            f"squeue failed for job {job_id}: {slurm.error_line(said(result))}", title="Slurm error"
        )
    result = await run(slurm.sacct_argv(job_id), retry)
    accounted = _parsed(slurm.parse_sacct, result) if result.returncode == 0 else None
    if accounted is not None and accounted.state is not JobState.UNKNOWN:
        return accounted
    if queued is not None:
        return queued
    return accounted or JobInfo(JobState.UNKNOWN, reason=f"Slurm knows no job {job_id} (squeue and sacct)")


def _parsed(parse: Callable[[str], JobInfo | None], result: Completed) -> JobInfo | None:
    try:
        return parse(result.stdout)
    except ValueError as exc:
        what = f"unexpected output from '{result.argv[0]}': {exc}"
        raise PilotkitError(what, title="Slurm error") from None


async def cancel(job_id: str, *, retry: Retry = DEFAULT_RETRY) -> None:
    """Cancel job ``job_id``. A job that has already ended is not an error, so this is
    safe to call more than once.

    :raises PilotkitError: Slurm refused (e.g. another user's job).
    """
    result = await run(slurm.scancel_argv(job_id), retry)
    if result.returncode != 0 and not slurm.is_already_finished(said(result)):
        raise PilotkitError(
            f"Slurm refused to cancel job {job_id}: {slurm.error_line(said(result))}", title="cancel refused"
        )


async def controller(*, retry: Retry = Retry(attempts=2, timeout=20.0)) -> str | None:
    """The Slurm controller's address from ``scontrol show config``; None when unknown."""
    try:
        result = await run(slurm.scontrol_config_argv(), retry)
    except (PilotkitError, OSError):
        return None
    return slurm.parse_controller(result.stdout) if result.returncode == 0 else None


async def partition_info(partition: str | None, *, retry: Retry = DEFAULT_RETRY) -> slurm.Partition:
    """What ``scontrol show partition`` says about ``partition`` (the default partition
    when None).

    :raises PilotkitError: no such partition (or no default partition).
    """
    result = await run(slurm.scontrol_partition_argv(partition), retry)
    if result.returncode != 0:
        output = said(result)
        if slurm.is_unknown_partition(output):
            raise PilotkitError(f"Slurm has no partition '{partition}'", title="unknown partition")
        raise PilotkitError(f"scontrol show partition failed: {slurm.error_line(output)}", title="Slurm error")
    found = slurm.pick_partition(slurm.parse_partitions(result.stdout), partition)
    if found is None:
        what = f"no partition '{partition}'" if partition else "no default partition"
        raise PilotkitError(f"Slurm has {what}", title="unknown partition")
    return found


async def partition_max_time(partition: str | None, *, retry: Retry = DEFAULT_RETRY) -> float | None:
    """The longest walltime ``partition`` allows (the default partition when None), in
    seconds; None when unlimited.

    :raises PilotkitError: no such partition (or no default partition).
    """
    return (await partition_info(partition, retry=retry)).max_time


async def check_walltime(walltime: float, partition: str | None, *, retry: Retry = DEFAULT_RETRY) -> None:
    """Raise PilotkitError (one line) when ``walltime`` seconds is longer than ``partition``
    (the default partition when None) allows."""
    problem = slurm.walltime_problem(walltime, await partition_info(partition, retry=retry))
    if problem:
        raise PilotkitError(problem, title="walltime too long")
