"""pilotkit-cvmfs: run ``docker://`` images that CVMFS publishes unpacked.

``docker://`` references select it when the spec names no stager; the keys it accepts
are :class:`~pilotkit_cvmfs.stager.CvmfsOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    from pilotkit.api import Register, Stager

    from .refs import DockerRef, parse_docker_ref, unpacked_path
    from .stager import CvmfsOptions, CvmfsStager

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
    """Register :class:`CvmfsStager`, imported when a spec first uses it."""
    register.lazy("cvmfs", "pilotkit_cvmfs.stager:CvmfsStager", schemes=("docker",))


__getattr__ = lazy_exports(__name__, {"DockerRef": "refs", "parse_docker_ref": "refs", "unpacked_path": "refs", "CvmfsOptions": "stager", "CvmfsStager": "stager"})
