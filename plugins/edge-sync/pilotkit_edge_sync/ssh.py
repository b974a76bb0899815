"""The SSH side: connecting with host-key checking on, SFTP, and remote commands.

Errors that a reconnection may cure (a dropped connection, a refused or timed-out
connect) are left as they are and classed by :func:`retryable`; errors it cannot cure
(an untrusted host key, a refused login, unusable settings) become one-line
:class:`~pilotkit.errors.PilotkitError`\\ s at once.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pilotkit.api import PilotkitError, import_asyncssh, parse_duration

from .options import EdgeSyncOptions

if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh = import_asyncssh()

PREFERRED_CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
"""AES-GCM first (hardware-accelerated almost everywhere), then asyncssh's defaults."""


class CorruptTransfer(Exception):
    """A copy failed its checksum; sending again may cure it."""


def retryable(exc: BaseException) -> bool:
    """Whether reconnecting and resuming may get past ``exc``."""
    if isinstance(exc, PilotkitError):
        return False
    if isinstance(exc, asyncssh.HostKeyNotVerifiable | asyncssh.PermissionDenied):
        return False
    return isinstance(
        exc,
        asyncssh.DisconnectError
        | asyncssh.ChannelOpenError
        | asyncssh.SFTPConnectionLost
        | asyncssh.SFTPNoConnection
        | ConnectionError
        | TimeoutError
        | OSError
        | CorruptTransfer,
    )


def describe(exc: BaseException) -> str:
    """A short reason for a retryable failure."""
    if isinstance(exc, CorruptTransfer):
        return str(exc)
    if isinstance(exc, asyncssh.DisconnectError | asyncssh.SFTPError | asyncssh.ChannelOpenError):
        return f"connection lost ({exc.reason or type(exc).__name__})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class Destination:
    """Where the options say to connect."""

    host: str
    username: str | None
    port: int | None

    @property
    def label(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}" + (f":{self.port}" if self.port else "")


def destination(options: EdgeSyncOptions) -> Destination:
    """``user@host`` split; a bare name may be an ssh_config alias."""
    user, sep, host = options.host.rpartition("@")
    if not host:
        raise PilotkitError(f"edge-sync: host '{options.host}' names no host")
    return Destination(host, user if sep else None, options.port)


def connect_kwargs(options: EdgeSyncOptions) -> dict[str, Any]:
    """Keyword arguments of :func:`asyncssh.connect`. Host keys are always checked."""
    dest = destination(options)
    kwargs: dict[str, Any] = {
        "host": dest.host,
        "encryption_algs": PREFERRED_CIPHERS,
        "connect_timeout": parse_duration(options.connect_timeout),
        "keepalive_interval": 15,
    }
    if dest.username:
        kwargs["username"] = dest.username
    if dest.port:
        kwargs["port"] = dest.port
    if options.ssh_config:
        kwargs["config"] = [os.path.expanduser(options.ssh_config)]
    if options.known_hosts:
        kwargs["known_hosts"] = os.path.expanduser(options.known_hosts)
    if options.client_keys is not None:
        kwargs["client_keys"] = [os.path.expanduser(k) for k in options.client_keys]
    return kwargs


class Remote:
    """One SSH connection with its SFTP session."""

    def __init__(self, conn: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient, label: str) -> None:
        self.conn = conn
        self.sftp = sftp
        self.label = label

    async def __aenter__(self) -> Remote:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self.sftp.exit()
        self.conn.close()
        try:
            await asyncio.wait_for(self.conn.wait_closed(), 5)
        except (TimeoutError, OSError, asyncssh.Error):
            pass

    async def run(self, command: str, stdin: bytes | None = None, what: str | None = None) -> bytes:
        """Run a one-line POSIX shell command; its stdout. A non-zero exit raises a one-line
        PilotkitError naming ``what`` (default: the command's first word).

        The command goes to ``/bin/sh -c`` whatever the login shell (csh included), so it
        must not contain newlines.
        """
        if "\n" in command:
            raise ValueError("remote commands are one line")
        wrapped = "exec /bin/sh -c " + shlex.quote(command)
        result = await self.conn.run(wrapped, input=stdin, encoding=None, check=False)
        if result.exit_status is None or result.exit_status < 0:
            raise ConnectionResetError(f"remote command ended without an exit status on {self.label}")
        if result.exit_status != 0:
            err = result.stderr if isinstance(result.stderr, bytes) else b""
            lines = err.decode(errors="replace").strip().splitlines()
            name = what or (command.split(None, 1) or ["?"])[0]
            raise PilotkitError(
                f"edge-sync: '{name}' on {self.label} exited with {result.exit_status}: "
                + (lines[-1] if lines else "no output")
            )
        out = result.stdout
        return out if isinstance(out, bytes) else b""


async def open_remote(options: EdgeSyncOptions) -> Remote:
    """Connect and start SFTP; fatal problems become one-line PilotkitErrors."""
    dest = destination(options)
    kwargs = connect_kwargs(options)
    known = options.known_hosts or "the known_hosts files"
    try:
        conn = await asyncssh.connect(**kwargs)
    except asyncssh.HostKeyNotVerifiable:
        raise PilotkitError(
            f"edge-sync: host key of {dest.label} is not trusted (not in {known}): refusing to connect; "
            "check its fingerprint and add it there"
        ) from None
    except asyncssh.PermissionDenied:
        raise PilotkitError(
            f"edge-sync: {dest.label} refused the login (permission denied): check the user and client_keys"
        ) from None
    except (asyncssh.ConfigParseError, asyncssh.KeyImportError, FileNotFoundError, ValueError) as exc:
        raise PilotkitError(f"edge-sync: cannot use the SSH settings for {dest.label}: {exc}") from None
    try:
        sftp = await conn.start_sftp_client()
    except BaseException:
        conn.close()
        raise
    return Remote(conn, sftp, dest.label)


def quote(path: str) -> str:
    """``path`` quoted for the remote shell."""
    return shlex.quote(path)
