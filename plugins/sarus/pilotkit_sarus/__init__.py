"""pilotkit-sarus: run a pilot's tasks in Sarus containers.

Select it with ``[container] runtime = "sarus"``; the keys it accepts are
:class:`~pilotkit_sarus.runtime.SarusOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    from pilotkit.api import ContainerRuntime, Register

    from .runtime import SarusOptions, SarusRuntime

__all__ = ["SarusOptions", "SarusRuntime", "pilotkit_register_runtimes"]


@hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`SarusRuntime`, imported when a spec first uses it."""
    register.lazy("sarus", "pilotkit_sarus.runtime:SarusRuntime", binaries=("sarus",))


__getattr__ = lazy_exports(__name__, {"SarusOptions": "runtime", "SarusRuntime": "runtime"})
