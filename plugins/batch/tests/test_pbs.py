"""PBS Pro: job scripts, argv builders and parsers, against golden files written from
the PBS documentation (not yet recorded from a server)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from pilotkit_batch import pbs
from pilotkit_batch.job import BatchJob
from pilotkit_batch.jobstate import JobInfo, JobState

FULL = BatchJob(
    name="zjets",
    command=["/opt/pilotkit/bin/pilotkit", "agent", "--pilot", "zjets-1"],
    workdir="/scratch/alice/run",
    output="/scratch/alice/run/pilot.out",
    error="/scratch/alice/run/pilot.err",
    nodes=2,
    cores=8,
    memory=16 * 1024**3,
    gpus=1,
    walltime=50 * 3600,
    partition="workq",
    account="atlas",
    env={"PILOTKIT_PILOT_ID": "zjets-1"},
)
WHOLE_NODE = BatchJob(
    name="pilot",
    command=["pilotkit", "agent"],
    workdir="/w",
    output="/w/o",
    error="/w/e",
    memory=1536 * 1024**2,
)


@pytest.mark.parametrize(("job", "name"), [(FULL, "full"), (WHOLE_NODE, "whole_node")])
def test_render_script(golden: Any, job: BatchJob, name: str) -> None:
    text = pbs.render_script(job)
    golden.check(f"pbs/script_{name}.sh", text)
    if shutil.which("bash"):
        subprocess.run(["bash", "-n"], input=text.encode(), check=True)


def test_select_statement() -> None:
    assert pbs.select_statement(FULL) == "2:ncpus=8:ngpus=1:mem=16gb"
    assert pbs.select_statement(WHOLE_NODE) == "1:mem=1536mb"


@pytest.mark.parametrize("field", ["qos", "constraint"])
def test_unsupported_fields_are_refused(field: str) -> None:
    job = BatchJob(name="p", command=["a"], workdir="/w", output="o", error="e", **{field: "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"PBS has no equivalent for resources.{field}"):
        pbs.render_script(job)


def test_argv_builders() -> None:
    assert pbs.qsub_argv() == ["qsub"]
    assert pbs.qsub_argv("/w/job.sh") == ["qsub", "/w/job.sh"]
    assert pbs.qstat_argv("4321.pbs01") == ["qstat", "-f", "-F", "json", "-x", "4321.pbs01"]
    assert pbs.qstat_argv("4321.pbs01", json_output=False) == ["qstat", "-f", "-x", "4321.pbs01"]
    assert pbs.qdel_argv("4321[].pbs01") == ["qdel", "4321[].pbs01"]
    with pytest.raises(ValueError, match="not a PBS job id"):
        pbs.qdel_argv("-W force")


def test_parse_job_id(golden: Any) -> None:
    assert pbs.parse_job_id(golden.read("pbs/qsub.txt")) == "4321.pbs01"
    with pytest.raises(ValueError, match="qsub printed no job id"):
        pbs.parse_job_id("qsub: Unknown queue\n")


QSTAT = {
    "qstat_running.json": JobInfo(JobState.RUNNING, None, ["cn001", "cn002"], 6450.0, raw_state="R"),
    "qstat_queued.json": JobInfo(
        JobState.PENDING,
        "Not Running: Insufficient amount of resource: ncpus (R: 16 A: 4 T: 64)",
        [],
        raw_state="Q",
    ),
    "qstat_finished_ok.json": JobInfo(JobState.DONE, None, ["cn003"], exit_code=0, raw_state="F"),
    "qstat_finished_exit1.json": JobInfo(
        JobState.FAILED, "exit code 1", ["cn003"], exit_code=1, raw_state="F"
    ),
    "qstat_finished_walltime.json": JobInfo(
        JobState.WALLTIME_EXPIRED, "killed at the walltime limit", ["cn003"], exit_code=-29, raw_state="F"
    ),
    "qstat_finished_mem.json": JobInfo(
        JobState.OUT_OF_MEMORY,
        "killed for exceeding its memory limit",
        ["cn003"],
        exit_code=-27,
        raw_state="F",
    ),
    "qstat_finished_qdel.json": JobInfo(
        JobState.CANCELLED, "deleted (qdel)", ["cn003"], exit_code=271, raw_state="F"
    ),
    "qstat_finished_signal.json": JobInfo(
        JobState.FAILED, "killed by signal 9", ["cn003"], exit_code=265, raw_state="F"
    ),
}


@pytest.mark.parametrize("name", sorted(QSTAT))
def test_parse_qstat_json(golden: Any, name: str) -> None:
    assert pbs.parse_qstat_json(golden.read(f"pbs/{name}")) == QSTAT[name]


def test_parse_qstat_json_by_id_and_empty(golden: Any) -> None:
    text = golden.read("pbs/qstat_running.json")
    info = pbs.parse_qstat_json(text, "4321.pbs01")
    assert info is not None and info.state is JobState.RUNNING
    assert pbs.parse_qstat_json("") is None
    assert pbs.parse_qstat_json('{"Jobs": {}}') is None


def test_parse_qstat_full_plain_text(golden: Any) -> None:
    jobs = pbs.parse_qstat_full(golden.read("pbs/qstat_full_running.txt"))
    attrs = jobs["4321.pbs01"]
    assert attrs["Resource_List"]["walltime"] == "02:00:00"
    assert (
        attrs["exec_vnode"] == "(cn001:ncpus=8:ngpus=1:mem=16777216kb)+(cn002:ncpus=8:ngpus=1:mem=16777216kb)"
    )
    assert pbs.job_info(attrs) == QSTAT["qstat_running.json"]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("H", JobState.PENDING),
        ("W", JobState.PENDING),
        ("S", JobState.RUNNING),
        ("E", JobState.COMPLETING),
        ("M", JobState.UNKNOWN),
        ("?", JobState.UNKNOWN),
    ],
)
def test_other_states(state: str, expected: JobState) -> None:
    assert pbs.job_info({"job_state": state}).state is expected


def test_exec_hosts() -> None:
    assert pbs.exec_hosts("cn001/0*8+cn002/0*8+cn001/1*8") == ["cn001", "cn002"]
    assert pbs.exec_hosts("") == []


def test_error_lines(golden: Any) -> None:
    assert pbs.qsub_refusal(golden.read("pbs/qsub_unknown_queue.err")) == "PBS refused the job: Unknown queue"
    assert pbs.qsub_refusal(golden.read("pbs/qsub_walltime.err")) == (
        "PBS refused the job: Job exceeds queue resource limits MSG=requested walltime exceeds max_walltime"
    )
    assert pbs.is_already_finished(golden.read("pbs/qdel_unknown.err"))
