"""pilotkit-sarus: run a pilot's tasks in Sarus containers.

Select it with ``[container] runtime = "sarus"``; the keys it accepts are
:class:`~pilotkit_sarus.runtime.SarusOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pilotkit

from .runtime import SarusOptions, SarusRuntime

if TYPE_CHECKING:
    from pilotkit.interfaces import ContainerRuntime
    from pilotkit.plugins import Register

__all__ = ["SarusOptions", "SarusRuntime", "pilotkit_register_runtimes"]


@pilotkit.hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`SarusRuntime`."""
    register(SarusRuntime)
