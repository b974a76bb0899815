"""pilotkit-oci: run a pilot's tasks with runc on an unpacked image directory.

Select it with ``[container] runtime = "oci"``; the keys it accepts are
:class:`~pilotkit_oci.options.OciOptions`. How a task becomes a container is described
in :mod:`pilotkit_oci.runtime` and :mod:`pilotkit_oci.run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    from pilotkit.api import ContainerRuntime, Register

    from .options import OciOptions
    from .runtime import OciRuntime

__all__ = ["OciOptions", "OciRuntime", "pilotkit_register_runtimes"]


@hookimpl
def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
    """Register :class:`OciRuntime`, imported when a spec first uses it."""
    register.lazy("oci", "pilotkit_oci.runtime:OciRuntime", binaries=("runc",))


__getattr__ = lazy_exports(__name__, {"OciOptions": "options", "OciRuntime": "runtime"})
