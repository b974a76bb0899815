"""pilotkit-apptainer: run a pilot's tasks in Apptainer or SingularityCE images.

Select it with ``[container] runtime = "apptainer"``; the keys it accepts are
:class:`~pilotkit_apptainer.runtime.ApptainerOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    from pilotkit.api import ContainerRuntime, Register

    from .runtime import ApptainerOptions, ApptainerRuntime

__all__ = ["ApptainerOptions", "ApptainerRuntime", "pilotkit_register_runtimes"]


@hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`ApptainerRuntime`, imported when a spec first uses it."""
    register.lazy("apptainer", "pilotkit_apptainer.runtime:ApptainerRuntime", binaries=("apptainer", "singularity"))


__getattr__ = lazy_exports(__name__, {"ApptainerOptions": "runtime", "ApptainerRuntime": "runtime"})
