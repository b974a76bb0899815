"""Running again into the same workdir: refused without --resume or --fresh; --resume
runs only the tasks without an ok result and never duplicates a results line; a changed
spec is refused for --resume; --fresh moves the old run aside."""

from __future__ import annotations

import json
from pathlib import Path

from ..daemon.conftest import daemon, daemon_factory  # noqa: F401
from .conftest import run, spec_file

SPEC = """name = "rerun"
[[app.groups]]
name = "g"
command = "sh -c 'test -e {spec_dir}/flag-{i} || exit 3; echo {i}'"
grid = { i = [0, 1, 2, 3, 4, 5] }
"""


def lines(workdir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]


def test_rerun_refused_then_resume_then_fresh(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = spec_file(tmp_path, SPEC)
    wd = tmp_path / "wd"
    for i in (0, 1, 2):
        (tmp_path / f"flag-{i}").touch()
    first = run(pilotkit_cmd, cli_env, "run", "-q", "--workdir", str(wd), str(spec))
    assert first.returncode == 1  # tasks 3..5 failed
    assert sorted((r["task"], r["outcome"]) for r in lines(wd)) == [
        ("g-0", "ok"), ("g-1", "ok"), ("g-2", "ok"), ("g-3", "failed"), ("g-4", "failed"), ("g-5", "failed")
    ]  # fmt: skip
    before = (wd / "results.jsonl").read_text()

    again = run(pilotkit_cmd, cli_env, "run", "-q", "--workdir", str(wd), str(spec))
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: {wd} holds an earlier run: add --resume to run only the tasks without an ok result, "
        "or --fresh to move it aside"
    ]
    assert (wd / "results.jsonl").read_text() == before  # untouched

    for i in (3, 4, 5):
        (tmp_path / f"flag-{i}").touch()
    resumed = run(pilotkit_cmd, cli_env, "run", "-q", "--resume", "--workdir", str(wd), str(spec))
    assert resumed.returncode == 0, resumed.stderr
    assert "3 task(s) already ok" in resumed.stderr
    results = lines(wd)
    tasks = [r["task"] for r in results]
    assert sorted(tasks) == [f"g-{i}" for i in range(6)]  # one line each, no duplicate
    assert all(r["outcome"] == "ok" for r in results)
    # The ok tasks did not run again; the others made a second attempt with logs of their own.
    assert not (wd / "tasks" / "g-0" / "attempt-2.out").exists()
    assert (wd / "tasks" / "g-3" / "attempt-1.out").read_text() == ""
    assert (wd / "tasks" / "g-3" / "attempt-2.out").read_text() == "3\n"

    changed = spec_file(tmp_path, SPEC.replace("5]", "5, 6]"))
    refused = run(pilotkit_cmd, cli_env, "run", "-q", "--resume", "--workdir", str(wd), str(changed))
    assert refused.returncode == 2
    assert "the spec changed since the earlier run (app.options.groups[0].grid.i)" in refused.stderr
    assert len(lines(wd)) == 6

    fresh = run(pilotkit_cmd, cli_env, "run", "-q", "--fresh", "--workdir", str(wd), str(changed))
    assert fresh.returncode == 1  # g-6 has no flag
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("wd.")]
    assert len(moved) == 1 and len(lines(moved[0])) == 6
    assert len(lines(wd)) == 7


def test_daemon_submit_into_an_earlier_run_is_refused(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    spec = spec_file(tmp_path, 'name = "twice"\n[[app.groups]]\nname = "g"\ncommands = ["echo one"]\n')
    wd = tmp_path / "wd"
    pilot = daemon.cli("submit", str(spec), "--workdir", str(wd)).stdout.strip()
    daemon.wait_state(pilot, {"done"}, timeout=30)
    before = (wd / "results.jsonl").read_text()
    again = daemon.cli("submit", str(spec), "--workdir", str(wd), check=False)
    assert again.returncode == 2
    assert f"workdir {wd} holds an earlier run" in again.stderr
    assert "Traceback" not in again.stderr
    assert (wd / "results.jsonl").read_text() == before


def test_resume_after_kill_9_kills_what_the_dead_run_left(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    import signal
    import subprocess
    import time

    import psutil

    spec = spec_file(
        tmp_path,
        'name = "dead"\n[[app.groups]]\nname = "g"\nshell = true\n'
        'command = "if [ -e {spec_dir}/go ]; then echo done; else cd /; setsid sleep 302 & exec sleep 303; fi"\n'
        "grid = { i = [1] }\n",
    )
    wd = tmp_path / "wd"

    def sleeps() -> list[int]:
        return [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] in (["sleep", "302"], ["sleep", "303"])]

    proc = subprocess.Popen([*pilotkit_cmd, "run", "-q", "--workdir", str(wd), str(spec)], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while len(sleeps()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(sleeps()) == 2  # the dead run's task and its setsid child live on
    (tmp_path / "go").touch()
    resumed = run(pilotkit_cmd, cli_env, "run", "-q", "--resume", "--workdir", str(wd), str(spec))
    assert resumed.returncode == 0, resumed.stderr
    assert "killed 2 process(es) the earlier run" in resumed.stderr
    assert not sleeps()  # processes left: 0
    assert [r["task"] for r in lines(wd)] == ["g-0"]
    assert (wd / "tasks" / "g-0" / "attempt-2.out").read_text() == "done\n"
