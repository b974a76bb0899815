"""Who may talk to the daemon: socket permissions, peer uid, the TCP token, TLS."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pilotkit.protocol import HEADER, ErrorReply, Response, decode_server

from .conftest import DaemonProcess, RawConnection, free_port

NOBODY = 65534


def _as_nobody(path: Path) -> dict[str, object]:
    """Connect to ``path`` from a forked child running as uid/gid nobody; report what
    happened (the error, or the first frame the daemon sent and whether it then closed)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only the socket module, then _exit
        os.close(read_end)
        result: dict[str, object] = {}
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            try:
                s.connect(str(path))
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                result["frames"] = data.hex()
                result["closed"] = True
            except OSError as exc:
                result["error"] = exc.errno
        except BaseException as exc:
            result["error"] = repr(exc)
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")


def test_runtime_files_are_private(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(os.stat(daemon.socket.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(daemon.state_dir / "state.db").st_mode) == 0o600
    assert not (daemon.socket.parent / "token").exists(), "no TCP, no token"
    pid = (daemon.socket.parent / "daemon.pid").read_text().strip()
    assert int(pid) == daemon.pid


@needs_root
def test_another_uid_is_refused(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # The runtime dir's parents must be traversable by others for this test only.
    public = Path(tempfile.mkdtemp(prefix="pilotkit-test-", dir="/tmp"))
    os.chmod(public, 0o711)
    try:
        daemon = daemon_factory(runtime=public)
        daemon.start()
        _check_refused(daemon)
        daemon.stop()
    finally:
        shutil.rmtree(public, ignore_errors=True)


def _check_refused(daemon: DaemonProcess) -> None:
    blocked = _as_nobody(daemon.socket)
    assert blocked.get("error") == 13, "the 0700 runtime dir already keeps others out (EACCES)"

    # Open the permissions up: the daemon's own SO_PEERCRED check must refuse the peer.
    os.chmod(daemon.socket.parent, 0o755)
    os.chmod(daemon.socket, 0o666)
    try:
        seen = _as_nobody(daemon.socket)
    finally:
        os.chmod(daemon.socket.parent, 0o700)
        os.chmod(daemon.socket, 0o600)
    assert seen.get("closed") is True, seen
    data = bytes.fromhex(str(seen["frames"]))
    (size,) = HEADER.unpack(data[:4])
    message = decode_server(data[4:4 + size])
    assert isinstance(message, ErrorReply) and message.error.code == "permission-denied"
    assert f"you are uid {NOBODY}" in message.error.message
    assert len(data) == 4 + size, "nothing after the refusal"
    assert "refused unix peer" in daemon.output()
    assert daemon.cli("status").returncode == 0, "the daemon serves its own user still"


class _Tcp(RawConnection):
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.next_id = 1


def test_tcp_needs_the_token(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    d: DaemonProcess = daemon_factory(extra_args=["--tcp", f"127.0.0.1:{port}"])
    d.start()
    token_file = d.socket.parent / "token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(bytes.fromhex(token)) == 32

    conn = _Tcp(port)
    reply = conn.reply_to(conn.send("status"))
    assert isinstance(reply, ErrorReply) and reply.error.code == "unauthenticated"
    assert conn.at_eof()
    conn.close()

    conn = _Tcp(port)
    reply = conn.reply_to(conn.send("hello", {"protocol": 1, "token": "00" * 32}))
    assert isinstance(reply, ErrorReply) and reply.error.code == "auth-failed"
    assert conn.at_eof()
    conn.close()

    conn = _Tcp(port)
    assert isinstance(conn.reply_to(conn.send("hello", {"protocol": 1, "token": token})), Response)
    assert isinstance(conn.reply_to(conn.send("status")), Response)
    conn.close()

    wrong = d.cli("status", "--tcp", f"127.0.0.1:{port}", "--token", "ab" * 32, check=False)
    assert wrong.returncode == 2 and "wrong token" in wrong.stderr
    right = d.cli("status", "--json", "--tcp", f"127.0.0.1:{port}")  # the token from the runtime dir
    assert json.loads(right.stdout)["daemon"]["pid"] == d.pid


def test_tcp_on_a_public_address_requires_tls(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d: DaemonProcess = daemon_factory()
    proc = d.start("--tcp", f"0.0.0.0:{free_port()}", wait=False)
    assert proc.wait(30) == 2
    assert "TLS is required" in d.output()
    assert not d.socket.exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
def test_tcp_with_tls(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    port = free_port()
    d: DaemonProcess = daemon_factory(extra_args=["--tcp", f"127.0.0.1:{port}", "--tls-cert", str(cert),
                                                  "--tls-key", str(key)])
    d.start()
    ok = d.cli("status", "--json", "--tcp", f"127.0.0.1:{port}", "--tls-ca", str(cert))
    assert json.loads(ok.stdout)["daemon"]["pid"] == d.pid
    plain = d.cli("status", "--tcp", f"127.0.0.1:{port}", check=False, timeout=30)
    assert plain.returncode == 2


def test_cli_without_a_daemon_says_so(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path / "run"), XDG_STATE_HOME=str(tmp_path / "state"))
    result = subprocess.run([sys.executable, "-m", "pilotkit.cli.main", "status"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no pilotkit daemon is running" in result.stderr and len(result.stderr.splitlines()) == 1
