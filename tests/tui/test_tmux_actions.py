"""The dashboard in a real terminal (tmux) against a real daemon: a shell on a node (the
command for each provider; the dashboard hands the terminal over and comes back) and the
failures of a scan."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pilotkit.testing import need_binary
from pilotkit.tui.shell import NoShell, shell_command

from .conftest import env_for, quick_spec, wait_for

PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]


def test_shell_commands_per_provider(tmp_path: Path) -> None:
    local = shell_command(provider="local", job_id="123", node="vm", workdir=str(tmp_path), remote=False,
                          shell="/bin/bash")
    assert local.argv == ["/bin/bash"] and local.cwd == str(tmp_path)
    gone = shell_command(provider="local", job_id=None, node=None, workdir=str(tmp_path / "gone"), remote=False,
                         shell="/bin/sh")
    assert gone.cwd is None
    with pytest.raises(NoShell, match="another machine"):
        shell_command(provider="local", job_id=None, node=None, workdir=None, remote=True)
    with pytest.raises(NoShell, match="no shell for a 'pbs' pilot"):
        shell_command(provider="pbs", job_id="1", node="n1", workdir=None, remote=False)
    with pytest.raises(NoShell, match="no Slurm job"):
        shell_command(provider="slurm", job_id=None, node="n1", workdir=None, remote=False)
    if shutil.which("srun") is None:
        with pytest.raises(NoShell, match="srun is not on PATH"):
            shell_command(provider="slurm", job_id="42", node="n1", workdir=None, remote=False)
    else:
        slurm = shell_command(provider="slurm", job_id="42", node="n1", workdir=None, remote=False, shell="/bin/sh")
        assert slurm.argv[1:] == ["--jobid=42", "--overlap", "--pty", "-w", "n1", "/bin/sh"]


@pytest.mark.tmux
def test_shell_on_a_local_pilot_in_tmux_and_back(tui_daemon: Any, tmp_path: Path) -> None:
    tmux = need_binary("tmux")
    pilot = tui_daemon.submit(quick_spec(tmp_path, tasks=4, seconds=60, name="shelled"))
    workdir = tui_daemon.wait_state(pilot, {"running"})["workdir"]
    marker = tmp_path / "shell-ran"
    fake_shell = tmp_path / "shell.sh"  # a shell that says where it ran, then exits
    fake_shell.write_text(f"#!/bin/sh\npwd > {shlex.quote(str(marker))}\n")
    fake_shell.chmod(0o755)
    server = str(tmp_path / "tmux.sock")
    # SHELL for the dashboard only: tmux itself runs the command with the usual shell
    command = shlex.join(["env", f"SHELL={fake_shell}", *PILOTKIT, "tui", "--pilot", pilot, "--socket",
                          str(tui_daemon.socket)])
    env = env_for(tui_daemon)
    env["TERM"] = "xterm-256color"
    subprocess.run([tmux, "-S", server, "new-session", "-d", "-s", "tui", "-x", "160", "-y", "48", command],
                   env=env, check=True, timeout=30)

    def screen() -> str:
        return subprocess.run([tmux, "-S", server, "capture-pane", "-p", "-t", "tui"], capture_output=True,
                              text=True, timeout=30).stdout

    try:
        wait_for(lambda: "Nodes" in screen() and "running" in screen(), 60, "the pilot's page")
        subprocess.run([tmux, "-S", server, "send-keys", "-t", "tui", "!"], timeout=30)
        wait_for(marker.exists, 30, "the shell to run")
        assert marker.read_text().strip() == str(Path(workdir).resolve())
        wait_for(lambda: "back from a shell" in screen() and "Nodes" in screen(), 30, "the dashboard again")
        subprocess.run([tmux, "-S", server, "send-keys", "-t", "tui", "q"], timeout=30)
        wait_for(lambda: subprocess.run([tmux, "-S", server, "has-session", "-t", "tui"],
                                        capture_output=True).returncode != 0, 20, "the dashboard to quit")
    finally:
        subprocess.run([tmux, "-S", server, "kill-server"], capture_output=True, timeout=30)
        tui_daemon.cli("cancel", pilot, check=False)


@pytest.mark.tmux
def test_failures_of_a_scan_in_tmux(tui_daemon: Any, tmp_path: Path) -> None:
    """A scan with a failing task, to its end, in a real terminal: F groups the failure,
    enter opens that task's stderr."""
    tmux = need_binary("tmux")
    pilot = tui_daemon.submit(quick_spec(tmp_path, tasks=8, seconds=0.1, name="scan", fail=True))
    server = str(tmp_path / "tmux.sock")
    command = shlex.join([*PILOTKIT, "tui", "--pilot", pilot, "--socket", str(tui_daemon.socket)])
    env = env_for(tui_daemon)
    env["TERM"] = "xterm-256color"
    subprocess.run([tmux, "-S", server, "new-session", "-d", "-s", "tui", "-x", "120", "-y", "40", command],
                   env=env, check=True, timeout=30)

    def screen() -> str:
        return subprocess.run([tmux, "-S", server, "capture-pane", "-p", "-t", "tui"], capture_output=True,
                              text=True, timeout=30).stdout

    def keys(*k: str) -> None:
        subprocess.run([tmux, "-S", server, "send-keys", "-t", "tui", *k], timeout=30)

    try:
        wait_for(lambda: "failed (1 task(s) failed)" in screen(), 60, "the scan to end failed")
        keys("F")
        wait_for(lambda: "1 failed task(s) in 1 group(s)" in screen(), 30, "the failures screen")
        assert "failed (exit 1)" in screen() and "work-3" in screen()
        keys("Enter")
        wait_for(lambda: "work-3 stderr" in screen(), 30, "the failed task's stderr")
        keys("Escape")
        wait_for(lambda: "failures" in screen(), 30, "back to the failures")
        keys("q")
        wait_for(lambda: subprocess.run([tmux, "-S", server, "has-session", "-t", "tui"],
                                        capture_output=True).returncode != 0, 20, "the dashboard to quit")
    finally:
        subprocess.run([tmux, "-S", server, "kill-server"], capture_output=True, timeout=30)
