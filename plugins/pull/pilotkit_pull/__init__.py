"""pilotkit-pull: stage an image with the container runtime's own ``pull``.

It handles no reference scheme by default: select it with ``[image] stager = "pull"``.
The keys it accepts are :class:`~pilotkit_pull.stager.PullOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    from pilotkit.api import Register, Stager

    from .commands import PullPlan, plan_pull
    from .stager import PullOptions, PullStager

__all__ = ["PullOptions", "PullPlan", "PullStager", "pilotkit_register_stagers", "plan_pull"]


@hookimpl
def pilotkit_register_stagers(register: Register[Stager]) -> None:
    """Register :class:`PullStager`, imported when a spec first uses it."""
    register.lazy("pull", "pilotkit_pull.stager:PullStager")


__getattr__ = lazy_exports(__name__, {"PullPlan": "commands", "plan_pull": "commands", "PullOptions": "stager", "PullStager": "stager"})
