"""pilotkit-pull: stage an image with the container runtime's own ``pull``.

It handles no reference scheme by default: select it with ``[image] stager = "pull"``.
The keys it accepts are :class:`~pilotkit_pull.stager.PullOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl

from .commands import PullPlan, plan_pull
from .stager import PullOptions, PullStager

if TYPE_CHECKING:
    from pilotkit.api import Register, Stager

__all__ = ["PullOptions", "PullPlan", "PullStager", "pilotkit_register_stagers", "plan_pull"]


@hookimpl
def pilotkit_register_stagers(register: Register[Stager]) -> None:
    """Register :class:`PullStager`."""
    register(PullStager)
