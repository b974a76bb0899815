"""The ``validate`` call (a spec checked by the daemon with its plugins), and domain
errors reaching clients as typed protocol errors: one line from the CLI, exit 2, no
traceback anywhere but an ``internal`` error's ``debug`` field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotkit.client import connect
from pilotkit.daemon.faults import (
    AuthFailed,
    BadParams,
    NotFound,
    Refused,
    ShuttingDown,
    UnknownPilot,
    protocol_error,
)
from pilotkit.errors import PilotkitError, SpecError, SpecProblem
from pilotkit.protocol import ErrorCode, ErrorReply, Response

from .conftest import DaemonProcess, RawConnection, write_spec

GOOD = """name = "fine"
[[app.groups]]
name = "g"
commands = ["true", "false"]
[[app.groups]]
name = "h"
command = "echo {i}"
[app.groups.grid]
i = [1, 2, 3]
"""

BAD = """name = "bad"
[resources]
cors = 2
[[app.groups]]
name = "g"
retrys = 1
commands = ["true"]
"""

UNKNOWN_PROVIDER = """name = "x"
[provider]
type = "nosuch"
[[app.groups]]
name = "g"
commands = ["true"]
"""


# --------------------------------------------------------------------------- validate


async def test_validate_a_good_spec(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, GOOD)
    async with connect(socket=str(daemon.socket)) as client:
        assert client.server is not None and "validate" in client.server.methods
        result = await client.validate(spec.read_text(), path=str(spec))
    assert result.valid and result.problems == []
    assert (result.name, result.provider, result.app, result.tasks) == ("fine", "local", "tasks", 5)
    assert daemon.call("status")["pilots"] == [], "validating runs nothing"


async def test_validate_lists_every_problem_with_file_line_and_key(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, BAD, "bad.toml")
    async with connect(socket=str(daemon.socket)) as client:
        result = await client.validate(spec.read_text(), path=str(spec))
        assert not result.valid
        found = {(p.file, p.line, p.key, p.message, p.suggestion) for p in result.problems}
        assert found == {
            (str(spec), 3, "resources.cors", "unknown key", "cores"),
            (str(spec), 6, "app.groups[0].retrys", "unknown key", "retries"),
        }
        # The plugins' part (resolve) is checked by the daemon's plugins, with file:line too.
        result = await client.validate(UNKNOWN_PROVIDER, path="remote.toml")
        (problem,) = result.problems
        assert (problem.file, problem.line, problem.key) == ("remote.toml", 3, "provider.type")
        assert "unknown provider 'nosuch'" in problem.message
        # Not TOML at all; and no file name: "<spec>".
        result = await client.validate('name = "x"\n[pilot\n')
        (problem,) = result.problems
        assert (problem.file, problem.line) == ("<spec>", 2) and "not valid TOML" in problem.message


def test_validate_over_the_wire_needs_its_params(daemon: DaemonProcess) -> None:
    conn = RawConnection(daemon.socket)
    try:
        reply = conn.reply_to(conn.send("validate", {}))
        assert isinstance(reply, ErrorReply) and reply.error.code == "invalid-params"
        assert "spec" in reply.error.message and reply.error.debug is None
        reply = conn.reply_to(conn.send("validate", {"spec": GOOD, "path": "/nowhere/s.toml"}))
        assert isinstance(reply, Response)
    finally:
        conn.close()


# --------------------------------------------------------------------------- domain errors


def test_unknown_pilot_and_refused_actions_are_one_line_from_the_cli(daemon: DaemonProcess, tmp_path: Path) -> None:
    for command in ("status", "cancel", "drain", "retry", "tasks", "logs"):
        result = daemon.cli(command, "no-such-pilot", check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == "error: no pilot 'no-such-pilot'\n", (command, result.stderr)

    pilot = daemon.submit(write_spec(tmp_path, 'name = "quick"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'))
    daemon.wait_state(pilot, {"done"})
    for command, words in (("cancel", "it has finished (done)"), ("drain", "it has finished (done)"),
                           ("retry", "nothing to retry")):
        result = daemon.cli(command, pilot, check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and words in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


def test_domain_errors_get_their_codes_and_no_traceback(daemon: DaemonProcess, tmp_path: Path) -> None:
    pilot = daemon.submit(write_spec(tmp_path, 'name = "quick"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'))
    daemon.wait_state(pilot, {"done"})
    conn = RawConnection(daemon.socket)
    try:
        for method, params, code in (
            ("pilot", {"pilot": "nope"}, "not-found"),
            ("cancel", {"pilot": "nope"}, "not-found"),
            ("cancel", {"pilot": pilot}, "invalid-state"),
            ("retry", {"pilot": pilot}, "invalid-state"),
            ("logs", {"pilot": pilot, "task": "g-9"}, "not-found"),
            ("unsubscribe", {"sub": 12345}, "not-found"),
            ("submit", {"spec": BAD, "workdir": "relative"}, "invalid-spec"),
            ("submit", {"spec": GOOD, "workdir": "relative"}, "invalid-params"),
        ):
            reply = conn.reply_to(conn.send(method, params))
            assert isinstance(reply, ErrorReply), (method, params, reply)
            assert reply.error.code == code, (method, params, reply.error)
            assert reply.error.debug is None, "a traceback only for internal errors"
        reply = conn.reply_to(conn.send("submit", {"spec": BAD, "path": "/x/bad.toml"}))
        assert isinstance(reply, ErrorReply)
        assert "/x/bad.toml:3: resources.cors: unknown key" in reply.error.message
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UnknownPilot("p"), ErrorCode.NOT_FOUND),
        (NotFound("no stream 3"), ErrorCode.NOT_FOUND),
        (Refused("cannot cancel"), ErrorCode.INVALID_STATE),
        (ShuttingDown(), ErrorCode.SHUTTING_DOWN),
        (BadParams("workdir"), ErrorCode.INVALID_PARAMS),
        (PilotkitError("could not"), ErrorCode.FAILED),
    ],
)
def test_the_error_table(exc: Exception, code: ErrorCode) -> None:
    error = protocol_error(exc)
    assert error.code is code and error.debug is None and not error.close
    assert error.message == str(exc)


def test_the_error_table_special_cases() -> None:
    spec = protocol_error(SpecError([SpecProblem("resources.cors", "unknown key", file="s.toml", line=3)]))
    assert spec.code is ErrorCode.INVALID_SPEC and "s.toml:3: resources.cors: unknown key" in spec.message
    assert spec.data == {"problems": [{"file": "s.toml", "key": "resources.cors", "line": 3,
                                       "message": "unknown key", "suggestion": None}]}
    assert protocol_error(AuthFailed("wrong token")).close
    try:
        raise KeyError("bug")
    except KeyError as bug:
        internal = protocol_error(bug)
    assert internal.code is ErrorCode.INTERNAL and internal.internal
    assert internal.debug is not None and "Traceback" in internal.debug and "Traceback" not in internal.message
