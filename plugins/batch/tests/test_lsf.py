"""LSF: job scripts, argv builders and parsers, against golden files written from the
LSF documentation (not yet recorded from a cluster)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from pilotkit_batch import lsf
from pilotkit_batch.job import BatchJob
from pilotkit_batch.jobstate import JobInfo, JobState

FULL = BatchJob(
    name="zjets",
    command=["/opt/pilotkit/bin/pilotkit", "agent", "--pilot", "zjets-1"],
    workdir="/scratch/alice/run",
    output="/scratch/alice/run/pilot-%J.out",
    error="/scratch/alice/run/pilot-%J.err",
    nodes=2,
    cores=8,
    memory=16 * 1024**3,
    gpus=4,
    walltime=5400.5,
    partition="normal",
    account="atlas",
    constraint="a100",
    signal_margin=300,
    env={"PILOTKIT_PILOT_ID": "zjets-1"},
)
WHOLE_NODE = BatchJob(
    name="pilot",
    command=["pilotkit", "agent"],
    workdir="/w",
    output="/w/o",
    error="/w/e",
    nodes=3,
    signal_margin=0,
)


@pytest.mark.parametrize(
    ("job", "nnodes", "name"),
    [(FULL, False, "full"), (WHOLE_NODE, False, "whole_node"), (FULL, True, "nnodes")],
)
def test_render_script(golden: Any, job: BatchJob, nnodes: bool, name: str) -> None:
    text = lsf.render_script(job, nnodes=nnodes)
    golden.check(f"lsf/script_{name}.sh", text)
    if shutil.which("bash"):
        subprocess.run(["bash", "-n"], input=text.encode(), check=True)


def test_qos_is_refused() -> None:
    job = BatchJob(name="p", command=["a"], workdir="/w", output="o", error="e", qos="high")
    with pytest.raises(ValueError, match=r"LSF has no equivalent for resources\.qos"):
        lsf.render_script(job)


def test_argv_builders() -> None:
    assert lsf.bsub_argv() == ["bsub"]
    assert lsf.bjobs_argv("5678") == [
        "bjobs",
        "-o",
        "jobid stat exit_code exit_reason exec_host pend_reason time_left",
        "-json",
        "5678",
    ]
    assert lsf.bkill_argv("5678[3]") == ["bkill", "5678[3]"]
    with pytest.raises(ValueError, match="not an LSF job id"):
        lsf.bkill_argv("0 -u all")


def test_parse_job_id(golden: Any) -> None:
    assert lsf.parse_job_id(golden.read("lsf/bsub.txt")) == "5678"
    assert lsf.parse_job_id(golden.read("lsf/bsub_default_queue.txt")) == "5679"
    with pytest.raises(ValueError, match="bsub printed no job id"):
        lsf.parse_job_id("")


BJOBS = {
    "bjobs_running.json": JobInfo(JobState.RUNNING, None, ["cn001", "cn002"], 6420.0, raw_state="RUN"),
    "bjobs_pending.json": JobInfo(JobState.PENDING, "Not enough job slot(s);", [], raw_state="PEND"),
    "bjobs_done.json": JobInfo(JobState.DONE, None, ["cn001", "cn002"], exit_code=0, raw_state="DONE"),
    "bjobs_exit_runlimit.json": JobInfo(
        JobState.WALLTIME_EXPIRED,
        "TERM_RUNLIMIT: job killed after reaching LSF run time limit",
        ["cn001"],
        exit_code=140,
        raw_state="EXIT",
    ),
    "bjobs_exit_owner.json": JobInfo(
        JobState.CANCELLED, "TERM_OWNER: job killed by owner", ["cn001"], exit_code=130, raw_state="EXIT"
    ),
    "bjobs_exit_memlimit.json": JobInfo(
        JobState.OUT_OF_MEMORY,
        "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit",
        ["cn001"],
        exit_code=137,
        raw_state="EXIT",
    ),
    "bjobs_exit_code.json": JobInfo(JobState.FAILED, "exit code 3", ["cn001"], exit_code=3, raw_state="EXIT"),
}


@pytest.mark.parametrize("name", sorted(BJOBS))
def test_parse_bjobs_json(golden: Any, name: str) -> None:
    assert lsf.parse_bjobs_json(golden.read(f"lsf/{name}")) == BJOBS[name]


def test_parse_bjobs_json_without_a_job(golden: Any) -> None:
    assert lsf.parse_bjobs_json(golden.read("lsf/bjobs_not_found.json")) is None
    assert lsf.parse_bjobs_json("") is None


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ("PSUSP", JobState.PENDING),
        ("USUSP", JobState.RUNNING),
        ("SSUSP", JobState.RUNNING),
        ("ZOMBI", JobState.COMPLETING),
        ("UNKWN", JobState.UNKNOWN),
        ("NEW", JobState.UNKNOWN),
    ],
)
def test_other_states(stat: str, expected: JobState) -> None:
    assert lsf.job_info({"STAT": stat}).state is expected


def test_small_parsers() -> None:
    assert lsf.exec_hosts("8*cn001:8*cn002") == ["cn001", "cn002"]
    assert lsf.exec_hosts("cn001:cn001:cn002") == ["cn001", "cn002"]
    assert lsf.exec_hosts("-") == []
    assert lsf.parse_time_left("0:05 E") == 300.0
    assert lsf.parse_time_left("") is None
    assert lsf.minutes(61) == 2


def test_error_lines(golden: Any) -> None:
    assert (
        lsf.bsub_refusal(golden.read("lsf/bsub_no_queue.err")) == "LSF refused the job: nosuch: No such queue"
    )
    assert lsf.bsub_refusal("") == "LSF refused the job (bsub gave no reason)"
    assert lsf.is_already_finished(golden.read("lsf/bkill_finished.err"))
