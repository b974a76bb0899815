"""The hybrid container model: the host's MPI launcher starts every rank in the image.

The launcher (srun, mpirun) runs on the host; each rank it starts is the container
runtime's command for the rank's program, built with ``ContainerContext(mpi=True)`` so
the runtime adds what MPI needs inside the image (Sarus ``--mpi``, Shifter's ``mpich``
module, podman-hpc ``--mpi``, Apptainer's MPI binds)::

    srun --overlap ... [rank shim] apptainer exec ... image.sif python train.py

Pure functions: they only combine what the launcher and the runtime return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pilotkit.api import ContainerContext, ContainerRuntime, Launcher


def rank_command(
    argv: Sequence[str],
    runtime: ContainerRuntime | None = None,
    ctx: ContainerContext | None = None,
) -> list[str]:
    """What each rank runs: ``argv`` itself, or ``argv`` in the image (``mpi=True``)."""
    if runtime is None:
        return list(argv)
    if ctx is None:
        raise ValueError("a container runtime needs a ContainerContext")
    return runtime.wrap(list(argv), dataclasses.replace(ctx, mpi=True))


def hybrid_argv(
    launcher: Launcher,
    argv: Sequence[str],
    nodes: Sequence[str],
    per_node: int = 1,
    env: dict[str, str] | None = None,
    *,
    runtime: ContainerRuntime | None = None,
    ctx: ContainerContext | None = None,
    shim: Sequence[str] = (),
) -> list[str]:
    """``launcher`` + ``shim`` + ``runtime.wrap(argv, ctx with mpi=True)``.

    ``shim`` (the rank shim's argv up to ``--``) runs on the host, in front of the
    runtime, so that the variables it sets pass into the container with the rest of the
    rank's environment.
    """
    return launcher.wrap([*shim, *rank_command(argv, runtime, ctx)], nodes, per_node, env)
