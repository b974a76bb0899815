"""What can go wrong in a call, and the one table that turns it into a protocol error.

The daemon's parts raise the errors below (or :class:`~pilotkit.errors.SpecError`, or
any :class:`~pilotkit.errors.PilotkitError`); none of them builds a protocol error.
:func:`protocol_error` maps an exception to its :class:`~pilotkit.protocol.ErrorCode`
through :data:`CODES`, in one place: the dispatcher calls it for every error reply it
sends. Anything not in the table is a bug: ``internal``, with the traceback in the
``debug`` field and nowhere else.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

from ..errors import PilotkitError, SpecError
from ..protocol import ErrorCode


class Fault(PilotkitError):
    """A call the daemon refuses; ``data`` goes to the client as the error's data."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data


# --------------------------------------------------------------------------- the request itself


class NotJson(Fault):
    """The frame is not JSON."""


class BadRequest(Fault):
    """JSON, but not a request; or a stream id already in use."""


class UnknownMethod(Fault):
    pass


class BadParams(Fault):
    """The params do not have the method's shape, or a value is not allowed."""


class UnsupportedVersion(Fault):
    pass


class Unauthenticated(Fault):
    """A request before a successful ``hello`` (TCP)."""


class AuthFailed(Fault):
    """A wrong token (TCP)."""


class TooManyStreams(Fault):
    pass


# --------------------------------------------------------------------------- pilots


class NotFound(Fault):
    """No such thing: a stream, a task's log, an attempt."""


class UnknownPilot(NotFound):
    def __init__(self, pilot: str, matches: int = 0) -> None:
        hint = f" ({matches} pilots start with that)" if matches else ""
        super().__init__(f"no pilot '{pilot}'{hint}")
        self.pilot = pilot


class UnknownCampaign(NotFound):
    def __init__(self, campaign: str, why: str | None = None) -> None:
        super().__init__(f"no campaign '{campaign}' in this daemon" + (f" ({why})" if why else ""))
        self.campaign = campaign


class Refused(Fault):
    """Not possible in the pilot's state: cancel a finished pilot, retry a running one."""


class ShuttingDown(Fault):
    def __init__(self) -> None:
        super().__init__("the daemon is shutting down")


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Mapping:
    code: ErrorCode
    close: bool = False
    """Close the connection after the reply (authentication failures)."""


CODES: dict[type[Exception], Mapping] = {
    NotJson: Mapping(ErrorCode.PARSE_ERROR),
    BadRequest: Mapping(ErrorCode.INVALID_REQUEST),
    UnknownMethod: Mapping(ErrorCode.UNKNOWN_METHOD),
    BadParams: Mapping(ErrorCode.INVALID_PARAMS),
    UnsupportedVersion: Mapping(ErrorCode.UNSUPPORTED_VERSION),
    Unauthenticated: Mapping(ErrorCode.UNAUTHENTICATED, close=True),
    AuthFailed: Mapping(ErrorCode.AUTH_FAILED, close=True),
    TooManyStreams: Mapping(ErrorCode.LIMIT),
    NotFound: Mapping(ErrorCode.NOT_FOUND),
    Refused: Mapping(ErrorCode.INVALID_STATE),
    ShuttingDown: Mapping(ErrorCode.SHUTTING_DOWN),
    SpecError: Mapping(ErrorCode.INVALID_SPEC),
    PilotkitError: Mapping(ErrorCode.FAILED),
}
"""Exception class (or a base of it) to protocol error code; the nearest base wins."""


@dataclass(frozen=True)
class ProtocolError:
    """What the client gets for an exception."""

    code: ErrorCode
    message: str
    data: Any = None
    debug: str | None = None
    close: bool = False

    @property
    def internal(self) -> bool:
        return self.code is ErrorCode.INTERNAL


def protocol_error(exc: BaseException) -> ProtocolError:
    """The error reply for ``exc`` (see :data:`CODES`)."""
    for cls in type(exc).__mro__:
        mapping = CODES.get(cls)
        if mapping is not None:
            break
    else:
        return ProtocolError(
            ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}",
            debug="".join(traceback.format_exception(exc)),
        )
    if isinstance(exc, SpecError):
        return ProtocolError(
            mapping.code, f"invalid spec: {len(exc.problems)} problem(s)\n{exc.message}",
            data={"problems": [p.to_dict() for p in exc.problems]},
        )
    data = exc.data if isinstance(exc, Fault) else None
    message = exc.message if isinstance(exc, PilotkitError) else str(exc)
    return ProtocolError(mapping.code, message, data, close=mapping.close)
