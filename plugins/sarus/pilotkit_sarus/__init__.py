"""pilotkit-sarus: run a pilot's tasks in Sarus containers.

Select it with ``[container] runtime = "sarus"``; the keys it accepts are
:class:`~pilotkit_sarus.runtime.SarusOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl

from .runtime import SarusOptions, SarusRuntime

if TYPE_CHECKING:
    from pilotkit.api import ContainerRuntime, Register

__all__ = ["SarusOptions", "SarusRuntime", "pilotkit_register_runtimes"]


@hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`SarusRuntime`."""
    register(SarusRuntime)
