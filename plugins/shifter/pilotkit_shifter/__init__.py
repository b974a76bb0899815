"""pilotkit-shifter: run a pilot's tasks in Shifter containers.

Select it with ``[container] runtime = "shifter"``; the keys it accepts are
:class:`~pilotkit_shifter.runtime.ShifterOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    from pilotkit.api import ContainerRuntime, Register

    from .runtime import ShifterOptions, ShifterRuntime

__all__ = ["ShifterOptions", "ShifterRuntime", "pilotkit_register_runtimes"]


@hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`ShifterRuntime`, imported when a spec first uses it."""
    register.lazy("shifter", "pilotkit_shifter.runtime:ShifterRuntime", binaries=("shifter",))


__getattr__ = lazy_exports(__name__, {"ShifterOptions": "runtime", "ShifterRuntime": "runtime"})
