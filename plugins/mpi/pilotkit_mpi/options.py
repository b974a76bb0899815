"""The ``[app]`` keys of ``type = "mpi"`` and what can be checked before anything runs."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from pilotkit.api import (
    Distribution,
    Duration,
    Launcher,
    PluginError,
    RandomSamples,
    SearchSpec,
    SpecProblem,
    TaskGroup,
    TasksOptions,
    check_groups,
    get_plugins,
)

from . import optimiser

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class ScanOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``[app.scan]``: run the command many times, one trial per parameter point.

    Points come from a ``grid`` and/or ``random`` samples (as in the tasks app), or from
    an ``optimiser`` that proposes ``trials`` points from ``params`` as results come back.
    """

    grid: dict[str, list[Any]] = {}
    random: RandomSamples | None = None
    optimiser: str | None = None
    """``random`` (built in) or an installed ``pilotkit.optimisers`` entry point."""
    trials: PositiveInt | None = None
    """How many trials the optimiser runs."""
    params: dict[str, Distribution] = {}
    """The optimiser's search space."""
    goal: Literal["min", "max"] = "min"
    metric_file: str = "metric.json"
    """Written by a trial in its task directory: a number, or a JSON object."""
    metric_key: str = "metric"
    """The key of the metric when the file holds an object."""
    parallel: PositiveInt | None = None
    """Trials run at once with an optimiser (default: as many as the nodes hold)."""
    seed: int | None = None
    options: dict[str, Any] = {}
    """Passed to the optimiser's factory."""


class MpiOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``[app] type = "mpi"``: one MPI job over the nodes, or a scan of them."""

    command: str | list[str]
    """The program every rank runs: a string split like a shell would, or an argv.
    ``{placeholders}`` as in the tasks app (scan parameters, ``{task_dir}``...)."""
    name: str = "mpi"
    """The task group's name and the trials' id prefix."""
    launcher: str = "auto"
    """A launcher from the launcher registry (``pilotkit plugins``): ``srun``, ``mpirun``
    or one a plugin registers (a ``flux run`` or site ``mpiexec`` wrapper, say).
    ``auto``: srun in a Slurm allocation, mpirun elsewhere."""
    launcher_options: dict[str, Any] = {}
    """The options of a plugin's launcher (its ``Options``). srun and mpirun take this
    app's own keys (``pmi``, ``interface``, ``launcher_args``...) instead."""
    mpi: Literal["openmpi", "mpich"] = "openmpi"
    pmi: Literal["pmix", "pmi2", "none"] | None = None
    """srun's ``--mpi``; default pmix for OpenMPI, pmi2 for MPICH."""
    nodes: PositiveInt | None = None
    """Nodes one run (one trial) takes; default all the allocation's."""
    gpus: PositiveInt | None = None
    """Instead of whole nodes, one run takes this many GPUs of one node."""
    ranks_per_node: PositiveInt | None = None
    """Default 1 (or the GPUs times ``ranks_per_gpu``)."""
    ranks_per_gpu: PositiveInt | None = None
    """Ranks per GPU; each rank sees its GPU in ``CUDA_VISIBLE_DEVICES``."""
    cpus_per_rank: PositiveInt | None = None
    """srun's ``--cpus-per-task``; default the node's cores over its ranks."""
    interface: str | None = None
    """Network between ranks: interface name or (OpenMPI) subnet."""
    btl: list[str] = []
    """OpenMPI byte transfer layers, e.g. ``["tcp", "self"]``."""
    env: dict[str, str] = {}
    shell: bool = False
    """Run the command through ``/bin/sh -c`` (parameters shell-quoted)."""
    label: bool = False
    """Prefix every output line with its rank."""
    rank_env: bool = True
    """Run each rank through the shim that sets RANK, LOCAL_RANK, WORLD_SIZE..."""
    master_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    """Default: a free port chosen per trial."""
    launcher_args: list[str] = []
    """Extra arguments for srun / mpirun, before the command."""
    launcher_binary: str | None = None
    python: str | None = None
    """Python on the nodes for the wrappers (default: the pilot's)."""
    time_limit: Duration | None = None
    retries: Annotated[int, msgspec.Meta(ge=0)] = 0
    scan: ScanOptions | None = None
    search: SearchSpec | None = None
    """``[app.search]``: an adaptive search (the tasks app's ``[app.groups.search]``):
    a sampler plugin proposes each trial's parameters as a group of nodes comes free."""


def as_task_group(options: MpiOptions) -> TaskGroup:
    """The tasks app's view of the command and its parameters (for expansion and checks).

    With an optimiser the search space stands in as one random sample, so placeholders
    and distributions are checked the same way.
    """
    scan = options.scan
    grid: dict[str, list[Any]] = {}
    draw: RandomSamples | None = None
    if scan is not None:
        grid = scan.grid
        draw = scan.random
        if scan.optimiser is not None and scan.params:
            draw = RandomSamples(samples=1, params=scan.params, seed=scan.seed)
    return TaskGroup(
        name=options.name,
        command=options.command,
        grid=grid,
        random=draw,
        search=options.search,
        time_limit=options.time_limit,
        env=options.env,
        shell=options.shell,
    )


def _group_key(key: str, optimised: bool) -> str:
    """``app.groups[0].x`` as this app's key."""
    rest = key.removeprefix("app.groups[0]").lstrip(".")
    if rest.startswith(("grid", "random")):
        if optimised and rest.startswith("random.params"):
            rest = rest.removeprefix("random.")
        rest = "scan." + rest
    return "app" + (f".{rest}" if rest else "")


def check(spec: ResolvedSpec) -> list[SpecProblem]:
    """Every problem with the mpi app's options that can be found before running."""
    options: MpiOptions = spec.app_options
    problems: list[SpecProblem] = []
    scan = options.scan
    optimised = scan is not None and scan.optimiser is not None
    as_tasks = dataclasses.replace(spec, app_options=TasksOptions(groups=[as_task_group(options)]))
    for problem in check_groups(as_tasks.app_options, as_tasks):
        problems.append(SpecProblem(_group_key(problem.key, optimised), problem.message))
    resources = spec.spec.resources
    provider = spec.provider_cls.id
    if options.nodes is not None and options.nodes > resources.nodes:
        problems.append(
            SpecProblem("app.nodes", f"a run takes {options.nodes} nodes, the pilot has {resources.nodes}")
        )
    if options.nodes is not None and options.gpus is not None:
        problems.append(
            SpecProblem("app.gpus", "set 'nodes' (whole nodes) or 'gpus' (GPUs of one node), not both")
        )
    if options.ranks_per_node is not None and options.ranks_per_gpu is not None:
        problems.append(SpecProblem("app.ranks_per_gpu", "set 'ranks_per_node' or 'ranks_per_gpu', not both"))
    _, gpus = spec.provider_cls.node_capacity(spec)
    if (options.ranks_per_gpu is not None or options.gpus is not None) and gpus == 0:
        problems.append(SpecProblem("app.ranks_per_gpu", "ranks per GPU, but the pilot's nodes have no GPUs"))
    if options.gpus is not None and gpus is not None and options.gpus > gpus:
        problems.append(SpecProblem("app.gpus", f"a run takes {options.gpus} GPUs, a node has {gpus}"))
    problems += check_launcher(options)
    if options.launcher == "srun" and provider != "slurm":
        problems.append(
            SpecProblem("app.launcher", f"srun needs a Slurm allocation; the provider is '{provider}'")
        )
    if options.mpi == "mpich" and options.interface and "/" in options.interface:
        problems.append(SpecProblem("app.interface", "MPICH takes an interface name (eth0), not a subnet"))
    if spec.spec.container is not None:
        problems.append(
            SpecProblem(
                "container",
                "the mpi app cannot run ranks in a container yet: the pilot wraps every task, "
                "launcher included, in the image (see the pilotkit-mpi README)",
            )
        )
    if scan is not None:
        problems += _check_scan(scan)
    if options.search is not None:
        problems += _check_search(options.search, scan is not None)
    return problems


def _check_search(search: SearchSpec, scanned: bool) -> list[SpecProblem]:
    """Both ``scan`` and ``search``, an unknown sampler, the sampler's own objections."""
    problems: list[SpecProblem] = []
    if scanned:
        problems.append(SpecProblem("app.search", "set 'scan' or 'search', not both"))
    plugins = get_plugins()
    try:
        sampler = plugins.sampler(search.sampler)
    except PluginError as exc:
        hint = "" if plugins.tables["samplers"] else " (pip install pilotkit-optuna for tpe, random, cmaes, gp...)"
        return [*problems, SpecProblem("app.search.sampler", f"{exc.message}{hint}")]
    for where, message in sampler.check(search):
        problems.append(SpecProblem(f"app.search.{where}" if where else "app.search", message))
    return problems


def launcher_class(ident: str) -> type[Launcher]:
    """The launcher registered as ``ident``.

    :raises PluginError: no such launcher (the message lists the installed ones).
    """
    return get_plugins().launcher(ident)


def launcher_options(cls: type[Launcher], raw: dict[str, Any]) -> Any:
    """``[app.launcher_options]`` as ``cls``'s typed Options.

    :raises msgspec.ValidationError: options the launcher does not take.
    """
    return msgspec.convert(raw, cls.Options)


def check_launcher(options: MpiOptions) -> list[SpecProblem]:
    """The launcher is registered, and takes the options given for it."""
    from .launchers import BuiltLauncher

    if options.launcher == "auto":
        cls: type[Launcher] | None = None
    else:
        try:
            cls = launcher_class(options.launcher)
        except PluginError as exc:
            return [SpecProblem("app.launcher", str(exc))]
    if cls is None or issubclass(cls, BuiltLauncher):
        if options.launcher_options:
            name = options.launcher if cls is not None else "srun or mpirun"
            return [SpecProblem("app.launcher_options", f"{name} takes this app's own keys, not launcher_options")]
        return []
    try:
        launcher_options(cls, options.launcher_options)
    except msgspec.ValidationError as exc:
        return [SpecProblem("app.launcher_options", f"launcher '{cls.id}': {exc}")]
    return []


def _check_scan(scan: ScanOptions) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    if scan.optimiser is None:
        if not scan.grid and scan.random is None:
            problems.append(SpecProblem("app.scan", "set a 'grid', 'random' samples or an 'optimiser'"))
        for key in ("trials", "params", "parallel", "options"):
            if getattr(scan, key):
                problems.append(SpecProblem(f"app.scan.{key}", "only used with an 'optimiser'"))
        return problems
    if scan.grid or scan.random is not None:
        problems.append(SpecProblem("app.scan.optimiser", "an optimiser replaces 'grid' and 'random'"))
    if scan.trials is None:
        problems.append(SpecProblem("app.scan.trials", "an optimiser needs a number of trials"))
    if not scan.params:
        problems.append(SpecProblem("app.scan.params", "an optimiser needs a search space"))
    if scan.optimiser not in optimiser.available():
        problems.append(
            SpecProblem(
                "app.scan.optimiser",
                f"unknown optimiser '{scan.optimiser}'; available: {', '.join(optimiser.available())}",
            )
        )
    return problems
