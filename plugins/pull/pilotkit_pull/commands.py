"""The pull command of each runtime, as pure functions of the reference.

=========== ============================================= ===========================
runtime     command                                       what the runtime then runs
=========== ============================================= ===========================
apptainer   ``apptainer pull <cache>/.<name>.<token>.part  ``<cache>/<name>`` (sif)
            docker://...`` then an atomic rename
sarus       ``sarus pull <name>``                         the image by name
shifter     ``shifterimg pull docker:<name>``             the image by name
podman-hpc  ``podman-hpc pull <registry>/<name>``         the image by name
=========== ============================================= ===========================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pilotkit.api import PilotkitError

RUNTIMES = ("apptainer", "sarus", "shifter", "podman-hpc")
APPTAINER_SCHEMES = ("docker", "oras", "library", "shub")
DOCKER_HUB = "docker.io"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PullPlan:
    """What pulling one image takes and gives."""

    argv: list[str]
    image_ref: str
    """The reference the runtime is given afterwards."""
    format: str
    """``sif`` (a file at ``dest``) or ``name`` (held by the runtime)."""
    dest: Path | None = None
    """Where the image file ends up (apptainer)."""
    partial: Path | None = None
    """Where the pull writes before the rename into ``dest``."""


def split_scheme(ref: str) -> tuple[str, str]:
    """``("docker", "python:3.11")`` for ``docker://python:3.11``; a bare name is docker."""
    if "://" in ref:
        scheme, rest = ref.split("://", 1)
        return scheme, rest
    return "docker", ref


def docker_name(ref: str, runtime: str) -> str:
    """The image name of a ``docker://`` (or bare) reference; other schemes are refused."""
    scheme, name = split_scheme(ref)
    if scheme != "docker":
        raise PilotkitError(f"{runtime} pulls docker:// images, not '{ref}'")
    if not name:
        raise PilotkitError(f"image reference '{ref}' names no image")
    return name


def qualified_name(name: str) -> str:
    """``docker.io/library/python:3.11`` for ``python:3.11``: short names are ambiguous
    to podman, which would ask which registry to use."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return name
    if not rest:
        return f"{DOCKER_HUB}/library/{name}"
    return f"{DOCKER_HUB}/{name}"


def sif_name(ref: str) -> str:
    """A file name for the SIF of ``ref``: ``python_3.11.sif``, ``oras_ghcr.io_org_x_1.sif``."""
    scheme, rest = split_scheme(ref)
    stem = _UNSAFE.sub("_", rest.replace("/", "_").replace(":", "_").replace("@", "_")).strip("._")
    if not stem:
        raise PilotkitError(f"image reference '{ref}' names no image")
    return (stem if scheme == "docker" else f"{scheme}_{stem}") + ".sif"


def apptainer_source(ref: str) -> str:
    """The URI apptainer pulls: the reference itself, ``docker://`` added to a bare name."""
    scheme, rest = split_scheme(ref)
    if scheme not in APPTAINER_SCHEMES:
        raise PilotkitError(f"apptainer cannot pull '{ref}' (schemes: {', '.join(APPTAINER_SCHEMES)})")
    if not rest:
        raise PilotkitError(f"image reference '{ref}' names no image")
    return f"{scheme}://{rest}"


def apptainer_pull(binary: str, output: Path, source: str) -> list[str]:
    return [binary, "pull", "--force", str(output), source]


def sarus_pull(name: str) -> list[str]:
    return ["sarus", "pull", name]


def shifter_pull(name: str) -> list[str]:
    return ["shifterimg", "pull", f"docker:{name}"]


def podman_hpc_pull(name: str) -> list[str]:
    return ["podman-hpc", "pull", name]


def plan_pull(runtime: str, ref: str, cache: Path, *, binary: str = "apptainer", token: str = "0") -> PullPlan:
    """The pull of ``ref`` with ``runtime``; ``token`` keeps concurrent partial files apart."""
    if runtime == "apptainer":
        name = sif_name(ref)
        dest = cache / name
        partial = cache / f".{name}.{token}.part"
        return PullPlan(apptainer_pull(binary, partial, apptainer_source(ref)), ref, "sif", dest, partial)
    if runtime == "sarus":
        return PullPlan(sarus_pull(docker_name(ref, runtime)), ref, "name")
    if runtime == "shifter":
        name = docker_name(ref, runtime)
        return PullPlan(shifter_pull(name), f"docker:{name}", "name")
    if runtime == "podman-hpc":
        name = qualified_name(docker_name(ref, runtime))
        return PullPlan(podman_hpc_pull(name), name, "name")
    raise PilotkitError(f"unknown pull runtime '{runtime}' (one of: {', '.join(RUNTIMES)})")
