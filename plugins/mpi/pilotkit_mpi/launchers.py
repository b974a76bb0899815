"""The ``srun`` and ``mpirun`` launcher plugins: thin classes over :mod:`.builders`.

Both are built launchers (:class:`BuiltLauncher`): the mpi app finds them in the
launcher registry like any other launcher, and because they are built from the app's
own keys, each trial's wrapper (:mod:`pilotkit_mpi.launch`) builds their command line on
the node with the same builders, without importing pilotkit.

``wrap(argv, nodes, per_node, env)`` is pure: it returns the launcher's command line and
writes nothing. An ``mpirun`` launcher given a ``hostfile`` path names it; the caller
writes :func:`pilotkit_mpi.builders.hostfile_text` there. Without one the hosts go on
the command line (``--host a:R,b:R`` or Hydra's ``-hosts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal

import msgspec

from pilotkit.api import Launcher

from .builders import LaunchConfig, build

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class SrunOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Options of the ``srun`` launcher."""

    pmi: Literal["pmix", "pmi2", "none"] = "pmix"
    """``--mpi=``: pmix for OpenMPI (Debian's is built for PMIx only), pmi2 for MPICH."""
    cpus_per_rank: PositiveInt | None = None
    """``--cpus-per-task``."""
    gpus_per_rank: PositiveInt | None = None
    """``--gpus-per-task`` (GPUs managed by Slurm)."""
    label: bool = False
    """``--label``: prefix output lines with the rank."""
    extra_args: list[str] = []
    binary: str = "srun"


class MpirunOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Options of the ``mpirun`` launcher."""

    flavour: Literal["openmpi", "mpich"] = "openmpi"
    interface: str | None = None
    """OpenMPI: interface name or subnet for ``btl_tcp_if_include``/``oob_tcp_if_include``;
    MPICH: interface name for ``-iface``."""
    btl: list[str] = []
    """OpenMPI's byte transfer layers, e.g. ``["tcp", "self"]``."""
    hostfile: str | None = None
    """Name this hostfile (``host slots=R`` / ``host:R`` lines) instead of listing hosts."""
    as_root: bool = False
    """Add ``--allow-run-as-root`` (OpenMPI)."""
    inside_slurm: bool = False
    """mpirun runs inside a Slurm step: give its srun ``--overlap``."""
    label: bool = False
    extra_args: list[str] = []
    binary: str | None = None
    """Default: ``mpirun`` (OpenMPI), ``mpiexec`` (MPICH)."""


class BuiltLauncher(Launcher):
    """A launcher the mpi app builds on the node from its own keys (``pmi``,
    ``interface``, ``launcher_args``...) with :func:`pilotkit_mpi.builders.build`, rather
    than by calling :meth:`wrap` on the pilot."""

    builder: ClassVar[str]
    """The :class:`~pilotkit_mpi.builders.LaunchConfig` ``launcher``: ``srun`` or ``mpirun``."""


class SrunLauncher(BuiltLauncher):
    """Starts ranks with a new ``srun`` step that overlaps the node agents' step."""

    id = "srun"
    builder = "srun"
    Options = SrunOptions
    description = "srun --overlap --mpi=pmix|pmi2 inside the pilot's Slurm allocation"

    def __init__(self, options: SrunOptions | None = None) -> None:
        self.options = options or SrunOptions()

    def config(self, nodes: Sequence[str], per_node: int, env: dict[str, str] | None) -> LaunchConfig:
        o = self.options
        return LaunchConfig(
            launcher="srun",
            nodes=list(nodes),
            ranks_per_node=per_node,
            env=dict(env or {}),
            pmi=o.pmi,
            cpus_per_rank=o.cpus_per_rank,
            gpus_per_rank=o.gpus_per_rank,
            label=o.label,
            extra_args=list(o.extra_args),
            binary=o.binary,
        )

    def wrap(
        self,
        argv: Sequence[str],
        nodes: Sequence[str],
        per_node: int = 1,
        env: dict[str, str] | None = None,
    ) -> list[str]:
        return build(self.config(nodes, per_node, env), argv)


class MpirunLauncher(BuiltLauncher):
    """Starts ranks with OpenMPI's ``mpirun`` or MPICH's Hydra ``mpiexec``."""

    id = "mpirun"
    builder = "mpirun"
    Options = MpirunOptions
    description = "mpirun (OpenMPI) or mpiexec (MPICH Hydra) with a hostfile"

    def __init__(self, options: MpirunOptions | None = None) -> None:
        self.options = options or MpirunOptions()

    def config(self, nodes: Sequence[str], per_node: int, env: dict[str, str] | None) -> LaunchConfig:
        o = self.options
        return LaunchConfig(
            launcher="mpirun",
            nodes=list(nodes),
            ranks_per_node=per_node,
            env=dict(env or {}),
            flavour=o.flavour,
            hostfile=o.hostfile,
            interface=o.interface,
            btl=list(o.btl),
            as_root=o.as_root,
            inside_slurm=o.inside_slurm,
            label=o.label,
            extra_args=list(o.extra_args),
            binary=o.binary,
        )

    def wrap(
        self,
        argv: Sequence[str],
        nodes: Sequence[str],
        per_node: int = 1,
        env: dict[str, str] | None = None,
    ) -> list[str]:
        return build(self.config(nodes, per_node, env), argv)
