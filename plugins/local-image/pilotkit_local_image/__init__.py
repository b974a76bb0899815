"""pilotkit-local-image: use an image that is already on this machine.

A plain path or a ``file://`` reference selects it when the spec names no stager; the
keys it accepts are :class:`~pilotkit_local_image.stager.LocalImageOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    from pilotkit.api import Register, Stager

    from .formats import ImageInfo, detect_format, inspect_image
    from .stager import LocalImageOptions, LocalImageStager, path_of_ref

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
    """Register :class:`LocalImageStager`, imported when a spec first uses it."""
    register.lazy("local", "pilotkit_local_image.stager:LocalImageStager", schemes=("file",))


__getattr__ = lazy_exports(__name__, {"ImageInfo": "formats", "detect_format": "formats", "inspect_image": "formats", "LocalImageOptions": "stager", "LocalImageStager": "stager", "path_of_ref": "stager"})
