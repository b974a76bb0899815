"""pilotkit-apptainer: run a pilot's tasks in Apptainer or SingularityCE images.

Select it with ``[container] runtime = "apptainer"``; the keys it accepts are
:class:`~pilotkit_apptainer.runtime.ApptainerOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl

from .runtime import ApptainerOptions, ApptainerRuntime

if TYPE_CHECKING:
    from pilotkit.api import ContainerRuntime, Register

__all__ = ["ApptainerOptions", "ApptainerRuntime", "pilotkit_register_runtimes"]


@hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`ApptainerRuntime`."""
    register(ApptainerRuntime)
