"""An MPI allreduce with mpi4py: every rank adds ``scale * (rank + 1)``; each prints its
rank, host name and the sum, and the sum is checked against the closed form.

Run by the mpi app (``mpi-allreduce.toml``), or by hand: ``mpirun -np 2 python3
mpi_allreduce.py``. Options for scans and failure drills:

- ``--scale X``: what each rank contributes is ``X * (rank + 1)``;
- ``--metric FILE``: rank 0 writes ``{"metric": sum, ...}`` there;
- ``--die-rank R --exit-code C``: rank R exits at once with status C (no MPI_Finalize),
  as a crashing rank would.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--metric", default=None)
    parser.add_argument("--die-rank", type=int, default=None)
    parser.add_argument("--exit-code", type=int, default=3)
    args = parser.parse_args()

    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if args.die_rank is not None and rank == args.die_rank:
        sys.stdout.flush()
        os._exit(args.exit_code)
    total = comm.allreduce(args.scale * (rank + 1), op=MPI.SUM)
    expected = args.scale * size * (size + 1) / 2
    env = {
        k: os.environ.get(k, "-") for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    }
    variables = " ".join(f"{k}={v}" for k, v in env.items())
    # One write per line: the launcher forwards each rank's output as it reads it.
    sys.stdout.write(f"rank {rank}/{size} on {socket.gethostname()}: sum {total:g} {variables}\n")
    sys.stdout.flush()
    if rank == 0 and args.metric:
        with open(args.metric, "w") as f:
            json.dump({"metric": total, "size": size, "scale": args.scale}, f)
    if abs(total - expected) > 1e-9 * max(1.0, abs(expected)):
        print(f"rank {rank}: wrong sum {total}, expected {expected}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
