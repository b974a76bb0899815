"""Fixtures for daemon tests: a real ``pilotkit daemon`` process with its state and
runtime dirs in the test's tmp dir, real sockets, and the pilotkit CLI to talk to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pilotkit.protocol import HEADER, ErrorReply, Request, decode_server, encode_frame

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "share" / "examples"
TESTSSHD = ROOT / "share" / "testsshd" / "testsshd"
PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonProcess:
    """One daemon (started and stopped at will) with its own dirs under ``base``."""

    def __init__(self, base: Path, extra_args: list[str] | None = None, runtime: Path | None = None) -> None:
        self.base = base
        self.state_home = base / "state"
        self.runtime = runtime or base / "run"
        base.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.env = dict(os.environ)
        self.env.update(XDG_STATE_HOME=str(self.state_home), XDG_RUNTIME_DIR=str(self.runtime))
        self.env.pop("PILOTKIT_EVENTLOG", None)
        self.env.pop("PILOTKIT_HOST", None)
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "daemon.out"

    @property
    def socket(self) -> Path:
        return self.runtime / "pilotkit" / "daemon.sock"

    @property
    def state_dir(self) -> Path:
        return self.state_home / "pilotkit"

    def start(self, *args: str, wait: bool = True) -> subprocess.Popen[bytes]:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        argv = [*PILOTKIT, "daemon", "--shutdown-timeout", "3", *self.extra_args, *args]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        if wait:
            self.wait_ready()
        return self.proc

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{self.output()}")
            return self.accepts()

        wait_for(ready, timeout, "the daemon's socket")

    def accepts(self) -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(self.socket))
            except OSError:
                return False
        return True

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)  # the second signal forces
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cli(self, *args: str, check: bool = True, timeout: float = 60.0, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run ``pilotkit ARGS`` against this daemon."""
        result = subprocess.run([*PILOTKIT, *args], env=env or self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"pilotkit {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def call(self, method: str, params: Any = None) -> Any:
        """One request over a raw connection (quicker than the CLI, for polling)."""
        conn = RawConnection(self.socket)
        try:
            reply = conn.reply_to(conn.send(method, params))
        finally:
            conn.close()
        if isinstance(reply, ErrorReply):
            raise AssertionError(f"{method}: {reply.error.code}: {reply.error.message}")
        return msgspec.json.decode(reply.result)

    def status(self, pilot: str) -> dict[str, Any]:
        (summary,) = self.call("status", {"pilot": pilot})["pilots"]
        return dict(summary)

    def wait_state(self, pilot: str, states: set[str], timeout: float = 30.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            summary = self.status(pilot)
            return summary if summary["state"] in states else None

        return wait_for(reached, timeout, f"pilot {pilot} to reach {states}")  # type: ignore[no-any-return]

    def submit(self, spec: Path, *args: str) -> str:
        return self.cli("submit", str(spec), *args).stdout.strip()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    made: list[DaemonProcess] = []

    def make(name: str = "d", extra_args: list[str] | None = None, runtime: Path | None = None) -> DaemonProcess:
        d = DaemonProcess(tmp_path / name, extra_args, runtime)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture
def daemon(daemon_factory: Callable[..., DaemonProcess]) -> DaemonProcess:
    d = daemon_factory()
    d.start()
    return d


def write_spec(directory: Path, text: str, name: str = "spec.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- raw protocol


class RawConnection:
    """A blocking client that speaks the framing by hand (for fuzzing and security)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.next_id = 1_000_000

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, method: str, params: Any = None, rid: int | None = None) -> int:
        if rid is None:
            self.next_id += 1
            rid = self.next_id
        body = msgspec.Raw(msgspec.json.encode(params if params is not None else {}))
        self.sock.sendall(encode_frame(Request(method=method, id=rid, params=body)))
        return rid

    def recv_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def recv(self) -> Any:
        (size,) = HEADER.unpack(self.recv_exact(4))
        return decode_server(self.recv_exact(size))

    def reply_to(self, rid: int) -> Any:
        """Frames until the response (or error) for ``rid``; checks each one decodes."""
        while True:
            message = self.recv()
            if getattr(message, "id", None) == rid:
                return message

    def at_eof(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
