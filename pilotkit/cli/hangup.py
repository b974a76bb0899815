"""What ``pilotkit run`` does when its terminal goes away (SIGHUP: an SSH session to the
login node dropped): it stops writing to the terminal, whose writes would now fail, and
cancels the pilot cleanly, so every result is written and the batch job is released."""

from __future__ import annotations

import os
import signal
import stat


def hangup_ignored() -> bool:
    """Whether SIGHUP was ignored when this process started (``nohup pilotkit run``)."""
    return signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def release_terminal() -> None:
    """Point stdout and stderr to /dev/null where they went to a terminal, a pipe or a
    socket (gone with the session); a file they were redirected to is kept."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                continue
            if os.isatty(fd) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                os.dup2(null, fd)
    finally:
        os.close(null)
