"""pilotkit-apptainer: run a pilot's tasks in Apptainer or SingularityCE images.

Select it with ``[container] runtime = "apptainer"``; the keys it accepts are
:class:`~pilotkit_apptainer.runtime.ApptainerOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pilotkit

from .runtime import ApptainerOptions, ApptainerRuntime

if TYPE_CHECKING:
    from pilotkit.interfaces import ContainerRuntime
    from pilotkit.plugins import Register

__all__ = ["ApptainerOptions", "ApptainerRuntime", "pilotkit_register_runtimes"]


@pilotkit.hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`ApptainerRuntime`."""
    register(ApptainerRuntime)
