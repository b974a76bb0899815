"""Malformed input never takes the daemon down: typed errors, connections kept or closed
as documented, and the daemon keeps serving."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotkit.protocol import MAX_FRAME, ErrorReply, Response, frame

from .conftest import DaemonProcess, RawConnection


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the whole module: the fuzzing must not wear it down."""
    d = DaemonProcess(tmp_path_factory.mktemp("fuzz"))
    d.start()
    yield d
    assert d.proc is not None and d.proc.poll() is None, "the daemon is still up"
    d.stop()

FUZZ = settings(max_examples=350, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ERROR_CODES = {"parse-error", "invalid-request", "unknown-method", "invalid-params"}

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6)
json_values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=4), scalars, max_size=3)
# Methods with no side effects (never shutdown, submit, cancel...) and names that do not exist.
methods = st.sampled_from(["hello", "status", "list", "pilot", "tasks", "unsubscribe"]) | st.text(max_size=12)
wrong_requests = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["request", "response", 7]) | json_values,
        "method": methods | json_values,
        "id": st.integers(-5, 2**40) | st.text(max_size=3) | st.none() | st.booleans(),
        "params": json_values | st.fixed_dictionaries(
            {}, optional={"pilot": json_values, "offset": json_values, "limit": json_values, "protocol": json_values}
        ),
    },
)


def _hello_works(daemon: DaemonProcess) -> None:
    conn = RawConnection(daemon.socket)
    try:
        reply = conn.reply_to(conn.send("hello", {"protocol": 1}))
        assert isinstance(reply, Response)
    finally:
        conn.close()


def test_random_bytes_on_fresh_connections(daemon: DaemonProcess) -> None:
    count = 0

    @FUZZ
    @given(st.binary(max_size=96))
    def check(data: bytes) -> None:
        nonlocal count
        count += 1
        conn = RawConnection(daemon.socket)
        try:
            conn.send_raw(data)
            conn.sock.shutdown(2 - 1)  # SHUT_WR: the daemon sees EOF, mid-frame or not
            while True:  # whatever comes back is well-formed, then the daemon closes
                try:
                    message = conn.recv()
                except EOFError:
                    break
                assert isinstance(message, ErrorReply)
                assert message.error.code in ERROR_CODES | {"frame-too-large"}
        finally:
            conn.close()

    check()
    assert count >= 300
    _hello_works(daemon)


def test_random_frames_get_typed_errors_and_the_connection_stays(daemon: DaemonProcess) -> None:
    conn = RawConnection(daemon.socket)
    count = 0

    @FUZZ
    @given(st.binary(max_size=200))
    def check(body: bytes) -> None:
        nonlocal count
        count += 1
        conn.send_raw(frame(body))
        rid = conn.send("hello", {"protocol": 1})
        replies = []
        while True:
            message = conn.recv()
            if getattr(message, "id", None) == rid:
                break
            replies.append(message)
        assert all(isinstance(m, ErrorReply) and m.error.code in ERROR_CODES for m in replies)
        assert len(replies) == 1

    try:
        check()
    finally:
        conn.close()
    assert count >= 300
    _hello_works(daemon)


def test_wrong_types_get_typed_errors(daemon: DaemonProcess) -> None:
    conn = RawConnection(daemon.socket)
    count = 0

    @FUZZ
    @given(wrong_requests)
    def check(request: dict[str, object]) -> None:
        nonlocal count
        count += 1
        conn.send_raw(frame(msgspec.json.encode(request)))
        rid = conn.send("hello", {"protocol": 1}, rid=-77)
        while True:
            message = conn.recv()
            assert isinstance(message, (ErrorReply, Response)), message
            if isinstance(message, ErrorReply):
                assert message.error.code in ERROR_CODES | {"not-found"}, message.error
                assert message.error.debug is None, "no traceback for bad input"
            if getattr(message, "id", None) == rid and isinstance(message, Response):
                break

    try:
        check()
    finally:
        conn.close()
    assert count >= 300
    _hello_works(daemon)


def test_oversized_frame_closes_the_connection_not_the_daemon(daemon: DaemonProcess) -> None:
    conn = RawConnection(daemon.socket)
    try:
        conn.send_raw(struct.pack(">I", MAX_FRAME + 1) + b"{")
        message = conn.recv()
        assert isinstance(message, ErrorReply) and message.error.code == "frame-too-large"
        assert conn.at_eof()
    finally:
        conn.close()
    _hello_works(daemon)


def test_unknown_method_and_bad_params(daemon: DaemonProcess) -> None:
    conn = RawConnection(daemon.socket)
    try:
        reply = conn.reply_to(conn.send("nope"))
        assert isinstance(reply, ErrorReply) and reply.error.code == "unknown-method"
        assert "status" in reply.error.data["methods"]
        reply = conn.reply_to(conn.send("tasks", {"pilot": 5}))
        assert isinstance(reply, ErrorReply) and reply.error.code == "invalid-params"
        assert "pilot" in reply.error.message
        reply = conn.reply_to(conn.send("hello", {"protocol": 99}))
        assert isinstance(reply, ErrorReply) and reply.error.code == "unsupported-version"
        reply = conn.reply_to(conn.send("status"))
        assert isinstance(reply, Response)
    finally:
        conn.close()
