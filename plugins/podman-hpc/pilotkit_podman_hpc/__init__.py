"""pilotkit-podman-hpc: run a pilot's tasks with podman-hpc.

Select it with ``[container] runtime = "podman-hpc"``; the keys it accepts are
:class:`~pilotkit_podman_hpc.runtime.PodmanHpcOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl

from .runtime import PodmanHpcOptions, PodmanHpcRuntime

if TYPE_CHECKING:
    from pilotkit.api import ContainerRuntime, Register

__all__ = ["PodmanHpcOptions", "PodmanHpcRuntime", "pilotkit_register_runtimes"]


@hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`PodmanHpcRuntime`."""
    register(PodmanHpcRuntime)
