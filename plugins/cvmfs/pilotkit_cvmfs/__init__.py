"""pilotkit-cvmfs: run ``docker://`` images that CVMFS publishes unpacked.

``docker://`` references select it when the spec names no stager; the keys it accepts
are :class:`~pilotkit_cvmfs.stager.CvmfsOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl

from .refs import DockerRef, parse_docker_ref, unpacked_path
from .stager import CvmfsOptions, CvmfsStager

if TYPE_CHECKING:
    from pilotkit.api import Register, Stager

__all__ = [
    "CvmfsOptions",
    "CvmfsStager",
    "DockerRef",
    "parse_docker_ref",
    "pilotkit_register_stagers",
    "unpacked_path",
]


@hookimpl
def pilotkit_register_stagers(register: Register[Stager]) -> None:
    """Register :class:`CvmfsStager`."""
    register(CvmfsStager)
