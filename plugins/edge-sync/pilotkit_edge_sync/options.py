"""The ``[image]`` keys of ``stager = "edge-sync"``."""

from __future__ import annotations

from typing import Annotated

import msgspec

from pilotkit.api import Duration, Size


class EdgeSyncOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Where to copy the image and how to reach it."""

    host: str
    """SSH destination: ``user@host``, ``host`` or an alias from ``ssh_config``."""
    cache: str
    """Absolute directory on the site's shared file system that holds the cache."""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    ssh_config: str | None = None
    """OpenSSH client configuration to read (default ``~/.ssh/config``)."""
    known_hosts: str | None = None
    """Known-hosts file (default: ssh_config's ``UserKnownHostsFile`` or ``~/.ssh/known_hosts``)."""
    client_keys: list[str] | None = None
    """Private key files (default: ssh_config's ``IdentityFile``, the agent, ``~/.ssh/id_*``)."""
    max_parallel: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    """Transfers in flight at once: chunks of one file, or files of a directory image."""
    cache_limit: Size | None = None
    """Size the cache is kept under by evicting least-recently-used images not in use."""
    lease_ttl: Duration = "15m"
    """A pilot's in-use mark counts while it is younger than this; it is renewed every third of it."""
    retries: Annotated[int, msgspec.Meta(ge=0)] = 3
    """Reconnections after a dropped connection; each resumes where the last stopped."""
    connect_timeout: Duration = "30s"
    chunk_size: Size = "4M"
    """Bytes per chunk. ``max_parallel`` chunks are in flight; a resume loses at most
    about two windows of them."""
