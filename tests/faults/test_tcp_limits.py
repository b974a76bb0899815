"""The daemon's TCP listener before authentication: a small frame limit, a time limit
to authenticate, a cap on open connections."""

from __future__ import annotations

import socket
import time

from pilotkit.daemon.transport import Connection, Listeners
from pilotkit.protocol import HEADER, ErrorReply, Response

from ..daemon.conftest import DaemonProcess, RawConnection, daemon_factory, free_port  # noqa: F401


class Tcp(RawConnection):
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.next_id = 1


def test_tcp_limits_before_authentication(daemon_factory) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port = free_port()
    d: DaemonProcess = daemon_factory(extra_args=["--tcp", f"127.0.0.1:{port}"])
    d.start()
    token = (d.socket.parent / "token").read_text().strip()

    # A big frame before authentication: refused from its header, nothing more is read.
    big = Tcp(port)
    big.send_raw(HEADER.pack(Connection.PREAUTH_FRAME + 1))
    reply = big.recv()
    assert isinstance(reply, ErrorReply) and reply.error.code == "frame-too-large"
    assert "before authentication" in reply.error.message
    assert big.at_eof()
    big.close()

    # Silence before authentication: closed after AUTH_TIMEOUT.
    silent = Tcp(port)
    started = time.monotonic()
    reply = silent.recv()
    assert isinstance(reply, ErrorReply) and reply.error.code == "limit"
    assert silent.at_eof()
    assert Connection.AUTH_TIMEOUT - 1 <= time.monotonic() - started <= Connection.AUTH_TIMEOUT + 5
    silent.close()

    # At most MAX_TCP connections at once; the next one is told and closed.
    held = [Tcp(port) for _ in range(Listeners.MAX_TCP)]
    time.sleep(0.5)
    extra = Tcp(port)
    reply = extra.recv()
    assert isinstance(reply, ErrorReply) and reply.error.code == "limit"
    assert "too many connections" in reply.error.message
    extra.close()
    for conn in held:
        conn.close()
    time.sleep(0.5)
    ok = Tcp(port)  # room again once they are gone
    assert isinstance(ok.reply_to(ok.send("hello", {"protocol": 1, "token": token})), Response)
    assert isinstance(ok.reply_to(ok.send("status")), Response)
    ok.close()
