"""pilotkit-shifter: run a pilot's tasks in Shifter containers.

Select it with ``[container] runtime = "shifter"``; the keys it accepts are
:class:`~pilotkit_shifter.runtime.ShifterOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pilotkit

from .runtime import ShifterOptions, ShifterRuntime

if TYPE_CHECKING:
    from pilotkit.interfaces import ContainerRuntime
    from pilotkit.plugins import Register

__all__ = ["ShifterOptions", "ShifterRuntime", "pilotkit_register_runtimes"]


@pilotkit.hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`ShifterRuntime`."""
    register(ShifterRuntime)
