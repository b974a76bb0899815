"""A real ``pilotkit daemon`` of a test's own, for tests that reach a pilot by its id
(``pilotkit submit``, then ``pilotkit dask connect PILOT_ID``...)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]
"""The ``pilotkit`` command line of the Python that runs the tests."""


def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` (every 100 ms, blocking) until it returns something true; an
    ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


class LocalDaemon:
    """A daemon whose state and runtime directories are under ``base`` (its socket
    ``base/run/pilotkit/daemon.sock``, its output ``base/daemon.out``)."""

    def __init__(self, base: Path, unset: Iterable[str] = ()) -> None:
        self.base = base
        self.env = dict(os.environ, XDG_STATE_HOME=str(base / "state"), XDG_RUNTIME_DIR=str(base / "run"))
        for key in ("PILOTKIT_HOST", *unset):
            self.env.pop(key, None)
        self.socket = base / "run" / "pilotkit" / "daemon.sock"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``pilotkit ARGS`` as a client of this daemon (60 s at most)."""
        return subprocess.run([*PILOTKIT, *args], env=self.env, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def local_daemon(base: Path, unset: Iterable[str] = ()) -> Iterator[LocalDaemon]:
    """Start a :class:`LocalDaemon` (without the environment variables ``unset``), wait
    for its socket, and stop it after (SIGTERM; SIGKILL after 30 s)."""
    daemon = LocalDaemon(base, unset)
    (base / "run").mkdir(mode=0o700)
    with open(base / "daemon.out", "wb") as out:
        proc = subprocess.Popen(
            [*PILOTKIT, "daemon", "--shutdown-timeout", "5"], env=daemon.env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        until(daemon.socket.exists, 30, "the daemon")
        yield daemon
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
