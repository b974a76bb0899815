"""Pure argv builders for MPI launchers: ``srun``, OpenMPI's ``mpirun`` and MPICH's Hydra.

Everything here is a function of its arguments: no environment is read, nothing is
written. :mod:`pilotkit_mpi.launch` reads the node list and the user id at run time and
passes them in; the launcher plugins (:mod:`pilotkit_mpi.launchers`) and the golden tests
call the same functions.

This module imports only the standard library: the per-trial wrapper loads it by file
path so that starting a trial does not import pilotkit.

Conventions
-----------
``srun``
    ``srun --overlap --mpi=<pmi> --nodes=K --ntasks=K*R --ntasks-per-node=R
    --nodelist=a,b --distribution=block --kill-on-bad-exit=1 [--cpus-per-task=C]
    [--gpus-per-task=G]``. ``--overlap`` because the pilot's node agents already hold
    the allocation's CPUs with a step of their own (without it the new step waits for
    ever). ``--ntasks`` and ``--distribution`` are explicit because the agents' step
    leaves ``SLURM_NTASKS`` (one per node) and ``SLURM_DISTRIBUTION=cyclic`` in the
    environment: srun would ignore ``--ntasks-per-node`` and deal ranks round-robin.
    ``--kill-on-bad-exit=1`` ends the step as soon as one rank fails.
OpenMPI ``mpirun``
    ``-np N --map-by ppr:R:node --hostfile FILE`` (lines ``host slots=R``; ranks in
    blocks of R per node), ``--allow-run-as-root`` only when running as root, ``-x
    KEY=VALUE`` per variable, ``--mca btl ...`` and ``--mca btl_tcp_if_include``/
    ``oob_tcp_if_include`` for the interface. Inside a Slurm allocation mpirun takes
    its slot counts from the agents' step (one per node) and starts its daemons with
    srun, which needs ``--overlap`` too: ``--oversubscribe --mca plm_slurm_args
    --overlap``.
MPICH Hydra ``mpiexec``
    ``-n N -ppn R -f FILE`` (lines ``host:R``), ``-genv KEY VALUE``, ``-iface NAME``.
    Inside Slurm, Hydra's srun gets ``--overlap`` from ``HYDRA_LAUNCHER_EXTRA_ARGS``,
    set with an ``env`` prefix.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LAUNCHERS = ("srun", "mpirun")
FLAVOURS = ("openmpi", "mpich")
PMIS = ("pmix", "pmi2", "none")


@dataclass
class LaunchConfig:
    """How to start ``ranks_per_node`` ranks on each of ``nodes``. JSON-serialisable."""

    launcher: str = "mpirun"
    """``srun`` or ``mpirun``."""
    nodes: list[str] = field(default_factory=list)
    ranks_per_node: int = 1
    env: dict[str, str] = field(default_factory=dict)
    """Variables every rank gets."""
    flavour: str = "openmpi"
    """For ``mpirun``: ``openmpi`` or ``mpich`` (Hydra)."""
    pmi: str = "pmix"
    """For ``srun``: ``--mpi=`` value."""
    cpus_per_rank: int | None = None
    """For ``srun``: ``--cpus-per-task``."""
    gpus_per_rank: int | None = None
    """For ``srun``: ``--gpus-per-task`` (GPUs managed by Slurm)."""
    hostfile: str | None = None
    """For ``mpirun``: the hostfile's path (see :func:`hostfile_text`); None lists the
    hosts on the command line instead."""
    interface: str | None = None
    """Network to use between ranks: an interface name (``eth0``) or, for OpenMPI, a
    subnet (``10.0.0.0/24``)."""
    btl: list[str] = field(default_factory=list)
    """For OpenMPI: the byte transfer layers (``["tcp", "self"]``); empty: its default."""
    as_root: bool = False
    """Running as root: OpenMPI needs ``--allow-run-as-root``."""
    inside_slurm: bool = False
    """Inside a Slurm allocation: mpirun's own srun needs ``--overlap``."""
    binary: str | None = None
    """The launcher executable; default ``srun``, ``mpirun`` (OpenMPI) or ``mpiexec``."""
    label: bool = False
    """Prefix each output line with its rank."""
    extra_args: list[str] = field(default_factory=list)
    """Passed to the launcher just before the command."""

    @property
    def world_size(self) -> int:
        return len(self.nodes) * self.ranks_per_node

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaunchConfig:
        """Build from :meth:`to_dict`'s output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown launch settings: {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


def check(config: LaunchConfig) -> None:
    """Raise ValueError when ``config`` cannot give a command line."""
    if config.launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)}, not '{config.launcher}'")
    if config.flavour not in FLAVOURS:
        raise ValueError(f"mpi flavour must be one of {', '.join(FLAVOURS)}, not '{config.flavour}'")
    if config.pmi not in PMIS:
        raise ValueError(f"pmi must be one of {', '.join(PMIS)}, not '{config.pmi}'")
    if not config.nodes:
        raise ValueError("no nodes to launch on")
    if config.ranks_per_node < 1:
        raise ValueError("ranks_per_node must be at least 1")
    if (
        config.launcher == "mpirun"
        and config.flavour == "mpich"
        and config.interface
        and "/" in config.interface
    ):
        raise ValueError("MPICH's -iface takes an interface name, not a subnet")


def build(config: LaunchConfig, argv: Sequence[str]) -> list[str]:
    """The launcher's argv that runs ``argv`` as every rank."""
    check(config)
    if config.launcher == "srun":
        return srun_argv(config, argv)
    if config.flavour == "mpich":
        return mpich_argv(config, argv)
    return openmpi_argv(config, argv)


def srun_argv(config: LaunchConfig, argv: Sequence[str]) -> list[str]:
    """``srun --overlap ...`` (see the module's docstring)."""
    k, r = len(config.nodes), config.ranks_per_node
    out = [
        config.binary or "srun",
        "--overlap",
        f"--mpi={config.pmi}",
        f"--nodes={k}",
        f"--ntasks={k * r}",
        f"--ntasks-per-node={r}",
        "--nodelist=" + ",".join(config.nodes),
        "--distribution=block",
        "--kill-on-bad-exit=1",
    ]
    if config.cpus_per_rank is not None:
        out.append(f"--cpus-per-task={config.cpus_per_rank}")
    if config.gpus_per_rank is not None:
        out.append(f"--gpus-per-task={config.gpus_per_rank}")
    if config.label:
        out.append("--label")
    prefix: list[str] = []
    if config.env:
        if any("," in value for value in config.env.values()):
            # --export splits on commas: hand such values over through env(1).
            prefix = ["env", *(f"{key}={value}" for key, value in config.env.items())]
        else:
            out.append("--export=" + ",".join(["ALL", *(f"{k}={v}" for k, v in config.env.items())]))
    return [*out, *config.extra_args, *prefix, *argv]


def openmpi_argv(config: LaunchConfig, argv: Sequence[str]) -> list[str]:
    """OpenMPI's ``mpirun`` (see the module's docstring)."""
    out = [config.binary or "mpirun"]
    if config.as_root:
        out.append("--allow-run-as-root")
    out += ["-np", str(config.world_size), "--map-by", f"ppr:{config.ranks_per_node}:node"]
    if config.hostfile is not None:
        out += ["--hostfile", config.hostfile]
    else:
        out += ["--host", ",".join(f"{node}:{config.ranks_per_node}" for node in config.nodes)]
    if config.btl:
        out += ["--mca", "btl", ",".join(config.btl)]
    if config.interface:
        out += ["--mca", "btl_tcp_if_include", config.interface]
        out += ["--mca", "oob_tcp_if_include", config.interface]
    if config.inside_slurm:
        out += ["--oversubscribe", "--mca", "plm_slurm_args", "--overlap"]
    if config.label:
        out.append("--tag-output")
    for key, value in config.env.items():
        out += ["-x", f"{key}={value}"]
    return [*out, *config.extra_args, *argv]


def mpich_argv(config: LaunchConfig, argv: Sequence[str]) -> list[str]:
    """MPICH's Hydra ``mpiexec`` (see the module's docstring)."""
    prefix = ["env", "HYDRA_LAUNCHER_EXTRA_ARGS=--overlap"] if config.inside_slurm else []
    out = [config.binary or "mpiexec", "-n", str(config.world_size), "-ppn", str(config.ranks_per_node)]
    if config.hostfile is not None:
        out += ["-f", config.hostfile]
    else:
        out += ["-hosts", ",".join(f"{node}:{config.ranks_per_node}" for node in config.nodes)]
    if config.interface:
        out += ["-iface", config.interface]
    if config.label:
        out.append("-prepend-rank")
    for key, value in config.env.items():
        out += ["-genv", key, value]
    return [*prefix, *out, *config.extra_args, *argv]


def hostfile_text(nodes: Sequence[str], ranks_per_node: int, flavour: str = "openmpi") -> str:
    """A hostfile: ``host slots=R`` lines (OpenMPI) or ``host:R`` lines (MPICH)."""
    if flavour == "mpich":
        return "".join(f"{node}:{ranks_per_node}\n" for node in nodes)
    return "".join(f"{node} slots={ranks_per_node}\n" for node in nodes)
