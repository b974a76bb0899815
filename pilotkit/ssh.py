"""asyncssh, imported once without the noise of its dependencies.

cryptography 51 and later deprecate DSA, and asyncssh still names DSA types at import:
each import prints about ten ``CryptographyDeprecationWarning`` lines that users would
see on every command that uses SSH. :func:`import_asyncssh` filters exactly that
warning, and only while asyncssh is imported. Import asyncssh only through it (plugins:
``pilotkit.api.import_asyncssh``); for annotations, ``import asyncssh`` under
``TYPE_CHECKING``.

:func:`ssh_connect` opens a connection the way every pilotkit command does;
:func:`ssh_session`, :func:`forward_port`, :func:`read_remote_file` and
:func:`until_interrupted` are what a ``connect --host`` command (a tunnel to a service in
the allocation) is made of.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncssh import SSHClientConnection


def import_asyncssh() -> ModuleType:
    """The ``asyncssh`` module (imported on the first call)."""
    module = sys.modules.get("asyncssh")
    if module is not None:
        return module
    with warnings.catch_warnings():
        try:
            from cryptography.utils import CryptographyDeprecationWarning
        except ImportError:  # pragma: no cover - cryptography is asyncssh's own dependency
            pass
        else:
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return importlib.import_module("asyncssh")


async def ssh_connect(target: str, *, ssh_config: str | None = None, **options: Any) -> SSHClientConnection:
    """An SSH connection to ``target`` (``[user@]host``, a name of ``~/.ssh/config``
    or ``ssh_config``), with keepalives and a 20 s connect timeout.

    Host keys are always checked against known_hosts. Every failure (untrusted host key,
    no accepted identity, no route) raises one line: a :class:`PilotkitError` naming
    the target. ``options`` go to :func:`asyncssh.connect` as they are."""
    from .errors import PilotkitError

    asyncssh = import_asyncssh()
    user, _, host = target.rpartition("@")
    settings: dict[str, Any] = {
        "config": [ssh_config] if ssh_config else (),
        "keepalive_interval": 15,
        "keepalive_count_max": 3,
        "connect_timeout": 20,
    }
    if user:
        settings["username"] = user
    settings.update(options)
    try:
        conn: SSHClientConnection = await asyncssh.connect(host, **settings)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise PilotkitError(
            f"ssh {target}: refusing to connect: the host key is not trusted ({exc.reason}); "
            "it is unknown or has changed: check known_hosts"
        ) from None
    except asyncssh.PermissionDenied:
        raise PilotkitError(f"ssh {target}: permission denied (no key or agent identity was accepted)") from None
    except asyncssh.Error as exc:
        raise PilotkitError(f"ssh {target}: {exc.reason}") from None
    except (OSError, TimeoutError) as exc:
        raise PilotkitError(f"ssh {target}: cannot connect: {exc}") from None
    return conn


@asynccontextmanager
async def ssh_session(target: str, *, ssh_config: str | None = None) -> AsyncIterator[SSHClientConnection]:
    """``async with ssh_session(target) as conn:`` a connection of :func:`ssh_connect` for
    the block: an SSH error in it becomes a one-line :class:`PilotkitError` naming
    ``target``, and the connection is closed after (waiting at most 2 s for it)."""
    import asyncio
    import contextlib

    from .errors import PilotkitError

    asyncssh = import_asyncssh()
    conn = await ssh_connect(target, ssh_config=ssh_config)
    try:
        yield conn
    except asyncssh.Error as exc:
        raise PilotkitError(f"ssh {target}: {exc.reason}") from None
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), 2.0)


async def forward_port(conn: SSHClientConnection, host: str, port: int, *, local_port: int = 0) -> int:
    """Forward ``127.0.0.1:local_port`` (0: any free port) through ``conn`` to
    ``host:port`` as the SSH server sees it; returns the local port. The forward lasts
    as long as the connection."""
    listener = await conn.forward_local_port("127.0.0.1", local_port, host, port)
    return int(listener.get_port())


async def read_remote_file(conn: SSHClientConnection, path: str, *, target: str) -> bytes:
    """The bytes of ``path`` on the SSH host (over SFTP). A missing or unreadable file
    raises a one-line :class:`PilotkitError` naming ``target:path``."""
    from .errors import PilotkitError

    asyncssh = import_asyncssh()
    try:
        async with conn.start_sftp_client() as sftp:
            async with sftp.open(path, "rb") as f:
                data: bytes | str = await f.read()
    except asyncssh.SFTPNoSuchFile:
        raise PilotkitError(f"{target}:{path}: no such file") from None
    except asyncssh.SFTPError as exc:
        raise PilotkitError(f"{target}:{path}: {exc.reason}") from None
    return data.encode() if isinstance(data, str) else bytes(data)


async def until_interrupted(conn: SSHClientConnection) -> None:
    """Wait until Ctrl-C or SIGTERM (returns), or until the connection drops (raises a
    one-line :class:`PilotkitError`): how a foreground tunnel command waits."""
    import asyncio
    import signal

    from .errors import PilotkitError

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    closed = asyncio.ensure_future(conn.wait_closed())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if closed.done() and not stopped.done():
            raise PilotkitError("the SSH connection closed")
    finally:
        closed.cancel()
        stopped.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
