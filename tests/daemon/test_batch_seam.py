"""A pilot in a batch allocation outlives the daemon: on SIGTERM it is detached (its
allocation and tasks keep running), and after a restart its record waits to be
re-attached by job id. A stand-in provider ("fakebatch", the local provider under
another id) is installed for the daemon through an entry point on PYTHONPATH."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from .conftest import DaemonProcess, wait_for, write_spec

PLUGIN = '''
import pilotkit
from pilotkit.builtin.local import LocalProvider


class FakeBatchProvider(LocalProvider):
    id = "fakebatch"
    description = "test stand-in for a batch system"


@pilotkit.hookimpl
def pilotkit_register_providers(register):
    register(FakeBatchProvider)
'''


def _install_plugin(site: Path) -> None:
    site.mkdir()
    (site / "fakebatch_plugin.py").write_text(PLUGIN)
    info = site / "pilotkit_fakebatch-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pilotkit-fakebatch\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pilotkit]\nfakebatch = fakebatch_plugin\n")


def _task_processes(workdir: Path) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter():
        try:
            if proc.cwd().startswith(str(workdir / "tasks")):
                out.append(proc)
        except psutil.Error:
            continue
    return out


def test_batch_pilot_is_detached_on_sigterm_and_waits_to_reattach(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _install_plugin(tmp_path / "site")
    d: DaemonProcess = daemon_factory(extra_args=["--shutdown-timeout", "30"])
    d.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "site"), d.env.get("PYTHONPATH")]))
    d.env.pop("PILOTKIT_LOAD_PLUGINS", None)
    d.start()
    pilot = d.submit(write_spec(tmp_path, """
name = "batchy"
[provider]
type = "fakebatch"
[[app.groups]]
name = "g"
commands = ["sleep 60"]
"""))
    summary = d.wait_state(pilot, {"running"})
    assert summary["provider"] == "fakebatch" and summary["job_id"]
    wait_for(lambda: d.status(pilot)["progress"]["running"] == 1, what="the task to run")
    workdir = Path(summary["workdir"])
    (task,) = wait_for(lambda: _task_processes(workdir), what="the task process")
    try:
        started = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.wait_exit(20) == 0
        assert time.monotonic() - started < 15, "a batch pilot is not drained"
        assert task.is_running(), "the allocation's work keeps running"

        d.start()
        summary = d.status(pilot)
        assert summary["state"] == "running" and summary["attached"] is False
        assert "cannot re-attach yet" in summary["reason"] and summary["job_id"] in summary["reason"]
        assert summary["crashes"] == 0
        refused = d.cli("cancel", pilot, check=False)
        assert refused.returncode == 2 and "not attached" in refused.stderr
        assert "not attached" in d.cli("status").stdout
    finally:
        for proc in _task_processes(workdir):
            proc.kill()
