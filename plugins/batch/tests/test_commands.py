"""The async Slurm wrappers, run against fake sbatch/squeue/sacct/scancel/scontrol
executables (shell scripts printing recorded outputs) on PATH."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pilotkit_batch import commands
from pilotkit_batch.commands import Retry
from pilotkit_batch.jobstate import JobState

from pilotkit.errors import MissingBinaryError, PilotkitError


class Sleeps:
    """An injectable sleep that records the pauses instead of taking them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retry(sleeps: Sleeps) -> Retry:
    return Retry(attempts=4, initial=1.0, factor=2.0, maximum=3.0, timeout=10.0, sleep=sleeps)


def test_backoff_is_exponential_and_bounded() -> None:
    assert list(Retry(attempts=6, initial=1, factor=2, maximum=5).delays()) == [1, 2, 4, 5, 5]
    assert list(Retry(attempts=1).delays()) == []


# ------------------------------------------------------------------------ submit


async def test_submit_with_fake_sbatch(fakebin: Any, retry: Retry, tmp_path: Path) -> None:
    fakebin.add("sbatch", fakebin.reply(stdout="4242\n"))
    workdir = tmp_path / "run"
    workdir.mkdir()
    job_id = await commands.submit("#!/bin/bash\nexec true\n", workdir, retry=retry)
    assert job_id == "4242"
    assert fakebin.calls("sbatch") == ["--parsable"]
    assert fakebin.stdin("sbatch") == "#!/bin/bash\nexec true\n"
    assert fakebin.cwd("sbatch") == str(workdir)


async def test_submit_with_fake_sbatch_on_a_federation(fakebin: Any, retry: Retry, tmp_path: Path) -> None:
    fakebin.add("sbatch", fakebin.reply(stdout="4243;cluster2\n"))
    assert await commands.submit("#!/bin/bash\n", tmp_path, retry=retry) == "4243"


async def test_refusal_from_fake_sbatch_is_one_line_at_once(
    fakebin: Any, golden: Any, retry: Retry, sleeps: Sleeps, tmp_path: Path
) -> None:
    fakebin.add(
        "sbatch", fakebin.reply(stderr=golden.read("slurm/sbatch_invalid_partition.err"), returncode=1)
    )
    with pytest.raises(PilotkitError) as caught:
        await commands.submit("#!/bin/bash\n", tmp_path, retry=retry)
    assert str(caught.value) == "Slurm refused the job: invalid partition specified: foo"
    assert len(fakebin.calls("sbatch")) == 1
    assert sleeps.delays == []


async def test_fake_sbatch_unreachable_controller_is_retried(
    fakebin: Any, golden: Any, retry: Retry, sleeps: Sleeps, tmp_path: Path
) -> None:
    down = fakebin.reply(stderr=golden.read("slurm/sbatch_connect_failure.err"), returncode=1)
    fakebin.add("sbatch", down, down, fakebin.reply(stdout="77\n"))
    assert await commands.submit("#!/bin/bash\n", tmp_path, retry=retry) == "77"
    assert sleeps.delays == [1.0, 2.0]
    assert fakebin.stdin("sbatch", 3) == "#!/bin/bash\n"


async def test_fake_sbatch_socket_timeout_is_not_retried(
    fakebin: Any, golden: Any, retry: Retry, sleeps: Sleeps, tmp_path: Path
) -> None:
    fakebin.add("sbatch", fakebin.reply(stderr=golden.read("slurm/sbatch_socket_timeout.err"), returncode=1))
    with pytest.raises(PilotkitError, match="may have been submitted anyway"):
        await commands.submit("#!/bin/bash\n", tmp_path, retry=retry)
    assert len(fakebin.calls("sbatch")) == 1
    assert sleeps.delays == []


async def test_fake_sbatch_without_a_job_id(fakebin: Any, retry: Retry, tmp_path: Path) -> None:
    fakebin.add("sbatch", fakebin.reply(stdout="hello\n"))
    with pytest.raises(PilotkitError, match="sbatch printed no job id"):
        await commands.submit("#!/bin/bash\n", tmp_path, retry=retry)


async def test_missing_sbatch(fakebin: Any, retry: Retry, tmp_path: Path) -> None:
    with pytest.raises(MissingBinaryError, match="'sbatch' not found"):
        await commands.submit("#!/bin/bash\n", tmp_path, retry=retry)


# ------------------------------------------------------------------------ job_state


async def test_job_state_from_fake_squeue_while_running(fakebin: Any, golden: Any, retry: Retry) -> None:
    fakebin.add("squeue", fakebin.reply(stdout=golden.read("slurm/squeue_running.txt")))
    fakebin.add("sacct", fakebin.reply(stdout="should not be asked\n", returncode=1))
    info = await commands.job_state("7", retry=retry)
    assert (info.state, info.nodes, info.time_left) == (JobState.RUNNING, ["vm"], 44.0)
    assert fakebin.calls("squeue") == ["--noheader --jobs=7 --states=all --format=%T|%r|%N|%L"]
    assert fakebin.calls("sacct") == []


async def test_job_state_from_fake_sacct_after_squeue_forgot(fakebin: Any, golden: Any, retry: Retry) -> None:
    fakebin.add("squeue", fakebin.reply(stderr=golden.read("slurm/squeue_unknown.err"), returncode=1))
    fakebin.add("sacct", fakebin.reply(stdout=golden.read("slurm/sacct_timeout.txt")))
    info = await commands.job_state("7", retry=retry)
    assert info.state is JobState.WALLTIME_EXPIRED
    assert not info.state.failure
    assert info.nodes == ["gpu01", "gpu02", "gpu03", "gpu04"]
    assert fakebin.calls("sacct") == [
        "--noheader --parsable2 --allocations --jobs=7 --format=State,ExitCode,NodeList,Elapsed"
    ]


async def test_job_state_prefers_fake_sacct_for_ended_jobs(fakebin: Any, golden: Any, retry: Retry) -> None:
    fakebin.add("squeue", fakebin.reply(stdout=golden.read("slurm/squeue_failed.txt")))
    fakebin.add("sacct", fakebin.reply(stdout=golden.read("slurm/sacct_failed.txt")))
    info = await commands.job_state("8", retry=retry)
    assert (info.state, info.exit_code, info.reason) == (JobState.FAILED, 3, "exit code 3")


async def test_job_state_from_fake_squeue_when_accounting_is_disabled(
    fakebin: Any, golden: Any, retry: Retry
) -> None:
    fakebin.add("squeue", fakebin.reply(stdout=golden.read("slurm/squeue_timeout.txt")))
    fakebin.add("sacct", fakebin.reply(stderr=golden.read("slurm/sacct_disabled.err"), returncode=1))
    info = await commands.job_state("7", retry=retry)
    assert (info.state, info.reason) == (JobState.WALLTIME_EXPIRED, "TimeLimit")


async def test_job_state_unknown_to_fake_squeue_and_sacct(fakebin: Any, golden: Any, retry: Retry) -> None:
    fakebin.add("squeue", fakebin.reply(stderr=golden.read("slurm/squeue_unknown.err"), returncode=1))
    fakebin.add("sacct", fakebin.reply(stderr=golden.read("slurm/sacct_disabled.err"), returncode=1))
    info = await commands.job_state("99999", retry=retry)
    assert info.state is JobState.UNKNOWN
    assert info.reason == "Slurm knows no job 99999 (squeue and sacct)"


async def test_fake_squeue_socket_timeout_is_retried(
    fakebin: Any, golden: Any, retry: Retry, sleeps: Sleeps
) -> None:
    flaky = fakebin.reply(stderr=golden.read("slurm/squeue_socket_timeout.err"), returncode=1)
    fakebin.add("squeue", flaky, fakebin.reply(stdout=golden.read("slurm/squeue_pending_resources.txt")))
    info = await commands.job_state("11", retry=retry)
    assert (info.state, info.reason) == (JobState.PENDING, "Resources")
    assert sleeps.delays == [1.0]


async def test_fake_squeue_retries_are_bounded(
    fakebin: Any, golden: Any, retry: Retry, sleeps: Sleeps
) -> None:
    fakebin.add("squeue", fakebin.reply(stderr=golden.read("slurm/squeue_socket_timeout.err"), returncode=1))
    with pytest.raises(PilotkitError) as caught:
        await commands.job_state("11", retry=retry)
    assert str(caught.value) == (
        "'squeue' failed 4 times, the Slurm controller did not answer: "
        "Socket timed out on send/recv operation"
    )
    assert sleeps.delays == [1.0, 2.0, 3.0]
    assert len(fakebin.calls("squeue")) == 4


async def test_fake_squeue_that_hangs_times_out(fakebin: Any, sleeps: Sleeps) -> None:
    fakebin.add("squeue", fakebin.reply(delay=30))
    quick = Retry(attempts=2, initial=0.5, timeout=0.3, sleep=sleeps)
    with pytest.raises(PilotkitError, match=r"no answer within 0\.3s"):
        await commands.job_state("7", retry=quick)
    assert sleeps.delays == [0.5]


async def test_fake_squeue_definite_error(fakebin: Any, retry: Retry, sleeps: Sleeps) -> None:
    fakebin.add("squeue", fakebin.reply(stderr="squeue: error: Invalid user: nobody\n", returncode=1))
    with pytest.raises(PilotkitError, match="squeue failed for job 7: Invalid user: nobody"):
        await commands.job_state("7", retry=retry)
    assert sleeps.delays == []


async def test_fake_squeue_with_garbage_output(fakebin: Any, retry: Retry) -> None:
    fakebin.add("squeue", fakebin.reply(stdout="what?\n"))
    with pytest.raises(PilotkitError, match="unexpected output from 'squeue'"):
        await commands.job_state("7", retry=retry)


# ------------------------------------------------------------------------ cancel


async def test_cancel_with_fake_scancel(fakebin: Any, retry: Retry) -> None:
    fakebin.add("scancel", fakebin.reply())
    await commands.cancel("7", retry=retry)
    assert fakebin.calls("scancel") == ["7"]


async def test_cancel_of_an_ended_job_with_fake_scancel(fakebin: Any, golden: Any, retry: Retry) -> None:
    fakebin.add("scancel", fakebin.reply(stderr=golden.read("slurm/scancel_completed.err"), returncode=1))
    await commands.cancel("1234", retry=retry)
    await commands.cancel("1234", retry=retry)


async def test_cancel_refused_by_fake_scancel(fakebin: Any, golden: Any, retry: Retry) -> None:
    fakebin.add("scancel", fakebin.reply(stderr=golden.read("slurm/scancel_denied.err"), returncode=1))
    with pytest.raises(PilotkitError) as caught:
        await commands.cancel("1234", retry=retry)
    assert str(caught.value) == (
        "Slurm refused to cancel job 1234: Kill job error on job id 1234: Access/permission denied"
    )


# ------------------------------------------------------------------------ partitions


@pytest.mark.parametrize(
    ("partition", "seconds"), [(None, 3600.0), ("debug", 3600.0), ("long", 172800.0), ("open", None)]
)
async def test_partition_max_time_with_fake_scontrol(
    fakebin: Any, golden: Any, retry: Retry, partition: str | None, seconds: float | None
) -> None:
    fakebin.add("scontrol", fakebin.reply(stdout=golden.read("slurm/scontrol_oneliner.txt")))
    assert await commands.partition_max_time(partition, retry=retry) == seconds


async def test_unknown_partition_with_fake_scontrol(fakebin: Any, golden: Any, retry: Retry) -> None:
    fakebin.add("scontrol", fakebin.reply(stdout=golden.read("slurm/scontrol_unknown.txt"), returncode=1))
    with pytest.raises(PilotkitError) as caught:
        await commands.partition_max_time("nosuch", retry=retry)
    assert str(caught.value) == "Slurm has no partition 'nosuch'"
    assert fakebin.calls("scontrol") == ["--oneliner show partition nosuch"]


async def test_no_default_partition_with_fake_scontrol(fakebin: Any, retry: Retry) -> None:
    fakebin.add("scontrol", fakebin.reply(stdout="PartitionName=a Default=NO MaxTime=UNLIMITED State=UP\n"))
    with pytest.raises(PilotkitError, match="Slurm has no default partition"):
        await commands.partition_max_time(None, retry=retry)


async def test_check_walltime_with_fake_scontrol(fakebin: Any, golden: Any, retry: Retry) -> None:
    fakebin.add("scontrol", fakebin.reply(stdout=golden.read("slurm/scontrol_oneliner.txt")))
    await commands.check_walltime(3600, "debug", retry=retry)
    await commands.check_walltime(10**7, "open", retry=retry)
    with pytest.raises(PilotkitError) as caught:
        await commands.check_walltime(7200, None, retry=retry)
    assert str(caught.value) == "walltime 02:00:00 is longer than partition 'debug' allows (MaxTime 01:00:00)"


async def test_fake_scancel_and_scontrol_retry_while_the_controller_is_down(
    fakebin: Any, golden: Any, retry: Retry, sleeps: Sleeps
) -> None:
    down = fakebin.reply(stderr=golden.read("slurm/scancel_connect_failure.err"), returncode=8)
    fakebin.add("scancel", down, fakebin.reply())
    await commands.cancel("7", retry=retry)
    down = fakebin.reply(stderr=golden.read("slurm/scontrol_connect_failure.err"), returncode=1)
    fakebin.add("scontrol", down, down, fakebin.reply(stdout=golden.read("slurm/scontrol_multiline.txt")))
    assert await commands.partition_max_time("long", retry=retry) == 172800.0
    assert sleeps.delays == [1.0, 1.0, 2.0]
