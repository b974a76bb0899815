"""HTCondor: submit descriptions, argv builders and parsers, against golden files
written from the HTCondor manual (not yet recorded from a pool)."""

from __future__ import annotations

from typing import Any

import pytest
from pilotkit_batch import htcondor
from pilotkit_batch.job import BatchJob
from pilotkit_batch.jobstate import JobInfo, JobState

PARALLEL = BatchJob(
    name="zjets",
    command=["/opt/pilotkit/bin/pilotkit", "agent", "--note", "it's $HOME", 'say "hi"'],
    workdir="/scratch/alice/run",
    output="/scratch/alice/run/pilot.out",
    error="/scratch/alice/run/pilot.err",
    nodes=2,
    cores=8,
    memory=16 * 1024**3,
    gpus=1,
    walltime=7200,
    account="group_atlas.alice",
    constraint='OpSysAndVer == "AlmaLinux9"',
    env={"PILOTKIT_PILOT_ID": "zjets-1", "PILOTKIT_LOG": "debug info"},
)
SINGLE = BatchJob(name="pilot", command=["/usr/bin/pilotkit"], workdir="/w", output="/w/o", error="/w/e")


@pytest.mark.parametrize(("job", "name"), [(PARALLEL, "parallel"), (SINGLE, "single")])
def test_render_submit(golden: Any, job: BatchJob, name: str) -> None:
    golden.check(f"htcondor/submit_{name}.sub", htcondor.render_submit(job))


@pytest.mark.parametrize("field", ["partition", "qos"])
def test_unsupported_fields_are_refused(field: str) -> None:
    job = BatchJob(name="p", command=["a"], workdir="/w", output="o", error="e", **{field: "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"HTCondor has no equivalent for resources.{field}"):
        htcondor.render_submit(job)


def test_exclusive_is_refused() -> None:
    job = BatchJob(name="p", command=["a"], workdir="/w", output="o", error="e", exclusive=True)
    with pytest.raises(ValueError, match=r"resources\.exclusive"):
        htcondor.render_submit(job)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ([], '""'),
        (["a", "b"], '"a b"'),
        (["a b"], "\"'a b'\""),
        (["it's"], "\"'it''s'\""),
        (['say "hi"'], '"\'say ""hi""\'"'),
        ([""], "\"''\""),
    ],
)
def test_quote_args(args: list[str], text: str) -> None:
    assert htcondor.quote_args(args) == text


def test_submit_values_are_checked_and_escaped() -> None:
    assert htcondor.submit_value("output", "/w/$(Cluster).out") == "/w/$(DOLLAR)(Cluster).out"
    with pytest.raises(ValueError, match="output"):
        htcondor.submit_value("output", "a\nqueue 100")
    with pytest.raises(ValueError, match="output"):
        htcondor.submit_value("output", " padded")


def test_argv_builders() -> None:
    attributes = ",".join(htcondor.ATTRIBUTES)
    assert htcondor.condor_submit_argv() == ["condor_submit", "-terse"]
    assert htcondor.condor_submit_argv("/w/p.sub") == ["condor_submit", "-terse", "/w/p.sub"]
    assert htcondor.condor_q_argv("812.0") == ["condor_q", "-json", "-attributes", attributes, "812.0"]
    assert htcondor.condor_history_argv("812.0") == [
        "condor_history",
        "-json",
        "-limit",
        "1",
        "-attributes",
        attributes,
        "812.0",
    ]
    assert htcondor.condor_rm_argv("812") == ["condor_rm", "812"]
    with pytest.raises(ValueError, match="not an HTCondor job id"):
        htcondor.condor_rm_argv("-all")


def test_parse_job_id(golden: Any) -> None:
    assert htcondor.parse_job_id(golden.read("htcondor/condor_submit_terse.txt")) == "812.0"
    with pytest.raises(ValueError, match="condor_submit printed no job id"):
        htcondor.parse_job_id("")


ADS = {
    "condor_q_idle.json": JobInfo(JobState.PENDING, raw_state="1"),
    "condor_q_running.json": JobInfo(JobState.RUNNING, None, ["wn017.example.org"], 6400.0, raw_state="2"),
    "condor_q_running_parallel.json": JobInfo(
        JobState.RUNNING, None, ["wn017.example.org", "wn018.example.org"], raw_state="2"
    ),
    "condor_q_held_duration.json": JobInfo(
        JobState.WALLTIME_EXPIRED,
        "The job exceeded allowed execute duration of 2:00:00",
        ["wn017.example.org"],
        raw_state="5",
    ),
    "condor_q_held_memory.json": JobInfo(
        JobState.OUT_OF_MEMORY,
        "Error from slot1_1@wn017.example.org: Job has gone over cgroup memory limit of 4096 megabytes.",
        raw_state="5",
    ),
    "condor_q_held_other.json": JobInfo(
        JobState.PENDING,
        "held: Error from slot1_1@wn017.example.org: Failed to open '/scratch/out' as standard output: "
        "No such file or directory (errno 2)",
        raw_state="5",
    ),
    "condor_q_transferring.json": JobInfo(
        JobState.COMPLETING, "transferring output", ["wn017.example.org"], raw_state="6"
    ),
    "condor_history_completed.json": JobInfo(
        JobState.DONE, None, ["wn017.example.org"], exit_code=0, raw_state="4"
    ),
    "condor_history_exit1.json": JobInfo(
        JobState.FAILED, "exit code 1", ["wn017.example.org"], exit_code=1, raw_state="4"
    ),
    "condor_history_signal.json": JobInfo(
        JobState.FAILED, "killed by signal 9", ["wn017.example.org"], raw_state="4"
    ),
    "condor_history_removed.json": JobInfo(
        JobState.CANCELLED, "via condor_rm (by user alice)", raw_state="3"
    ),
}


@pytest.mark.parametrize("name", sorted(ADS))
def test_parse_job_ads(golden: Any, name: str) -> None:
    assert htcondor.parse_job_ads(golden.read(f"htcondor/{name}"), now=1700000800) == ADS[name]


def test_parse_job_ads_edge_cases() -> None:
    assert htcondor.parse_job_ads("") is None
    assert htcondor.parse_job_ads("[]") is None
    info = htcondor.parse_job_ads('[{"JobStatus": 7}]')
    assert info is not None and (info.state, info.reason) == (JobState.RUNNING, "suspended")
    info = htcondor.parse_job_ads('[{"JobStatus": 9}]')
    assert info is not None and info.state is JobState.UNKNOWN


def test_error_lines(golden: Any) -> None:
    assert htcondor.submit_refusal(golden.read("htcondor/condor_submit_missing_exe.err")) == (
        "HTCondor refused the job: Executable file /opt/pilotkit/bin/pilotkit does not exist"
    )
    assert htcondor.is_already_finished(golden.read("htcondor/condor_rm_gone.err"))
