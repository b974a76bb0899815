"""pilotkit-edge-sync: copy an image from this machine to a site's shared-filesystem cache.

``sync://`` references select it when the spec names no stager; the keys it accepts
are :class:`~pilotkit_edge_sync.options.EdgeSyncOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl

if TYPE_CHECKING:
    from pilotkit.api import Register, Stager

__all__ = ["pilotkit_register_stagers"]


@hookimpl
def pilotkit_register_stagers(register: Register[Stager]) -> None:
    """Register :class:`~pilotkit_edge_sync.stager.EdgeSyncStager`, imported on first use
    (it brings in asyncssh)."""
    register.lazy("edge-sync", "pilotkit_edge_sync.stager:EdgeSyncStager", schemes=("sync",))
