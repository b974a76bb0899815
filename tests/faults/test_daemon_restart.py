"""A daemon killed with kill -9 and restarted: it kills exactly the processes of its
tasks (found by recorded pid, start time and mark, even one that changed directory or
left its session), never a user's process in a task directory; a task that was running
is not running twice at once."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from pilotkit import cgroup
from pilotkit.testing import need

from ..daemon.conftest import DaemonProcess, daemon, daemon_factory, wait_for, write_spec  # noqa: F401

SPEC = """
name = "wander"
[resources]
cores = 2
[pilot]
grace = "1s"
[[app.groups]]
name = "w"
shell = true
command = "echo $$ >> {spec_dir}/starts-{i}; cd /; setsid sleep 301 & exec sleep 300"
[app.groups.grid]
i = [1]
"""


def sleeps() -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] in (["sleep", "300"], ["sleep", "301"])
    ]


@pytest.mark.parametrize("cgroups", ["cgroup", "off"])
def test_kill_9_restart_kills_exactly_the_tasks_processes(
    daemon_factory: Callable[..., DaemonProcess],  # noqa: F811
    tmp_path: Path,
    cgroups: str,
) -> None:
    daemon = daemon_factory()  # noqa: F811
    if cgroups == "off":  # then the recorded pid, start time and mark alone find them
        daemon.env["PILOTKIT_CGROUP"] = "off"
    else:
        need("a cgroup v2 this process may make cgroups in", cgroup.available())
    daemon.start()
    spec = write_spec(tmp_path, SPEC)
    pilot = daemon.submit(spec)
    wait_for(lambda: len(sleeps()) == 2, 30, "the task and its setsid child to run")
    workdir = Path(daemon.status(pilot)["workdir"])
    # The user's own process, with its working directory in the task's directory.
    bystander = subprocess.Popen(["sleep", "299"], cwd=workdir / "tasks" / "w-0", start_new_session=True)
    try:
        first = sleeps()
        daemon.kill9()
        assert sorted(sleeps()) == sorted(first), "the task outlives the daemon (it left the task dir)"
        daemon.start()
        # The pilot resumes: the old copy is killed before the task starts again.
        wait_for(lambda: len((tmp_path / "starts-1").read_text().split()) == 2, 30, "the task to start again")
        assert not set(first) & set(sleeps()), "the task's processes from before the restart were killed"
        assert len(sleeps()) == 2, "one copy of the task runs, not two"
        assert bystander.poll() is None, "a user's process in the task dir is never touched"
        daemon.cli("cancel", pilot)
        daemon.wait_state(pilot, {"cancelled"}, timeout=30)
        wait_for(lambda: not sleeps(), 10, "every process of the pilot to end")
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        for pid in sleeps():
            psutil.Process(pid).kill()
        time.sleep(0.1)


CLEARED = """
name = "cleared"
[resources]
cores = 2
[pilot]
grace = "1s"
[[app.groups]]
name = "c"
shell = true
command = "echo $$ >> {spec_dir}/starts-{i}; env -i setsid sleep 305 & exec sleep 306"
[app.groups.grid]
i = [1]
"""


def cleared() -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] in (["sleep", "305"], ["sleep", "306"])
    ]


def test_kill_9_restart_kills_a_cleared_environment_child_by_its_cgroup(
    daemon: DaemonProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A child with no mark (``env -i``) in its own session: after a kill -9 only the
    task's recorded cgroup finds it, and the restart kills it before the task runs again."""
    need("a cgroup v2 this process may make cgroups in", cgroup.available())
    pilot = daemon.submit(write_spec(tmp_path, CLEARED))
    try:
        wait_for(lambda: len(cleared()) == 2, 30, "the task and its cleared-environment child to run")
        first = cleared()
        daemon.kill9()
        daemon.start()
        wait_for(lambda: len((tmp_path / "starts-1").read_text().split()) == 2, 30, "the task to start again")
        assert not set(first) & set(cleared()), "both processes from before the restart were killed"
        daemon.cli("cancel", pilot)
        daemon.wait_state(pilot, {"cancelled"}, timeout=30)
        wait_for(lambda: not cleared(), 10, "every process of the pilot to end")
    finally:
        for pid in cleared():
            psutil.Process(pid).kill()
