"""pilotkit-local-image: use an image that is already on this machine.

A plain path or a ``file://`` reference selects it when the spec names no stager; the
keys it accepts are :class:`~pilotkit_local_image.stager.LocalImageOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl

from .formats import ImageInfo, detect_format, inspect_image
from .stager import LocalImageOptions, LocalImageStager, path_of_ref

if TYPE_CHECKING:
    from pilotkit.api import Register, Stager

__all__ = [
    "ImageInfo",
    "LocalImageOptions",
    "LocalImageStager",
    "detect_format",
    "inspect_image",
    "path_of_ref",
    "pilotkit_register_stagers",
]


@hookimpl
def pilotkit_register_stagers(register: Register[Stager]) -> None:
    """Register :class:`LocalImageStager`."""
    register(LocalImageStager)
