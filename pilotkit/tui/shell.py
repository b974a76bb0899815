"""A shell on a node of a pilot's allocation, from the dashboard.

Slurm: ``srun --jobid JOB --overlap --pty -w NODE $SHELL`` (a step inside the pilot's
own job, sharing its resources). A local pilot: ``$SHELL`` in the pilot's workdir. Other
providers, and a daemon on another machine, have none here: :func:`shell_command` says
why. The dashboard suspends while the shell runs and comes back when it ends."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ShellCommand:
    argv: list[str]
    cwd: str | None
    what: str
    """In words, for the screen (``a shell on node0001 (srun, job 4242)``)."""


class NoShell(Exception):
    """Why there is no shell to open."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def shell_command(*, provider: str, job_id: str | None, node: str | None, workdir: str | None,
                  remote: bool, shell: str | None = None) -> ShellCommand:
    """The command that opens a shell on ``node`` of a pilot, or :class:`NoShell`."""
    shell = shell or os.environ.get("SHELL") or "/bin/sh"
    if remote:
        raise NoShell("shell: the daemon runs on another machine; log in there (ssh) to reach its nodes")
    if provider == "local":
        cwd = workdir if workdir and Path(workdir).is_dir() else None
        return ShellCommand([shell], cwd, f"a shell on this machine{f' in {cwd}' if cwd else ''}")
    if provider == "slurm":
        if not job_id:
            raise NoShell("shell: the pilot has no Slurm job (yet)")
        srun = shutil.which("srun")
        if srun is None:
            raise NoShell("shell: srun is not on PATH here")
        argv = [srun, f"--jobid={job_id}", "--overlap", "--pty"]
        if node:
            argv += ["-w", node]
        return ShellCommand([*argv, shell], None, f"a shell on {node or 'the first node'} (srun, job {job_id})")
    raise NoShell(f"shell: no shell for a '{provider}' pilot here (local and slurm only)")
