"""The connection file an app publishes in its pilot's working directory, and how a
``connect`` command finds it.

An app that serves something to clients outside the allocation (a Dask scheduler, a Ray
cluster, a Jupyter server) writes what a client needs into a JSON file of the pilot's
working directory (``dask.json``, ``ray.json``...): a msgspec struct with a ``state``
field (``running`` while it serves). Its ``connect`` command reads that file here, or in
the working directory of a pilot the daemon runs (by id), or over SSH on the login host.
:class:`ConnectionFile` is all of that for one file; :func:`pilot_workdir` asks the
daemon where a pilot works; :func:`tunnel_options` gives such a command its ``--host``,
``--ssh-config`` and ``--local-port``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import msgspec

from .errors import PilotkitError
from .ssh import read_remote_file

if TYPE_CHECKING:
    from asyncssh import SSHClientConnection


class _Published(Protocol):
    state: str


InfoT = TypeVar("InfoT", bound=_Published)
F = TypeVar("F", bound=Callable[..., Any])


def tunnel_options(host_help: str) -> Callable[[F], F]:
    """The options of a command that reaches a pilot on a login host, as a decorator of a
    click command: ``--host [USER@]HOST`` (``host_help`` says what it does there),
    ``--ssh-config FILE`` and ``--local-port`` (0: any free one). The command gets
    ``host``, ``ssh_config`` and ``local_port``."""
    import click

    def decorate(command: F) -> F:
        command = click.option(
            "--local-port", type=int, default=0, show_default=True, help="Local port of the tunnel (0: any free one)."
        )(command)
        command = click.option(
            "--ssh-config", type=click.Path(dir_okay=False), metavar="FILE", help="SSH config file for --host."
        )(command)
        return click.option("--host", metavar="[USER@]HOST", help=host_help)(command)

    return decorate


async def pilot_workdir(pilot: str, host: str | None = None, ssh_config: str | None = None) -> str:
    """The working directory of pilot ``pilot`` (an id, or a unique prefix of one), asked of
    the pilotkit daemon here or on ``host``; a one-line :class:`PilotkitError` when that fails."""
    from .client import connect

    try:
        async with connect(host=host, ssh_config=ssh_config) as client:
            detail = await client.pilot(pilot)
    except PilotkitError as exc:
        raise PilotkitError(
            f"'{pilot}' is not a pilot working directory, and asking the daemon failed: {exc}"
        ) from None
    return str(detail.summary.workdir)


class ConnectionFile(Generic[InfoT]):
    """``name`` (``dask.json``) in a pilot's working directory, holding an ``info_type``.

    ``app`` and ``service`` name it in errors: ``not a Dask pilot, or its cluster is not up
    yet``, ``the Dask cluster of PILOT is stopped``. A ``private`` file (it holds a token)
    is written mode 0600."""

    def __init__(
        self, name: str, info_type: type[InfoT], app: str, service: str = "cluster", *, private: bool = False
    ) -> None:
        self.name = name
        self.info_type = info_type
        self.app = app
        self.service = service
        self.private = private

    def _missing(self) -> str:
        return f"not a {self.app} pilot, or its {self.service} is not up yet"

    def write(self, workdir: Path, info: InfoT) -> Path:
        """Replace ``<workdir>/NAME`` atomically (a reader never sees half a file)."""
        path = workdir / self.name
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if self.private else 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
        os.replace(tmp, path)
        return path

    def parse(self, data: bytes, where: str) -> InfoT:
        """Decode the file's bytes (read from ``where``); a clear error when it is not one."""
        try:
            return msgspec.json.decode(data, type=self.info_type)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise PilotkitError(f"{where}: not a {self.app} connection file: {exc}") from None

    def read(self, workdir: Path) -> InfoT:
        """Read ``<workdir>/NAME`` (``workdir`` may also name the file itself)."""
        path = workdir if workdir.name == self.name else workdir / self.name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PilotkitError(f"no {self.name} in {path.parent}: {self._missing()}") from None
        except OSError as exc:
            raise PilotkitError(f"cannot read {path}: {exc.strerror or exc}") from None
        return self.parse(data, str(path))

    async def read_remote(self, conn: SSHClientConnection, workdir: str, host: str) -> InfoT:
        """Read ``WORKDIR/NAME`` on the SSH host ``host`` (over SFTP)."""
        path = workdir if workdir.endswith(self.name) else f"{workdir.rstrip('/')}/{self.name}"
        try:
            data = await read_remote_file(conn, path, target=host)
        except PilotkitError as exc:
            if str(exc).endswith("no such file"):
                raise PilotkitError(f"{host}:{path}: no such file: {self._missing()}") from None
            raise
        return self.parse(data, f"{host}:{path}")

    def running(self, info: InfoT, pilot: str) -> InfoT:
        """``info``, when what it describes is running; else an error naming its state."""
        if info.state != "running":
            raise PilotkitError(f"the {self.app} {self.service} of {pilot} is {info.state}")
        return info

    async def find(self, pilot: str) -> InfoT:
        """The details of a running ``pilot``: a working directory (or the file) here, or
        the id of a pilot the daemon here runs."""
        path = Path(pilot).expanduser()
        if await asyncio.to_thread(path.exists):
            info = await asyncio.to_thread(self.read, path)
        else:
            workdir = await pilot_workdir(pilot)
            info = await asyncio.to_thread(self.read, Path(workdir))
        return self.running(info, pilot)

    async def find_remote(
        self, conn: SSHClientConnection, pilot: str, host: str, ssh_config: str | None = None
    ) -> InfoT:
        """The details of a running ``pilot`` on the SSH host ``host``: a path there (it has
        a ``/`` or starts with ``~``), or the id of a pilot the daemon there runs."""
        if "/" in pilot or pilot.startswith("~"):
            workdir = pilot
        else:
            workdir = await pilot_workdir(pilot, host=host, ssh_config=ssh_config)
        return self.running(await self.read_remote(conn, workdir, host), pilot)
