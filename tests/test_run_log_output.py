"""``pilotkit run`` outside a terminal writes plain lines a log can keep: checked line by
line with stdout and stderr going to a file, as under nohup or a batch job."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

FAILING = 25

SPEC = f"""name = "logged"
[resources]
cores = 2
[[app.groups]]
name = "bad"
shell = true
command = "echo first line >&2; echo 'boom {{n}}' >&2; exit 3"
[app.groups.grid]
n = [{", ".join(str(i) for i in range(FAILING))}]
[[app.groups]]
name = "slow"
commands = ["sleep 3"]
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "logged.toml"
    path.write_text(SPEC)
    return path


def test_run_to_a_file_prints_plain_lines(
    tmp_path: Path, spec: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    workdir = tmp_path / "w"
    log = tmp_path / "run.log"
    with log.open("w") as out:
        done = subprocess.run(
            [*pilotkit_cmd, "run", "--progress-interval", "1s", "--workdir", str(workdir), str(spec)],
            env=cli_env, stdout=out, stderr=subprocess.STDOUT, timeout=120,
        )  # fmt: skip
    text = log.read_text()
    assert done.returncode == 1, text
    assert "\x1b" not in text and "\r" not in text and "█" not in text and "░" not in text, text
    lines = text.splitlines()
    pid = re.escape(lines[0].split(": ")[1])
    state = re.compile(rf"pilotkit: {pid}: state (\S+)(?: \((.*)\))?")
    failure = re.compile(rf"(?:pilotkit: {pid}: |  )task (bad-\d+) failed \(exit 3\): boom (\d+)  log: (\S+)")
    progress = re.compile(
        rf"pilotkit: {pid}: progress: (\d+)/26 done, (\d+) failed, (\d+) cancelled, (\d+) running, "
        r"(\d+) queued; state (\S+), elapsed \d+:\d\d"
    )
    # what the pilot, its app and its provider say, one line each (the pilot names how
    # each node contains task processes)
    message = re.compile(rf"pilotkit: {pid}: (pilot|tasks|local): (.+)")
    messages: list[str] = []
    states: list[str] = []
    live_failures: list[str] = []
    summary_failures: list[str] = []
    progress_lines = 0
    summary_at = lines.index(f"pilot {lines[0].split(': ')[1]}")
    for i, line in enumerate(lines):
        if m := state.fullmatch(line):
            assert i < summary_at
            states.append(m.group(1))
        elif m := failure.fullmatch(line):
            task, n, path = m.groups()
            assert task == f"bad-{int(n):02d}"
            assert path == str(workdir / "tasks" / task / "attempt-1.err") and Path(path).is_file()
            (live_failures if i < summary_at else summary_failures).append(task)
        elif progress.fullmatch(line):
            assert i < summary_at
            progress_lines += 1
        elif m := message.fullmatch(line):
            assert i < summary_at
            messages.append(m.group(2))
        else:
            assert i >= summary_at, f"unexpected line {i}: {line!r}"
    assert states == ["claiming", "probing", "deploying", "running", "evicting", "failed"]
    assert [m for m in messages if "task processes contained by" in m], messages
    assert sorted(live_failures) == sorted(f"bad-{n:02d}" for n in range(FAILING))
    assert progress_lines >= 2, "a progress line every second of a 3 s run"
    # The summary: the counts, where things are, the first 20 failures and a count of the rest.
    summary = lines[summary_at:]
    assert summary[1] == "  group bad: 25 tasks, 0 done, 25 failed, 0 cancelled, 0 queued, 0 running"
    assert summary[2] == "  group slow: 1 tasks, 1 done, 0 failed, 0 cancelled, 0 queued, 0 running"
    assert re.fullmatch(r"state: failed \(25 task\(s\) failed\)  time: \d+\.\ds", summary[3])
    assert summary[4] == f"results: {workdir / 'results.jsonl'}"
    assert summary[5] == f"task logs: {workdir / 'tasks'}"
    assert summary[6] == "failed tasks: 25"
    assert summary_failures == live_failures[:20]
    assert summary[-1] == f"  ... and 5 more failed tasks: see {workdir / 'results.jsonl'}"
    assert len(summary) == 7 + 20 + 1


def test_quiet_prints_only_the_summary(
    tmp_path: Path, spec: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [*pilotkit_cmd, "run", "-q", "--progress-interval", "1s", "--workdir", str(tmp_path / "w"), str(spec)],
        env=cli_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("pilot logged-") and "progress:" not in done.stderr
    assert "state: failed" in done.stderr and "failed tasks: 25" in done.stderr


def test_terminal_summary_lists_failures_without_wrapping_paths(
    tmp_path: Path, spec: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """In a terminal narrower than the paths, the summary keeps each path on one line."""
    workdir = tmp_path / ("a-long-directory-name-" * 3) / "w"
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 60, 0, 0))
    env = {**cli_env, "TERM": "xterm", "COLUMNS": "60"}
    proc = subprocess.Popen(
        [*pilotkit_cmd, "run", "--workdir", str(workdir), str(spec)],
        env=env, stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=30) == 1
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert "failed tasks: 25" in text
    assert str(workdir / "tasks" / "bad-00" / "attempt-1.err") in text.replace("\r\n", "\n").replace("\r", "")
    assert f"... and 5 more failed tasks: see {workdir / 'results.jsonl'}" in text.replace("\r\n", "\n")


def test_a_message_of_several_lines_is_one_line() -> None:
    from pilotkit.cli.logview import PlainLog
    from pilotkit.events import Log
    from pilotkit.progress import Progress

    view = PlainLog("p", Path("/w"), Progress(), 1.0, print)
    view.event(
        Log(
            pilot="p",
            level="info",
            message="scheduler at tcp://n1:8786\n  dashboard :8787\n\n",
            source="dask",
        )
    )
    assert view.queue.get_nowait() == "dask: scheduler at tcp://n1:8786 / dashboard :8787"


def test_a_run_outside_a_terminal_loads_neither_rich_nor_pynvml(tmp_path: Path) -> None:
    """A batch script's ``pilotkit run`` prints plain lines: it never imports rich (about
    5 MiB), and on a machine without the NVML library it does not import pynvml (about
    4 MiB) just to learn there is no GPU. Its summary is still there."""
    import sys
    import textwrap

    spec = tmp_path / "one.toml"
    spec.write_text('name = "one"\n[[app.groups]]\nname = "g"\ncommand = "true"\n')
    probe = textwrap.dedent(f"""
        import ctypes, runpy, sys
        sys.argv = ["pilotkit", "run", {str(spec)!r}, "--workdir", {str(tmp_path / "run")!r}]
        try:
            runpy.run_module("pilotkit.cli.main", run_name="__main__")
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        try:
            ctypes.CDLL("libnvidia-ml.so.1")
            nvml = True
        except OSError:
            nvml = False
        print("loaded:", sorted(m for m in ("rich", "pynvml") if m in sys.modules), "nvml:", nvml)
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "state: done" in done.stderr and "results: " in done.stderr, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    expected = "loaded: [] nvml: False" if line.endswith("False") else "loaded: ['pynvml'] nvml: True"
    assert line == expected, line


@pytest.mark.slurm
def test_a_queued_batch_pilot_says_why_it_waits(
    slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    """On the real Slurm cluster, with every node taken by another job for a few seconds:
    the log says the job was submitted, each reason it waits, and a progress line while
    no task exists yet, then runs as usual."""
    env = {**cli_env, **slurm}
    blocker = subprocess.run(
        ["sbatch", "--parsable", "-N", "3", "-t", "1", "-o", "/dev/null", "--wrap", "sleep 4"],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    spec = tmp_path / "queued.toml"
    spec.write_text(
        'name = "queued"\n[provider]\ntype = "slurm"\n'
        f'callback_host = "{slurm["PILOTKIT_TESTCLUSTER_HOST_ADDR"]}"\n'
        '[resources]\nnodes = 1\nwalltime = "5m"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
    )
    try:
        done = subprocess.run(
            ["pilotkit", "run", "--progress-interval", "1s", "--workdir", str(tmp_path / "w"), str(spec)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
        )  # fmt: skip
    finally:
        subprocess.run(["scancel", blocker.stdout.strip()], env=env, timeout=30)
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    pid = lines[0].split(": ")[1]
    said = [line.removeprefix(f"pilotkit: {pid}: ") for line in lines]
    submitted = next(
        i for i, line in enumerate(said) if re.fullmatch(r"slurm: submitted Slurm job \d+", line)
    )
    job = said[submitted].rsplit(" ", 1)[1]
    runs = said.index(next(line for line in said if line.startswith(f"slurm: job {job} running on node")))
    pending = [line for line in said[submitted:runs] if line.startswith(f"slurm: job {job} pending (")]
    assert pending, said
    assert len(pending) == len(set(pending)), "each reason once"
    waiting = [line for line in said[submitted:runs] if line.startswith("progress: ")]
    assert waiting and all(
        re.fullmatch(r"progress: no task yet; state claiming, elapsed 0:\d\d", line) for line in waiting
    ), waiting
    assert said.index("state running") > runs
    assert "  group g: 1 tasks, 1 done, 0 failed, 0 cancelled, 0 queued, 0 running" in lines


def test_an_attempt_tried_again_is_one_line(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """A failed attempt with retries left says so; the task's end is the usual line, and
    a task that passes on its second attempt has no failure line."""
    spec = tmp_path / "retried.toml"
    spec.write_text(
        'name = "retried"\n[app]\nretries = 1\n'
        '[[app.groups]]\nname = "flaky"\nshell = true\n'
        'command = "echo attempt $PILOTKIT_ATTEMPT >&2; [ $PILOTKIT_ATTEMPT = 2 ]"\n'
        '[[app.groups]]\nname = "bad"\nshell = true\ncommand = "echo no $PILOTKIT_ATTEMPT >&2; exit 5"\n'
    )
    workdir = tmp_path / "w"
    done = subprocess.run(
        [*pilotkit_cmd, "run", "--workdir", str(workdir), str(spec)],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout
    pid = done.stdout.splitlines()[0].split(": ")[1]
    tasks = [line for line in done.stdout.splitlines() if line.startswith(f"pilotkit: {pid}: task ")]
    log = workdir / "tasks"
    assert sorted(tasks) == [
        f"pilotkit: {pid}: task bad-0 attempt 1 failed (exit 5), tried again: no 1  log: {log}/bad-0/attempt-1.err",
        f"pilotkit: {pid}: task bad-0 failed (exit 5): no 2  log: {log}/bad-0/attempt-2.err",
        f"pilotkit: {pid}: task flaky-0 attempt 1 failed (exit 1), tried again: attempt 1  log: "
        f"{log}/flaky-0/attempt-1.err",
    ]
