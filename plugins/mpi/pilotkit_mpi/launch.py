"""The per-trial wrapper: build the launcher's command line on the trial's nodes, then
become it.

The mpi app gives each trial (a gang task) the argv::

    python -I -S .../pilotkit_mpi/launch.py --config JSON -- CMD...

The pool starts it on the first node of the trial's group with the group's node names
in ``PILOTKIT_NODES`` (a task that is not a gang task runs on its own node: the host
name). Run, it

1. reads the nodes, picks ``MASTER_PORT`` (a free port on this node, the one rank 0
   runs on, unless the config fixes one) and sets ``MASTER_ADDR`` to the first node;
2. writes the hostfile (``hostfile`` in the task's directory, its working directory)
   for mpirun;
3. builds the argv with :func:`pilotkit_mpi.builders.build`, the rank shim
   (:mod:`pilotkit_mpi.rankenv`) in front of the command, writes it to
   ``launch.json`` and to stderr, and ``exec``\\s it.

So the trial's process *is* the launcher: its exit status is the trial's, and the
pool's SIGTERM reaches srun or mpirun, which pass it on to the ranks.

The config is JSON: ``{"launch": <LaunchConfig without nodes>, "shim": [argv...],
"master_port": int | null}``. For a launcher plugin (anything but srun and mpirun) it
also holds ``"template"``, the argv its ``wrap()`` gave on the pilot with stand-in node
names (``@PILOTKIT_NODE_0@``...) and master port (``@PILOTKIT_MASTER_PORT@``), and
``"node_count"``; step 3 then fills the stand-ins in (:func:`fill`) instead of building. Like the shim, this runs as a file with ``-I -S`` and
imports only the standard library (the builders are loaded by path, without pilotkit).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import socket
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

USAGE = "usage: launch.py --config JSON -- CMD..."
HOSTFILE = "hostfile"
RECORD = "launch.json"
NODE_STAND_IN = "@PILOTKIT_NODE_{}@"
PORT_STAND_IN = "@PILOTKIT_MASTER_PORT@"


def _load_builders() -> ModuleType:
    """The sibling builders module, imported by path under a private name."""
    name = "_pilotkit_mpi_builders"
    found = sys.modules.get(name)
    if found is not None:
        return found
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builders.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from . import builders
else:
    builders = importlib.import_module(f"{__package__}.builders") if __package__ else _load_builders()


def free_port() -> int:
    """A TCP port nobody listens on here now (rank 0 will bind it shortly after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        port: int = sock.getsockname()[1]
        return port


def trial_nodes(environ: Mapping[str, str], fallback: str) -> list[str]:
    """The trial's nodes: ``PILOTKIT_NODES`` of a gang task, else this host."""
    listed = [n for n in environ.get("PILOTKIT_NODES", "").split(",") if n]
    return listed or [fallback]


def fill(template: list[str], nodes: list[str], port: str) -> list[str]:
    """A plugin launcher's argv with the real node names and master port for the stand-ins."""
    filled = []
    for arg in template:
        for index, node in enumerate(nodes):
            arg = arg.replace(NODE_STAND_IN.format(index), node)
        filled.append(arg.replace(PORT_STAND_IN, port))
    return filled


def plan(
    config: dict[str, Any],
    command: list[str],
    *,
    environ: Mapping[str, str],
    hostname: str,
    port: int,
    as_root: bool,
    cwd: str,
) -> tuple[list[str], dict[str, str], str | None]:
    """Pure: (argv, variables to set, hostfile text or None) for one trial."""
    nodes = trial_nodes(environ, hostname)
    ranks_per_node = int(config["launch"].get("ranks_per_node", 1))
    env = {
        "MASTER_ADDR": nodes[0],
        "MASTER_PORT": str(config.get("master_port") or port),
        "PILOTKIT_MPI_WORLD_SIZE": str(len(nodes) * ranks_per_node),
        "PILOTKIT_MPI_RANKS_PER_NODE": str(ranks_per_node),
        **config["launch"].get("env", {}),
    }
    if "template" in config:
        if len(nodes) != config.get("node_count", len(nodes)):
            raise ValueError(f"the trial was planned for {config['node_count']} node(s) and got {len(nodes)}")
        return fill(list(config["template"]), nodes, env["MASTER_PORT"]), env, None
    launch = builders.LaunchConfig.from_dict({**config["launch"], "nodes": []})
    launch.nodes = nodes
    launch.env = env
    launch.as_root = as_root
    launch.inside_slurm = "SLURM_JOB_ID" in environ
    hostfile = None
    if launch.launcher == "mpirun":
        launch.hostfile = os.path.join(cwd, HOSTFILE)
        hostfile = builders.hostfile_text(nodes, launch.ranks_per_node, launch.flavour)
    argv = builders.build(launch, [*config.get("shim", []), *command])
    return argv, env, hostfile


def parse_args(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    if len(argv) < 4 or argv[0] != "--config" or argv[2] != "--":
        raise SystemExit(USAGE)
    try:
        config = json.loads(argv[1])
    except ValueError as exc:
        raise SystemExit(f"pilotkit-mpi: bad --config: {exc}") from None
    if not isinstance(config, dict) or "launch" not in config:
        raise SystemExit("pilotkit-mpi: --config needs a 'launch' table")
    return config, argv[3:]


def main(argv: list[str]) -> None:
    config, command = parse_args(argv)
    cwd = os.getcwd()
    try:
        final, env, hostfile = plan(
            config,
            command,
            environ=os.environ,
            hostname=socket.gethostname(),
            port=free_port() if not config.get("master_port") else 0,
            as_root=os.geteuid() == 0,
            cwd=cwd,
        )
    except ValueError as exc:
        print(f"pilotkit-mpi: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if hostfile is not None:
        with open(os.path.join(cwd, HOSTFILE), "w") as f:
            f.write(hostfile)
    record = {"argv": final, "env": env, "nodes": trial_nodes(os.environ, socket.gethostname())}
    with open(os.path.join(cwd, RECORD), "w") as f:
        f.write(json.dumps(record, indent=1) + "\n")
    print("pilotkit-mpi: exec " + " ".join(final), file=sys.stderr, flush=True)
    os.environ.update(env)
    try:
        os.execvp(final[0], final)
    except OSError as exc:
        print(f"pilotkit-mpi: cannot run {final[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(127) from None


if __name__ == "__main__":
    main(sys.argv[1:])
