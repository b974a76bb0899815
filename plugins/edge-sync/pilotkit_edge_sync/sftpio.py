"""Pipelined SFTP writes whose every request is awaited.

asyncssh can split a large write into parallel requests itself, but when the
connection drops it leaves some of those requests' tasks with exceptions nobody
retrieves; they are reported later, from the garbage collector, at arbitrary points.
Here a buffer is cut into pieces of the server's maximum write length, each piece is
one request (files are opened with ``block_size=0``), and all of them are gathered.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pilotkit.api import import_asyncssh

if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh = import_asyncssh()

DIRECT = 0
"""``block_size`` for :meth:`asyncssh.SFTPClient.open`: one request per ``write`` call."""


def piece_size(sftp: asyncssh.SFTPClient) -> int:
    """The largest write the server accepts in one request."""
    return sftp.limits.max_write_len or 16 * 1024


async def write_all(handle: asyncssh.SFTPClientFile, data: bytes, offset: int, piece: int) -> None:
    """Write ``data`` at ``offset`` as concurrent requests of at most ``piece`` bytes."""
    results = await asyncio.gather(
        *(handle.write(data[i : i + piece], offset + i) for i in range(0, len(data), piece)),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
