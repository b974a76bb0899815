"""The one seam for running external commands (sbatch, runc, apptainer...).

Always an argv, never a shell string. Errors carry argv, exit code, stdout and stderr.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import CommandError, MissingBinaryError, PilotkitError


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


async def run_command(
    argv: Sequence[str],
    *,
    timeout: float | None = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    input: bytes | None = None,
    check: bool = True,
    purpose: str | None = None,
) -> Completed:
    """Run ``argv`` to completion without blocking the event loop.

    :param env: added to (overriding) this process's environment.
    :param check: raise CommandError on a non-zero exit.
    :param purpose: what the command is for, named in the error when the binary is missing.
    """
    argv = [str(a) for a in argv]
    if shutil.which(argv[0]) is None:
        raise MissingBinaryError(argv[0], purpose or "this command")
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
        cwd=cwd,
        start_new_session=True,  # so a timeout stops the command's children too
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise PilotkitError(f"'{' '.join(argv[:3])}' did not finish within {timeout:g}s") from None
    except asyncio.CancelledError:
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
        raise
    result = Completed(argv, proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
    if check and result.returncode != 0:
        raise CommandError(argv, result.returncode, result.stdout, result.stderr)
    return result


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
