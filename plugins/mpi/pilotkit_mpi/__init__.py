"""pilotkit-mpi: MPI across a pilot's allocation.

- Launchers ``srun`` and ``mpirun`` (OpenMPI, or MPICH's Hydra): pure command-line
  builders (:mod:`pilotkit_mpi.builders`, :mod:`pilotkit_mpi.launchers`), and the hybrid
  container model (:mod:`pilotkit_mpi.hybrid`). The app finds its launcher in the
  launcher registry (``[app] launcher``), so a plugin can add another.
- The app ``[app] type = "mpi"`` (:mod:`pilotkit_mpi.app`): one MPI job over the nodes,
  or a grouped scan (grid, random samples or an optimiser) with each trial on its own
  group of nodes or GPUs.
- Per-rank ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_ADDR``... for
  ``torch.distributed`` and Horovod (:mod:`pilotkit_mpi.rankenv`).

Heavy modules are imported when a hook needs them, not when plugins load.
"""

from __future__ import annotations

from typing import Any

from pilotkit.api import Event, TaskFinished, hookimpl

from . import watch


@hookimpl
def pilotkit_register_launchers(register: Any) -> None:
    register.lazy("srun", "pilotkit_mpi.launchers:SrunLauncher")
    register.lazy("mpirun", "pilotkit_mpi.launchers:MpirunLauncher")


@hookimpl
def pilotkit_register_apps(register: Any) -> None:
    register.lazy("mpi", "pilotkit_mpi.app:MpiApp")


@hookimpl
def pilotkit_event(event: Event) -> None:
    """Wake the mpi app when one of its trials has finished (see :mod:`.watch`)."""
    if type(event) is TaskFinished:
        watch.finished(event)
