"""pilotkit-shifter: run a pilot's tasks in Shifter containers.

Select it with ``[container] runtime = "shifter"``; the keys it accepts are
:class:`~pilotkit_shifter.runtime.ShifterOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl

from .runtime import ShifterOptions, ShifterRuntime

if TYPE_CHECKING:
    from pilotkit.api import ContainerRuntime, Register

__all__ = ["ShifterOptions", "ShifterRuntime", "pilotkit_register_runtimes"]


@hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`ShifterRuntime`."""
    register(ShifterRuntime)
