"""``docker://`` references and where unpacked.cern.ch publishes them (pure functions).

The layout of the repository is ``<registry>/<repository>:<tag>``, a symbolic link into
``.flat/`` where the unpacked root filesystem lives, e.g.
``/cvmfs/unpacked.cern.ch/registry.hub.docker.com/library/python:3.11``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pilotkit.api import PilotkitError

DOCKER_HUB = "registry.hub.docker.com"
"""The directory Docker Hub images are published under."""
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB})
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


@dataclass(frozen=True)
class DockerRef:
    """A parsed ``docker://[registry/]repository[:tag]``."""

    registry: str
    repository: str
    """``org/name`` (``library/name`` for official Docker Hub images)."""
    tag: str

    def __str__(self) -> str:
        return f"docker://{self.registry}/{self.repository}:{self.tag}"


def parse_docker_ref(ref: str) -> DockerRef:
    """Split a ``docker://`` reference; Docker's rules give the defaults.

    The first component is a registry when it holds a ``.`` or ``:`` or is
    ``localhost``; otherwise the image is on Docker Hub, where a bare name means
    ``library/name``. The tag defaults to ``latest``. Digests (``@sha256:...``) are
    refused: unpacked.cern.ch publishes tags.
    """
    if not ref.startswith("docker://"):
        raise PilotkitError(f"'{ref}' is not a docker:// reference")
    rest = ref.removeprefix("docker://")
    if "@" in rest:
        raise PilotkitError(f"'{ref}': digest references are not published on CVMFS; name a tag")
    parts = rest.split("/")
    registry = DOCKER_HUB
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts.pop(0)
    if registry in HUB_ALIASES:
        registry = DOCKER_HUB
    tag = DEFAULT_TAG
    if parts and ":" in parts[-1]:
        parts[-1], tag = parts[-1].split(":", 1)
    if not parts or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise PilotkitError(f"'{ref}' is not a valid image name (lower-case letters, digits and . _ - /)")
    if not _TAG.fullmatch(tag):
        raise PilotkitError(f"'{ref}': '{tag}' is not a valid tag")
    if registry == DOCKER_HUB and len(parts) == 1:
        parts.insert(0, "library")
    return DockerRef(registry, "/".join(parts), tag)


def unpacked_path(ref: DockerRef, repository_dir: Path) -> Path:
    """Where the repository at ``repository_dir`` publishes ``ref`` (a link into ``.flat``)."""
    return repository_dir / ref.registry / f"{ref.repository}:{ref.tag}"
