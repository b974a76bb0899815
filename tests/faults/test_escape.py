"""A task's processes end with it, even one that left its process group with setsid,
and nothing else is touched: no process of a pilot is left after it ends."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pilotkit import cgroup
from pilotkit.testing import need

from .conftest import pilot_processes, run, spec_file

CONTAINED_BY = {
    "cgroup": "task processes contained by a cgroup v2 per task + child subreaper + process group",
    "off": "task processes contained by child subreaper + process group",
}


@pytest.mark.parametrize("cgroups", ["cgroup", "off"])
def test_setsid_grandchild_ends_with_its_task(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str], cgroups: str
) -> None:
    if cgroups == "off":
        cli_env = {**cli_env, "PILOTKIT_CGROUP": "off"}
    else:
        need("a cgroup v2 this process may make cgroups in", cgroup.available())
    # A process of the user's own in the same directory tree: never touched.
    bystander = subprocess.Popen(["sleep", "300"], cwd=tmp_path, start_new_session=True)
    spec = spec_file(
        tmp_path,
        'name = "escape"\n[[app.groups]]\nname = "g"\n'
        # The task forks a setsid grandchild (its own session and group) and exits at once;
        # a second one double-forks a nohup daemon; the third one runs on for a while.
        "commands = [\"sh -c 'setsid sleep 300 & echo $! > pid; sleep 0.2'\",\n"
        '  "sh -c \'(nohup setsid sh -c \\"sleep 301\\" >/dev/null 2>&1 &) ; sleep 0.2\'",\n'
        "  \"sh -c 'sleep 1'\"]\n",
    )
    wd = tmp_path / "wd"
    out = run(pilotkit_cmd, cli_env, "run", "--workdir", str(wd), str(spec), timeout=60)
    assert out.returncode == 0, out.stderr
    assert CONTAINED_BY[cgroups] in out.stderr
    escaped = int((wd / "tasks" / "g-0" / "pid").read_text())
    assert not psutil.pid_exists(escaped) or psutil.Process(escaped).status() == psutil.STATUS_ZOMBIE
    time.sleep(0.2)
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] in (["sleep", "300"], ["sleep", "301"])
    ]
    assert [p.pid for p in left] == [bystander.pid]  # processes left: 0; the bystander lives
    assert not pilot_processes(wd)
    bystander.kill()
    bystander.wait()


def test_a_task_that_clears_its_environment_leaves_no_process_behind(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """``env -i setsid``: no mark, its own session, and its parent gone at once. Only the
    task's cgroup still knows it; it ends with the task, and nothing else is touched."""
    need("a cgroup v2 this process may make cgroups in", cgroup.available())
    bystander = subprocess.Popen(["sleep", "303"], cwd=tmp_path, start_new_session=True)
    spec = spec_file(
        tmp_path,
        'name = "clean"\n[[app.groups]]\nname = "g"\n'
        'commands = ["sh -c \'env -i setsid sh -c \\"sleep 302 & echo \\\\$! > pid; wait\\" & sleep 0.5\'"]\n',
    )
    wd = tmp_path / "wd"
    try:
        out = run(pilotkit_cmd, cli_env, "run", "--workdir", str(wd), str(spec), timeout=60)
        assert out.returncode == 0, out.stderr
        escaped = int((wd / "tasks" / "g-0" / "pid").read_text())
        wait_gone = time.monotonic() + 5
        while psutil.pid_exists(escaped) and psutil.Process(escaped).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < wait_gone, "the cleared-environment grandchild outlived its task"
            time.sleep(0.05)
        left = [
            p
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] in (["sleep", "302"], ["sleep", "303"])
        ]
        assert [p.pid for p in left] == [bystander.pid]
    finally:
        bystander.kill()
        bystander.wait()


def test_orphan_of_a_running_task_is_left_to_it(tmp_path: Path) -> None:
    """A setsid helper of a task that still runs is not killed (its task may need it);
    it goes when the task ends."""
    code = f"""
import asyncio, os, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from pilotkit.spawn import ProcessRunner

async def main():
    runner = ProcessRunner()
    assert runner.subreaper
    done = asyncio.Event()
    d = {str(tmp_path)!r}
    runner.spawn(["sh", "-c", "sh -c 'setsid sleep 300 & echo $! > helper' ; sleep 2"], cwd=d, env=None,
                 stdout=d + "/out", stderr=d + "/err", on_exit=lambda pid, status: done.set())
    await asyncio.sleep(1.0)
    helper = int(open(d + "/helper").read())
    runner.sweep()
    os.kill(helper, 0)  # alive while its task runs
    await done.wait()
    assert await runner.wait_orphans() == 0
    try:
        os.kill(helper, 0)
    except ProcessLookupError:
        print("gone")

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gone"


def test_task_cgroups_are_removed_and_their_processes_reaped(tmp_path: Path) -> None:
    """The runner's cgroups go with their tasks and with the runner; what a killed
    cgroup held is reaped (no zombie children left), marked or not."""
    need("a cgroup v2 this process may make cgroups in", cgroup.available())
    code = f"""
import asyncio, os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from pilotkit.spawn import ProcessRunner, _own_children

async def main():
    runner = ProcessRunner()
    base = runner.cgroups.base
    d = {str(tmp_path)!r}
    done = asyncio.Event()
    runner.spawn(["sh", "-c", "env -i setsid sleep 304 & sleep 0.3"], cwd=d, env=None,
                 stdout=d + "/out", stderr=d + "/err", on_exit=lambda pid, status: done.set())
    print(sum(1 for n in os.listdir(base) if os.path.isdir(os.path.join(base, n))))
    await done.wait()
    await asyncio.sleep(0.1)
    await runner.wait_orphans()
    print(len(_own_children()))
    runner.close()
    print(os.path.exists(base))

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0", "False"], "one task cgroup; nothing left unreaped; all removed"
