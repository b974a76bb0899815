"""The per-rank shim: set the distributed-training variables, then become the command.

Each rank runs::

    python -I -S .../pilotkit_mpi/rankenv.py [--ranks-per-gpu N] -- CMD...

It reads the rank from whatever launched it (OpenMPI, MPICH/Hydra, PMIx, Slurm), sets

- ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``NODE_RANK``
  (``GROUP_RANK`` too), as ``torch.distributed``'s ``env://`` initialisation and most
  launch scripts expect; ``MASTER_ADDR``/``MASTER_PORT`` come from the trial's wrapper
  (:mod:`pilotkit_mpi.launch`) unchanged;
- with ``--ranks-per-gpu N``: ``CUDA_VISIBLE_DEVICES`` to the one GPU this rank uses
  (``LOCAL_RANK // N``), picked from the GPUs visible to it, unless the launcher
  already gave it exactly one;

and ``exec``\\s the command, so the rank *is* the command (same pid, signals and exit
status). It runs once per rank, so it is started as a file with ``-I -S`` and imports
nothing but ``os`` and ``sys``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

USAGE = "usage: rankenv.py [--ranks-per-gpu N] -- CMD..."

RANK = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")
SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PILOTKIT_MPI_WORLD_SIZE", "SLURM_NTASKS")
LOCAL_RANK = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID")
LOCAL_SIZE = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PILOTKIT_MPI_RANKS_PER_NODE")
"""Where each value is read from, first found wins. MPI-specific names come before
Slurm's: a rank started by mpirun inside a Slurm step inherits that step's
``SLURM_PROCID``, which is not its rank."""


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return None


def rank_env(environ: Mapping[str, str], ranks_per_gpu: int | None = None) -> dict[str, str]:
    """The variables to set for the rank whose environment is ``environ``."""
    rank = _first(environ, RANK) or 0
    size = _first(environ, SIZE) or 1
    local_size = _first(environ, LOCAL_SIZE) or 1
    local_rank = _first(environ, LOCAL_RANK)
    if local_rank is None:
        local_rank = rank % local_size
    node_rank = rank // local_size
    out = {
        "RANK": str(rank),
        "WORLD_SIZE": str(size),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(local_size),
        "NODE_RANK": str(node_rank),
        "GROUP_RANK": str(node_rank),
    }
    if ranks_per_gpu:
        gpu = pick_gpu(environ.get("CUDA_VISIBLE_DEVICES"), local_rank // ranks_per_gpu)
        if gpu is not None:
            out["CUDA_VISIBLE_DEVICES"] = gpu
    return out


def pick_gpu(visible: str | None, index: int) -> str | None:
    """The device for GPU slot ``index``: from the visible list when it has more than
    one entry, the bare index when nothing is set, None (leave it) when the launcher
    already narrowed it to one device."""
    if visible is None or not visible.strip():
        return str(index)
    devices = [d for d in visible.split(",") if d]
    if len(devices) <= 1:
        return None
    return devices[index % len(devices)]


def parse_args(argv: list[str]) -> tuple[int | None, list[str]]:
    """(ranks per GPU or None, the command)."""
    if "--" not in argv:
        raise SystemExit(USAGE)
    cut = argv.index("--")
    head, command = argv[:cut], argv[cut + 1 :]
    ranks_per_gpu = None
    if head:
        if len(head) != 2 or head[0] != "--ranks-per-gpu" or not head[1].isdigit() or int(head[1]) < 1:
            raise SystemExit(USAGE)
        ranks_per_gpu = int(head[1])
    if not command:
        raise SystemExit(USAGE)
    return ranks_per_gpu, command


def main(argv: list[str]) -> None:
    ranks_per_gpu, command = parse_args(argv)
    os.environ.update(rank_env(os.environ, ranks_per_gpu))
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"pilotkit-mpi: cannot run {command[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(127) from None


if __name__ == "__main__":
    main(sys.argv[1:])
