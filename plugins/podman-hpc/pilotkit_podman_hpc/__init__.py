"""pilotkit-podman-hpc: run a pilot's tasks with podman-hpc.

Select it with ``[container] runtime = "podman-hpc"``; the keys it accepts are
:class:`~pilotkit_podman_hpc.runtime.PodmanHpcOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    from pilotkit.api import ContainerRuntime, Register

    from .runtime import PodmanHpcOptions, PodmanHpcRuntime

__all__ = ["PodmanHpcOptions", "PodmanHpcRuntime", "pilotkit_register_runtimes"]


@hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`PodmanHpcRuntime`, imported when a spec first uses it."""
    register.lazy("podman-hpc", "pilotkit_podman_hpc.runtime:PodmanHpcRuntime", binaries=("podman-hpc",))


__getattr__ = lazy_exports(__name__, {"PodmanHpcOptions": "runtime", "PodmanHpcRuntime": "runtime"})
