"""The PBS, LSF and HTCondor providers' command wrappers against their commands' recorded
output (the golden files), printed by fake executables on PATH; and the checks every
batch provider shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pilotkit_batch import htcondor_provider, lsf_provider, pbs_provider
from pilotkit_batch.commands import Retry
from pilotkit_batch.jobstate import JobState

from pilotkit.api import PilotkitError
from pilotkit.plugins import Plugins
from pilotkit.spec import parse_spec


class NoSleep:
    async def __call__(self, delay: float) -> None:
        return None


RETRY = Retry(attempts=2, initial=0.0, timeout=10.0, sleep=NoSleep())


# ------------------------------------------------------------------------ PBS


async def test_pbs_submit(fakebin: Any, golden: Any, tmp_path: Path) -> None:
    fakebin.add("qsub", fakebin.reply(stdout=golden.read("pbs/qsub.txt")))
    assert await pbs_provider.submit("#!/bin/bash\n", tmp_path, retry=RETRY) == "4321.pbs01"
    assert fakebin.calls("qsub") == [""] and fakebin.stdin("qsub") == "#!/bin/bash\n"
    assert fakebin.cwd("qsub") == str(tmp_path)


async def test_pbs_refusal_is_one_line_naming_the_queue(fakebin: Any, golden: Any, tmp_path: Path) -> None:
    fakebin.add("qsub", fakebin.reply(stderr=golden.read("pbs/qsub_unknown_queue.err"), returncode=170))
    with pytest.raises(PilotkitError) as caught:
        await pbs_provider.submit("#!/bin/bash\n", tmp_path, queue="gpu", retry=RETRY)
    assert str(caught.value) == "PBS refused the job: Unknown queue (queue 'gpu')"
    assert len(fakebin.calls("qsub")) == 1, "a refusal is not tried again"


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("qstat_running.json", JobState.RUNNING),
        ("qstat_queued.json", JobState.PENDING),
        ("qstat_finished_qdel.json", JobState.CANCELLED),
        ("qstat_finished_walltime.json", JobState.WALLTIME_EXPIRED),
        ("qstat_finished_ok.json", JobState.DONE),
    ],
)
async def test_pbs_job_state(fakebin: Any, golden: Any, name: str, state: JobState) -> None:
    fakebin.add("qstat", fakebin.reply(stdout=golden.read(f"pbs/{name}")))
    assert (await pbs_provider.job_state("4321.pbs01", retry=RETRY)).state is state
    assert fakebin.calls("qstat") == ["-f -F json -x 4321.pbs01"]


async def test_pbs_unknown_job_and_cancel(fakebin: Any, golden: Any) -> None:
    fakebin.add("qstat", fakebin.reply(stderr=golden.read("pbs/qdel_unknown.err"), returncode=153))
    assert (await pbs_provider.job_state("4399.pbs01", retry=RETRY)).state is JobState.UNKNOWN
    fakebin.add("qdel", fakebin.reply(stderr=golden.read("pbs/qdel_unknown.err"), returncode=153))
    await pbs_provider.cancel("4399.pbs01", retry=RETRY)  # already gone: not an error
    assert fakebin.calls("qdel") == ["4399.pbs01"]


# ------------------------------------------------------------------------ LSF


async def test_lsf_submit_and_refusal(fakebin: Any, golden: Any, tmp_path: Path) -> None:
    fakebin.add(
        "bsub",
        fakebin.reply(stdout=golden.read("lsf/bsub.txt")),
        fakebin.reply(stderr=golden.read("lsf/bsub_no_queue.err"), returncode=255),
    )
    assert await lsf_provider.submit("#!/bin/bash\n", tmp_path, retry=RETRY) == "5678"
    with pytest.raises(PilotkitError, match=r"^LSF refused the job: nosuch: No such queue$"):
        await lsf_provider.submit("#!/bin/bash\n", tmp_path, retry=RETRY)
    assert fakebin.calls("bsub") == ["", ""]


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("bjobs_running.json", JobState.RUNNING),
        ("bjobs_pending.json", JobState.PENDING),
        ("bjobs_exit_owner.json", JobState.CANCELLED),
        ("bjobs_exit_runlimit.json", JobState.WALLTIME_EXPIRED),
        ("bjobs_done.json", JobState.DONE),
        ("bjobs_not_found.json", JobState.UNKNOWN),
    ],
)
async def test_lsf_job_state(fakebin: Any, golden: Any, name: str, state: JobState) -> None:
    fakebin.add("bjobs", fakebin.reply(stdout=golden.read(f"lsf/{name}")))
    assert (await lsf_provider.job_state("5678", retry=RETRY)).state is state


async def test_lsf_cancel_finished_job(fakebin: Any, golden: Any) -> None:
    fakebin.add("bkill", fakebin.reply(stderr=golden.read("lsf/bkill_finished.err"), returncode=255))
    await lsf_provider.cancel("5678", retry=RETRY)
    assert fakebin.calls("bkill") == ["5678"]


# ------------------------------------------------------------------------ HTCondor


async def test_htcondor_submit_and_refusal(fakebin: Any, golden: Any, tmp_path: Path) -> None:
    fakebin.add(
        "condor_submit",
        fakebin.reply(stdout=golden.read("htcondor/condor_submit_terse.txt")),
        fakebin.reply(stderr=golden.read("htcondor/condor_submit_missing_exe.err"), returncode=1),
    )
    assert await htcondor_provider.submit("queue\n", tmp_path, retry=RETRY) == "812.0"
    with pytest.raises(PilotkitError) as caught:
        await htcondor_provider.submit("queue\n", tmp_path, retry=RETRY)
    assert str(caught.value) == "HTCondor refused the job: Executable file /opt/pilotkit/bin/pilotkit does not exist"
    assert fakebin.calls("condor_submit") == ["-terse", "-terse"]


@pytest.mark.parametrize(
    ("queue", "history", "state"),
    [
        ("condor_q_running.json", None, JobState.RUNNING),
        ("condor_q_idle.json", None, JobState.PENDING),
        ("condor_q_held_duration.json", None, JobState.WALLTIME_EXPIRED),
        (None, "condor_history_removed.json", JobState.CANCELLED),
        (None, "condor_history_completed.json", JobState.DONE),
    ],
)
async def test_htcondor_job_state_queue_then_history(
    fakebin: Any, golden: Any, queue: str | None, history: str | None, state: JobState
) -> None:
    fakebin.add("condor_q", fakebin.reply(stdout=golden.read(f"htcondor/{queue}") if queue else ""))
    fakebin.add("condor_history", fakebin.reply(stdout=golden.read(f"htcondor/{history}") if history else ""))
    assert (await htcondor_provider.job_state("812.0", retry=RETRY)).state is state
    assert len(fakebin.calls("condor_history")) == (0 if queue else 1)


async def test_htcondor_cancel_gone_job(fakebin: Any, golden: Any) -> None:
    fakebin.add("condor_rm", fakebin.reply(stderr=golden.read("htcondor/condor_rm_gone.err"), returncode=1))
    await htcondor_provider.cancel("812.0", retry=RETRY)
    assert fakebin.calls("condor_rm") == ["812.0"]


# ------------------------------------------------------------------------ spec checks


def _problems(text: str, tmp_path: Path) -> str:
    from pilotkit.errors import SpecError

    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        parse_spec(text, path, Plugins().load())
    return str(caught.value)


@pytest.mark.parametrize(
    ("system", "resources", "key", "words"),
    [
        ("pbs", 'walltime = "1h"\nqos = "high"', "resources.qos", "PBS has no equivalent"),
        ("pbs", "", "resources.walltime", "a PBS pilot needs a walltime"),
        ("lsf", 'walltime = "1h"\nqos = "high"', "resources.qos", "LSF has no equivalent"),
        ("htcondor", 'walltime = "1h"\nnodes = 2', "resources.nodes", "at most 1 node(s)"),
        ("htcondor", 'walltime = "1h"\npartition = "gpu"', "resources.partition", "HTCondor has no equivalent"),
    ],
)
def test_spec_problems_name_the_key(
    system: str, resources: str, key: str, words: str, tmp_path: Path
) -> None:
    text = f'name = "t"\n[provider]\ntype = "{system}"\n[resources]\n{resources}\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
    message = _problems(text, tmp_path)
    assert key in message and words in message
