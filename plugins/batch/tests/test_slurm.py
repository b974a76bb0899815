"""Slurm: job scripts, argv builders and parsers, against golden files."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from pilotkit_batch import slurm
from pilotkit_batch.job import BatchJob
from pilotkit_batch.jobstate import JobInfo, JobState

FULL = BatchJob(
    name="zjets pilot",
    command=["/opt/pilotkit/bin/pilotkit", "agent", "--pilot", "zjets-1", "--note", "it's $HOME"],
    workdir="/scratch/alice/pilotkit-runs/zjets-1",
    output="/scratch/alice/pilotkit-runs/zjets-1/slurm-%j.out",
    error="/scratch/alice/pilotkit-runs/zjets-1/slurm-%j.err",
    nodes=4,
    cores=32,
    memory=64 * 1024**3,
    gpus=4,
    walltime=36 * 3600,
    partition="gpu",
    account="atlas",
    qos="normal",
    constraint="a100&ib",
    signal_margin=120,
    env={"PILOTKIT_PILOT_ID": "zjets-1", "PILOTKIT_LOG": "debug info"},
)
WHOLE_NODE = BatchJob(
    name="pilot",
    command=["pilotkit", "agent"],
    workdir="/home/bob/run",
    output="/home/bob/run/pilot.out",
    error="/home/bob/run/pilot.err",
)


def _bash_syntax_ok(text: str) -> None:
    bash = shutil.which("bash")
    if bash is not None:
        subprocess.run([bash, "-n"], input=text.encode(), check=True)


@pytest.mark.parametrize(("job", "name"), [(FULL, "full"), (WHOLE_NODE, "whole_node")])
def test_render_script(golden: Any, job: BatchJob, name: str) -> None:
    text = slurm.render_script(job)
    golden.check(f"slurm/script_{name}.sh", text)
    _bash_syntax_ok(text)


def test_script_memory_only_when_set() -> None:
    assert "--mem" not in slurm.render_script(WHOLE_NODE)
    assert "#SBATCH --mem=64G\n" in slurm.render_script(FULL)


def test_script_signal_margin_is_clamped() -> None:
    job = BatchJob(name="p", command=["a"], workdir="/w", output="o", error="e", signal_margin=10**6)
    assert "--signal=B:USR1@65535\n" in slurm.render_script(job)


def test_argv_builders() -> None:
    assert slurm.sbatch_argv() == ["sbatch", "--parsable"]
    assert slurm.sbatch_argv("/w/job.sh") == ["sbatch", "--parsable", "/w/job.sh"]
    assert slurm.squeue_argv("123") == [
        "squeue",
        "--noheader",
        "--jobs=123",
        "--states=all",
        "--format=%T|%r|%N|%L",
    ]
    assert slurm.sacct_argv("123") == [
        "sacct",
        "--noheader",
        "--parsable2",
        "--allocations",
        "--jobs=123",
        "--format=State,ExitCode,NodeList,Elapsed",
    ]
    assert slurm.scancel_argv("123_4") == ["scancel", "123_4"]
    assert slurm.scontrol_partition_argv() == ["scontrol", "--oneliner", "show", "partition"]
    assert slurm.scontrol_partition_argv("gpu") == ["scontrol", "--oneliner", "show", "partition", "gpu"]


@pytest.mark.parametrize("bad", ["", "-u", "12 3", "12;rm", "abc"])
def test_job_ids_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Slurm job id"):
        slurm.scancel_argv(bad)


@pytest.mark.parametrize("bad", ["", "--all", "a b"])
def test_partition_names_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="not a partition name"):
        slurm.scontrol_partition_argv(bad)


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [("123\n", "123"), ("123;cluster2\n", "123"), ("sbatch: warning\n456\n", "456"), ("77_1\n", "77_1")],
)
def test_parse_job_id(stdout: str, job_id: str) -> None:
    assert slurm.parse_job_id(stdout) == job_id


@pytest.mark.parametrize("stdout", ["", "Submitted batch job\n", "abc;x\n"])
def test_parse_job_id_refuses_garbage(stdout: str) -> None:
    with pytest.raises(ValueError, match="no job id"):
        slurm.parse_job_id(stdout)


@pytest.mark.parametrize(
    ("raw", "state", "detail"),
    [
        ("PENDING", JobState.PENDING, None),
        ("CONFIGURING", JobState.PENDING, None),
        ("REQUEUED", JobState.PENDING, None),
        ("RUNNING", JobState.RUNNING, None),
        ("SUSPENDED", JobState.RUNNING, None),
        ("COMPLETING", JobState.COMPLETING, None),
        ("STAGE_OUT", JobState.COMPLETING, None),
        ("COMPLETED", JobState.DONE, None),
        ("FAILED", JobState.FAILED, None),
        ("CANCELLED", JobState.CANCELLED, None),
        ("CANCELLED by 0", JobState.CANCELLED, "cancelled by uid 0"),
        ("CANCELLED+", JobState.CANCELLED, None),
        ("TIMEOUT", JobState.WALLTIME_EXPIRED, None),
        ("DEADLINE", JobState.WALLTIME_EXPIRED, None),
        ("NODE_FAIL", JobState.NODE_FAIL, None),
        ("BOOT_FAIL", JobState.NODE_FAIL, None),
        ("PREEMPTED", JobState.PREEMPTED, None),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY, None),
        ("SPECIAL_EXIT", JobState.FAILED, None),
        ("REVOKED", JobState.CANCELLED, None),
        ("SOMETHING_NEW", JobState.UNKNOWN, None),
    ],
)
def test_map_state(raw: str, state: JobState, detail: str | None) -> None:
    assert slurm.map_state(raw) == (state, detail)


def test_walltime_expiry_is_terminal_but_not_a_failure() -> None:
    assert JobState.WALLTIME_EXPIRED.terminal
    assert not JobState.WALLTIME_EXPIRED.failure
    assert not JobState.CANCELLED.failure
    assert JobState.OUT_OF_MEMORY.failure
    assert not JobState.COMPLETING.terminal


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:44", 44.0),
        ("59:58", 3598.0),
        ("2:00", 120.0),
        ("1:00:00", 3600.0),
        ("01:00:00", 3600.0),
        ("2-00:00:00", 172800.0),
        ("1-12", 129600.0),
        ("1-0:30", 88200.0),
        ("30", 1800.0),
        ("UNLIMITED", None),
        ("INFINITE", None),
        ("NOT_SET", None),
        ("NONE", None),
    ],
)
def test_parse_slurm_time(text: str, seconds: float | None) -> None:
    assert slurm.parse_slurm_time(text) == seconds


@pytest.mark.parametrize("text", ["1:2:3:4", "x", "1-x", "a-1:00"])
def test_parse_slurm_time_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a Slurm time"):
        slurm.parse_slurm_time(text)


SQUEUE = {
    "squeue_running.txt": JobInfo(JobState.RUNNING, None, ["vm"], 44.0, raw_state="RUNNING"),
    "squeue_pending_resources.txt": JobInfo(JobState.PENDING, "Resources", [], 3600.0, raw_state="PENDING"),
    "squeue_pending_partition_time_limit.txt": JobInfo(
        JobState.PENDING, "PartitionTimeLimit", [], 7200.0, raw_state="PENDING"
    ),
    "squeue_completed.txt": JobInfo(JobState.DONE, None, ["vm"], None, raw_state="COMPLETED"),
    "squeue_failed.txt": JobInfo(JobState.FAILED, "NonZeroExitCode", ["vm"], None, raw_state="FAILED"),
    "squeue_failed_signal.txt": JobInfo(
        JobState.FAILED, "JobLaunchFailure", ["vm"], None, raw_state="FAILED"
    ),
    "squeue_timeout.txt": JobInfo(JobState.WALLTIME_EXPIRED, "TimeLimit", ["vm"], None, raw_state="TIMEOUT"),
    "squeue_cancelled_running.txt": JobInfo(JobState.CANCELLED, None, ["vm"], None, raw_state="CANCELLED"),
    "squeue_cancelled_pending.txt": JobInfo(
        JobState.CANCELLED, "PartitionTimeLimit", [], None, raw_state="CANCELLED"
    ),
}


@pytest.mark.parametrize("name", sorted(SQUEUE))
def test_parse_squeue_recorded(golden: Any, name: str) -> None:
    assert slurm.parse_squeue(golden.read(f"slurm/{name}")) == SQUEUE[name]


def test_parse_squeue_multi_node_and_empty() -> None:
    info = slurm.parse_squeue("RUNNING|None|gpu[01-03],login1|1-02:03:04\n")
    assert info is not None
    assert info.nodes == ["gpu01", "gpu02", "gpu03", "login1"]
    assert info.time_left == 93784.0
    assert slurm.parse_squeue("") is None
    with pytest.raises(ValueError, match="unexpected squeue line"):
        slurm.parse_squeue("RUNNING|x\n")


SACCT = {
    "sacct_completed.txt": JobInfo(
        JobState.DONE, None, ["node01", "node02"], exit_code=0, raw_state="COMPLETED"
    ),
    "sacct_failed.txt": JobInfo(JobState.FAILED, "exit code 3", ["node01"], exit_code=3, raw_state="FAILED"),
    "sacct_cancelled_by_user.txt": JobInfo(
        JobState.CANCELLED,
        "cancelled by uid 1000; signal 15",
        ["node01"],
        exit_code=0,
        raw_state="CANCELLED by 1000",
    ),
    "sacct_cancelled_by_root_pending.txt": JobInfo(
        JobState.CANCELLED, "cancelled by uid 0", [], exit_code=0, raw_state="CANCELLED by 0"
    ),
    "sacct_timeout.txt": JobInfo(
        JobState.WALLTIME_EXPIRED,
        None,
        ["gpu01", "gpu02", "gpu03", "gpu04"],
        exit_code=0,
        raw_state="TIMEOUT",
    ),
    "sacct_out_of_memory.txt": JobInfo(
        JobState.OUT_OF_MEMORY, "killed by signal 125", ["node03"], exit_code=0, raw_state="OUT_OF_MEMORY"
    ),
    "sacct_node_fail.txt": JobInfo(JobState.NODE_FAIL, None, ["node07"], exit_code=0, raw_state="NODE_FAIL"),
    "sacct_boot_fail.txt": JobInfo(JobState.NODE_FAIL, None, ["node08"], exit_code=0, raw_state="BOOT_FAIL"),
    "sacct_deadline.txt": JobInfo(
        JobState.WALLTIME_EXPIRED, None, ["node09"], exit_code=0, raw_state="DEADLINE"
    ),
    "sacct_preempted.txt": JobInfo(
        JobState.PREEMPTED, "killed by signal 15", ["node10"], exit_code=0, raw_state="PREEMPTED"
    ),
    "sacct_pending.txt": JobInfo(JobState.PENDING, None, [], exit_code=0, raw_state="PENDING"),
    "sacct_requeued_then_running.txt": JobInfo(
        JobState.RUNNING, None, ["node12"], exit_code=0, raw_state="RUNNING"
    ),
}


@pytest.mark.parametrize("name", sorted(SACCT))
def test_parse_sacct(golden: Any, name: str) -> None:
    assert slurm.parse_sacct(golden.read(f"slurm/{name}")) == SACCT[name]


def test_parse_sacct_empty_and_malformed() -> None:
    assert slurm.parse_sacct("\n") is None
    with pytest.raises(ValueError, match="unexpected sacct line"):
        slurm.parse_sacct("COMPLETED|0:0\n")


@pytest.mark.parametrize("name", ["scontrol_oneliner.txt", "scontrol_multiline.txt"])
def test_parse_partitions_recorded(golden: Any, name: str) -> None:
    partitions = slurm.parse_partitions(golden.read(f"slurm/{name}"))
    assert partitions == [
        slurm.Partition("debug", 3600.0, default=True, state="UP"),
        slurm.Partition("long", 172800.0, default=False, state="UP"),
        slurm.Partition("open", None, default=False, state="UP"),
    ]
    assert slurm.pick_partition(partitions, None) == partitions[0]
    assert slurm.pick_partition(partitions, "open") == partitions[2]
    assert slurm.pick_partition(partitions, "nosuch") is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("UNLIMITED", None), ("1:00:00", 3600.0), ("2-00:00:00", 172800.0)]
)
def test_parse_max_time(text: str, seconds: float | None) -> None:
    assert slurm.parse_max_time(text) == seconds


def test_walltime_problem() -> None:
    debug = slurm.Partition("debug", 3600.0)
    assert slurm.walltime_problem(3600, debug) is None
    assert slurm.walltime_problem(10**7, slurm.Partition("open", None)) is None
    assert slurm.walltime_problem(2 * 86400, debug) == (
        "walltime 2-00:00:00 is longer than partition 'debug' allows (MaxTime 01:00:00)"
    )


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("sbatch_invalid_partition.err", "Slurm refused the job: invalid partition specified: foo"),
        ("sbatch_memory.err", "Slurm refused the job: Memory specification can not be satisfied"),
        ("sbatch_gres.err", "Slurm refused the job: Invalid generic resource (gres) specification"),
        (
            "sbatch_time_limit.err",
            "Slurm refused the job: Requested time limit is invalid (missing or exceeds some limit)",
        ),
        (
            "sbatch_account.err",
            "Slurm refused the job: Invalid account or account/partition combination specified",
        ),
    ],
)
def test_sbatch_refusal(golden: Any, name: str, line: str) -> None:
    assert slurm.sbatch_refusal(golden.read(f"slurm/{name}")) == line


def test_sbatch_refusal_from_the_brief_example() -> None:
    assert (
        slurm.sbatch_refusal("sbatch: error: invalid partition specified: foo")
        == "Slurm refused the job: invalid partition specified: foo"
    )
    assert slurm.sbatch_refusal("") == "Slurm refused the job (sbatch gave no reason)"


def test_error_classification(golden: Any) -> None:
    assert slurm.is_transient(golden.read("slurm/squeue_socket_timeout.err"))
    assert slurm.is_transient(golden.read("slurm/sbatch_connect_failure.err"))
    assert slurm.is_not_submitted(golden.read("slurm/sbatch_connect_failure.err"))
    assert slurm.is_transient(golden.read("slurm/sbatch_socket_timeout.err"))
    assert not slurm.is_not_submitted(golden.read("slurm/sbatch_socket_timeout.err"))
    assert not slurm.is_transient(golden.read("slurm/sbatch_invalid_partition.err"))
    assert slurm.is_unknown_job(golden.read("slurm/squeue_unknown.err"))
    assert slurm.is_already_finished(golden.read("slurm/scancel_completed.err"))
    assert not slurm.is_already_finished(golden.read("slurm/scancel_denied.err"))
    assert slurm.is_unknown_partition(golden.read("slurm/scontrol_unknown.txt"))
    assert slurm.error_line(golden.read("slurm/squeue_unknown.err")) == "Invalid job id specified"
    assert slurm.error_line(golden.read("slurm/sacct_disabled.err")) == "Slurm accounting storage is disabled"
    assert slurm.error_line("") == "no output"


@pytest.mark.parametrize("command", ["sbatch", "squeue", "scancel", "scontrol"])
def test_recorded_connect_failures_are_transient(golden: Any, command: str) -> None:
    text = golden.read(f"slurm/{command}_connect_failure.err")
    assert slurm.is_transient(text)
    assert slurm.is_not_submitted(text)
    assert slurm.error_line(text).endswith("Unable to contact slurm controller (connect failure)")
