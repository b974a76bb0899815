"""How runs are laid out on the nodes, and the pool task of each trial. Pure functions.

A *trial* is one MPI job: the command over ``ranks_per_node`` ranks on each of ``k``
nodes (a gang task that holds the nodes whole), or over the ranks of ``g`` GPUs of one
node (an ordinary task with ``gpus = g``). Without a scan the app runs one trial over
every node. The trial's argv is the launch wrapper (:mod:`pilotkit_mpi.launch`), which
puts the nodes the pool gives it into the launcher's command line.

The launcher comes from the launcher registry. srun and mpirun
(:class:`~pilotkit_mpi.launchers.BuiltLauncher`) are built on the node from this app's
keys. Any other launcher's :meth:`~pilotkit.api.Launcher.wrap` is called here, on the
pilot, once per trial, with stand-in node names (``@PILOTKIT_NODE_0@``...) and a
stand-in ``MASTER_PORT``, which the wrapper replaces with the real ones on the node. So
a launcher plugin must use the node names it is given as they are (list them, join
them), not parse them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotkit.api import Launcher, NodeInfo, PilotkitError, Task, parse_duration, render_command, task_dir

from . import launch as launch_module
from . import rankenv as rankenv_module
from .builders import LaunchConfig
from .options import MpiOptions

LAUNCH_PY = str(Path(launch_module.__file__).resolve())
RANKENV_PY = str(Path(rankenv_module.__file__).resolve())


@dataclass(frozen=True)
class Layout:
    """The shape of one trial and how many fit on the allocation at once."""

    launcher: str
    """``srun`` or ``mpirun``."""
    nodes: int
    """Whole nodes per trial (0: a GPU trial on part of one node)."""
    gpus: int
    """GPUs per trial in GPU mode, else 0."""
    ranks_per_node: int
    cpus_per_rank: int | None
    ranks_per_gpu: int | None
    gpus_per_rank: int | None
    """srun ``--gpus-per-task`` (Slurm manages the GPUs, one rank per GPU)."""
    slots: int
    """Trials that can run side by side."""
    cores: int = 1
    """Cores a GPU-mode trial asks the pool for."""


def choose_launcher(requested: str, provider: str) -> str:
    """``auto`` is srun in a Slurm allocation, mpirun anywhere else."""
    if requested != "auto":
        return requested
    return "srun" if provider == "slurm" else "mpirun"


def layout(options: MpiOptions, nodes: Sequence[NodeInfo], provider: str, slurm_gpus: bool = False) -> Layout:
    """The trial layout on ``nodes``; raises PilotkitError when it cannot fit."""
    if not nodes:
        raise PilotkitError("the mpi app has no nodes to run on")
    launcher = choose_launcher(options.launcher, provider)
    min_cores = min(n.cores for n in nodes)
    if options.gpus is not None:
        per_gpu = options.ranks_per_gpu or 1
        ranks = options.gpus * per_gpu
        slots = sum(len(n.gpus) // options.gpus for n in nodes)
        if slots == 0:
            raise PilotkitError(f"a run takes {options.gpus} GPUs and no node has that many")
        cpr = options.cpus_per_rank or max(1, min_cores // ranks)
        return Layout(
            launcher, 0, options.gpus, ranks, cpr, per_gpu, None, slots, cores=min(min_cores, ranks * cpr)
        )
    k = options.nodes or len(nodes)
    if k > len(nodes):
        raise PilotkitError(f"a run takes {k} nodes, the allocation has {len(nodes)}")
    ranks_per_gpu = options.ranks_per_gpu
    if ranks_per_gpu is not None:
        gpus = min(len(n.gpus) for n in nodes)
        if gpus == 0:
            bare = next(n.name for n in nodes if not n.gpus)
            raise PilotkitError(f"ranks_per_gpu is set but node {bare} has no GPUs")
        rpn = ranks_per_gpu * gpus
    else:
        rpn = options.ranks_per_node or 1
    cpr = options.cpus_per_rank or max(1, min_cores // rpn)
    gpus_per_rank = 1 if (launcher == "srun" and ranks_per_gpu == 1 and slurm_gpus) else None
    return Layout(launcher, k, 0, rpn, cpr, ranks_per_gpu, gpus_per_rank, len(nodes) // k)


def stand_in_nodes(count: int) -> list[str]:
    """What a plugin launcher's :meth:`wrap` gets for node names; the wrapper puts the real
    names in (see :func:`pilotkit_mpi.launch.fill`)."""
    return [launch_module.NODE_STAND_IN.format(i) for i in range(count)]


def plugin_argv(launcher: Launcher, lay: Layout, argv: list[str], env: dict[str, str]) -> list[str]:
    """The command line of a plugin launcher for one trial, with stand-ins for the nodes
    and the master port."""
    count = lay.nodes or 1
    nodes = stand_in_nodes(count)
    run_env = {
        "MASTER_ADDR": nodes[0],
        "MASTER_PORT": launch_module.PORT_STAND_IN,
        "PILOTKIT_MPI_WORLD_SIZE": str(count * lay.ranks_per_node),
        "PILOTKIT_MPI_RANKS_PER_NODE": str(lay.ranks_per_node),
        **env,
    }
    wrapped = launcher.wrap(list(argv), nodes, lay.ranks_per_node, run_env)
    if not wrapped or not all(isinstance(arg, str) for arg in wrapped):
        raise PilotkitError(f"launcher '{launcher.id}': wrap() did not return an argv")
    return list(wrapped)


def wrapper_config(
    options: MpiOptions, lay: Layout, *, python: str, env: dict[str, str], built: bool = True
) -> dict[str, Any]:
    """The launch wrapper's ``--config`` (nodes are filled in at run time).

    :param built: the launcher is srun or mpirun, built on the node; otherwise
        :func:`make_trial` adds the plugin launcher's command line.
    """
    pmi = options.pmi or ("pmi2" if options.mpi == "mpich" else "pmix")
    launch = LaunchConfig(
        launcher=lay.launcher,
        ranks_per_node=lay.ranks_per_node,
        env=dict(env),
        flavour=options.mpi,
        pmi=pmi,
        cpus_per_rank=lay.cpus_per_rank if lay.launcher == "srun" else None,
        gpus_per_rank=lay.gpus_per_rank,
        interface=options.interface,
        btl=list(options.btl),
        binary=options.launcher_binary,
        label=options.label,
        extra_args=list(options.launcher_args),
    ).to_dict()
    del launch["nodes"]
    if not built:
        launch = {"launcher": lay.launcher, "ranks_per_node": lay.ranks_per_node, "env": dict(env)}
    shim: list[str] = []
    if options.rank_env:
        shim = [python, "-I", "-S", RANKENV_PY]
        if lay.ranks_per_gpu:
            shim += ["--ranks-per-gpu", str(lay.ranks_per_gpu)]
        shim.append("--")
    return {"launch": launch, "shim": shim, "master_port": options.master_port}


def trial_id(name: str, index: int, width: int | None) -> str:
    """``name-007``; just ``name`` for a lone run (``width`` None)."""
    return name if width is None else f"{name}-{index:0{width}d}"


def make_trial(
    options: MpiOptions,
    lay: Layout,
    config: dict[str, Any],
    *,
    index: int,
    width: int | None,
    params: dict[str, Any],
    python: str,
    workdir: Path,
    spec_dir: Path,
    env: dict[str, str],
    launcher: Launcher | None = None,
) -> Task:
    """The pool task of one trial; ``launcher`` is a plugin launcher (None for srun and
    mpirun, which the wrapper builds on the node)."""
    task_id = trial_id(options.name, index, width)
    values = {
        "task_id": task_id,
        "task_dir": str(task_dir(workdir, task_id)),
        "index": index,
        "group": options.name,
        "spec_dir": str(spec_dir),
        "workdir": str(workdir),
        **params,
    }
    command = render_command(options.command, values, shell=options.shell)
    if launcher is not None:
        template = plugin_argv(launcher, lay, [*config.get("shim", []), *command], env)
        config = {**config, "shim": [], "template": template, "node_count": lay.nodes or 1}
    wrapper = [python, "-I", "-S", LAUNCH_PY, "--config", json.dumps(config, separators=(",", ":"))]
    return Task(
        id=task_id,
        group=options.name,
        argv=[*wrapper, "--", *command],
        params=dict(params),
        cores=lay.cores if lay.gpus else 1,
        gpus=lay.gpus,
        time_limit=parse_duration(options.time_limit) if options.time_limit is not None else None,
        retries=options.retries,
        env=dict(env),
        whole_nodes=lay.nodes,
    )
