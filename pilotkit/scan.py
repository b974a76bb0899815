"""Task groups and parameter scans: the spec of a bag of tasks and how it becomes tasks.

A group is either a list of ``commands`` or one ``command`` template expanded over a
``grid`` of parameters (the cartesian product) and/or ``random`` samples. Placeholders
are ``{name}`` (``str.format`` syntax, so ``{alpha:.3f}`` works); besides the group's
parameters they may use ``{task_id}``, ``{task_dir}``, ``{index}``, ``{group}``,
``{spec_dir}`` and ``{workdir}``. The tasks app (:mod:`pilotkit.builtin.tasks`) and
plugins that run scans of their own (the MPI app) share it through :mod:`pilotkit.api`.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from . import template
from .errors import SpecProblem
from .specfile.model import Duration
from .task import Task
from .units import parse_duration

if TYPE_CHECKING:
    from .interfaces import SpecView

BUILTIN_PLACEHOLDERS = frozenset({"task_id", "task_dir", "index", "group", "spec_dir", "workdir"})


class Distribution(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One of: ``uniform = [lo, hi]``, ``loguniform = [lo, hi]``, ``randint = [lo, hi]``
    (inclusive), ``choice = [a, b, ...]``."""

    uniform: list[float] | None = None
    loguniform: list[float] | None = None
    randint: list[int] | None = None
    choice: list[Any] | None = None


class RandomSamples(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    samples: Annotated[int, msgspec.Meta(ge=1)]
    params: dict[str, Distribution]
    seed: int | None = None


SAMPLERS_BUILTIN_HINT = "tpe, random, cmaes, gp, grid, qmc, nsga2 (pilotkit-optuna)"
PRUNERS = ("none", "median", "asha", "hyperband")
DIRECTIONS = ("minimize", "maximize")


class SearchSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """An adaptive search (``[app.groups.search]``): a sampler plugin proposes each
    trial's parameters as a slot comes free, from the metrics of the trials before."""

    sampler: str = "tpe"
    """A registered search sampler: tpe, random, cmaes, gp, grid, qmc, nsga2 with
    pilotkit-optuna, or a plugin's own."""
    trials: Annotated[int, msgspec.Meta(ge=1)]
    objective: str | list[str]
    """A key of the trials' final metrics; several for a multi-objective search."""
    direction: str | list[str] = "minimize"
    """minimize or maximize; one per objective."""
    pruner: str = "none"
    """none, median, asha, hyperband: stop unpromising trials from their intermediate
    reports (SIGTERM; outcome ``pruned``)."""
    seed: int | None = None
    params: dict[str, Distribution]
    report_interval: Duration = "1s"
    """How often running trials' intermediate reports are read (for the pruner)."""

    @property
    def objectives(self) -> list[str]:
        return [self.objective] if isinstance(self.objective, str) else list(self.objective)

    @property
    def directions(self) -> list[str]:
        if isinstance(self.direction, str):
            return [self.direction] * len(self.objectives)
        return list(self.direction)


class TaskGroup(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str
    command: str | list[str] | None = None
    """A template (a string split like a shell would, or an argv list)."""
    commands: list[str] | None = None
    """Explicit commands, one task each."""
    grid: dict[str, list[Any]] = {}
    random: RandomSamples | None = None
    search: SearchSpec | None = None
    """An adaptive search over ``search.params`` (no ``grid`` or ``random`` with it)."""
    cores: Annotated[int, msgspec.Meta(ge=1)] = 1
    gpus: Annotated[int, msgspec.Meta(ge=0)] = 0
    time_limit: Duration | None = None
    retries: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Default: the app's ``retries``."""
    env: dict[str, str] = {}
    shell: bool = False
    """Run through ``/bin/sh -c`` (parameters are shell-quoted)."""
    checkpoint: bool = False
    """In a campaign: the task checkpoints on ``[campaign] checkpoint_signal`` at an
    allocation's drain point and resumes from its kept directory in the next one."""


class TasksOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    groups: list[TaskGroup] = []
    retries: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Extra attempts a failed task gets."""
    gpu_share: Annotated[int, msgspec.Meta(ge=1)] = 1
    """How many tasks may share one GPU (1: never shared)."""


def check_groups(options: TasksOptions, spec: SpecView) -> list[SpecProblem]:
    """Every problem of ``options``' task groups on the pilot ``spec`` describes (node
    capacity, walltime), found before anything runs."""
    problems: list[SpecProblem] = []
    if not options.groups:
        problems.append(SpecProblem("app.groups", "no task groups: add at least one [[app.groups]]"))
    cores, gpus = spec.provider_cls.node_capacity(spec)
    names: set[str] = set()
    for i, group in enumerate(options.groups):
        key = f"app.groups[{i}]"
        if group.name in names:
            problems.append(SpecProblem(f"{key}.name", f"duplicate group name '{group.name}'"))
        names.add(group.name)
        if (group.command is None) == (group.commands is None):
            problems.append(SpecProblem(key, "set exactly one of 'command' or 'commands'"))
        if group.commands is not None and (group.grid or group.random):
            problems.append(SpecProblem(key, "'grid' and 'random' need a 'command' template"))
        if group.search is not None:
            problems.extend(check_search(group, key))
        params = set(group.grid) | (set(group.random.params) if group.random else set())
        params |= set(group.search.params) if group.search else set()
        problems.extend(_template_problems(group, key, params))
        if group.commands is not None and not group.commands:
            problems.append(SpecProblem(f"{key}.commands", "empty list: the group would run no task"))
        for pname, values in group.grid.items():
            if not values:
                problems.append(SpecProblem(f"{key}.grid.{pname}", "empty list of values"))
        if group.random:
            for pname, dist in group.random.params.items():
                problem = _check_distribution(dist)
                if problem:
                    problems.append(SpecProblem(f"{key}.random.params.{pname}", problem))
        if cores is not None and group.cores > cores:
            problems.append(
                SpecProblem(f"{key}.cores", f"a task asks for {group.cores} cores, a node has {cores}")
            )
        if group.gpus and gpus is not None and group.gpus > gpus:
            problems.append(
                SpecProblem(f"{key}.gpus", f"a task asks for {group.gpus} GPUs, a node has {gpus}")
            )
        if group.time_limit is not None and parse_duration(group.time_limit) <= 0:
            problems.append(
                SpecProblem(f"{key}.time_limit", "must be more than 0 (leave it out for no limit)")
            )
        elif group.time_limit is not None and spec.walltime is not None:
            if parse_duration(group.time_limit) > spec.walltime:
                problems.append(
                    SpecProblem(
                        f"{key}.time_limit", "longer than the pilot's walltime: no task could start"
                    )
                )
    return problems


def check_search(group: TaskGroup, key: str) -> list[SpecProblem]:
    """The problems of a group's ``search`` table that need no sampler plugin."""
    search = group.search
    assert search is not None
    where = f"{key}.search"
    problems: list[SpecProblem] = []
    if group.command is None:
        problems.append(SpecProblem(where, "a search needs a 'command' template"))
    if group.grid or group.random:
        problems.append(SpecProblem(where, "a group has either 'search' or 'grid'/'random', not both"))
    if not search.params:
        problems.append(SpecProblem(f"{where}.params", "no parameters to search"))
    for pname, dist in search.params.items():
        problem = _check_distribution(dist)
        if problem:
            problems.append(SpecProblem(f"{where}.params.{pname}", problem))
    objectives, directions = search.objectives, search.directions
    if not objectives or not all(objectives):
        problems.append(SpecProblem(f"{where}.objective", "name a key of the trials' final metrics"))
    if len(directions) != len(objectives):
        problems.append(
            SpecProblem(f"{where}.direction", f"{len(directions)} direction(s) for {len(objectives)} objective(s)")
        )
    for d in directions:
        if d not in DIRECTIONS:
            problems.append(SpecProblem(f"{where}.direction", f"'{d}': expected minimize or maximize"))
    if search.pruner not in PRUNERS:
        problems.append(SpecProblem(f"{where}.pruner", f"unknown pruner '{search.pruner}'; one of {', '.join(PRUNERS)}"))
    elif search.pruner != "none" and len(objectives) > 1:
        problems.append(SpecProblem(f"{where}.pruner", "pruning needs a single objective"))
    if parse_duration(search.report_interval) <= 0:
        problems.append(SpecProblem(f"{where}.report_interval", "must be more than 0"))
    return problems


def expand_group(
    group: TaskGroup,
    options: TasksOptions,
    *,
    workdir: Path,
    spec_dir: Path,
    base_env: dict[str, str] | None = None,
) -> list[Task]:
    """The tasks of one group, in order."""
    return list(iter_group(group, options, workdir=workdir, spec_dir=spec_dir, base_env=base_env))


def iter_group(
    group: TaskGroup,
    options: TasksOptions,
    *,
    workdir: Path,
    spec_dir: Path,
    base_env: dict[str, str] | None = None,
) -> Iterator[Task]:
    """The tasks of one group, in order, made as they are asked for (a huge grid is
    never held in memory at once); :func:`count_tasks` says how many."""
    points = iter_points(group)
    width = max(1, len(str(count_tasks(group) - 1)))
    retries = options.retries if group.retries is None else group.retries
    time_limit = parse_duration(group.time_limit) if group.time_limit is not None else None
    env = {**(base_env or {}), **group.env}
    task_root = f"{workdir}{os.sep}tasks{os.sep}"
    fixed = {"group": group.name, "spec_dir": str(spec_dir), "workdir": str(workdir)}
    tokens: dict[int, list[str]] = {}  # split each distinct template once
    for index, (command, params) in enumerate(points):
        task_id = f"{group.name}-{index:0{width}d}"
        values = {"task_id": task_id, "task_dir": task_root + task_id, "index": index, **fixed, **params}
        if not group.shell and isinstance(command, str):
            split = tokens.get(id(command))
            if split is None:
                split = tokens[id(command)] = shlex.split(command)
            command = split
        yield Task(
            id=task_id,
            group=group.name,
            argv=render(command, values, shell=group.shell),
            params=params,
            cores=group.cores,
            gpus=group.gpus,
            time_limit=time_limit,
            retries=retries,
            env=env,
            checkpoint=group.checkpoint,
        )


def parameter_points(group: TaskGroup) -> list[tuple[str | list[str], dict[str, Any]]]:
    """(command template, parameters) per task."""
    return list(iter_points(group))


def iter_points(group: TaskGroup) -> Iterator[tuple[str | list[str], dict[str, Any]]]:
    """(command template, parameters) per task, made one at a time."""
    if group.commands is not None:
        yield from ((command, {}) for command in group.commands)
        return
    assert group.command is not None
    names = list(group.grid)
    rng = random.Random(group.random.seed) if group.random is not None else None
    for combo in itertools.product(*group.grid.values()):
        point = dict(zip(names, combo, strict=True))
        if group.random is None or rng is None:
            yield group.command, point
            continue
        for _ in range(group.random.samples):
            sample = {name: _draw(rng, dist) for name, dist in group.random.params.items()}
            yield group.command, {**point, **sample}


def render(command: str | list[str], values: dict[str, Any], *, shell: bool = False) -> list[str]:
    """Substitute ``values`` into a command template; returns an argv. Each value is
    formatted with its own format spec; in a shell command it is then quoted for where
    it stands (see :mod:`pilotkit.template`)."""
    if shell:
        text = command if isinstance(command, str) else shlex.join(command)
        return ["/bin/sh", "-c", template.render_shell(text, values)]
    tokens = shlex.split(command) if isinstance(command, str) else command
    return [template.render_token(token, values) for token in tokens]


def count_tasks(group: TaskGroup) -> int:
    """How many tasks a group makes, without making them."""
    if group.commands is not None:
        return len(group.commands)
    if group.search is not None:
        return group.search.trials
    total = math.prod(len(values) for values in group.grid.values())
    return total * (group.random.samples if group.random is not None else 1)


def _template_problems(group: TaskGroup, key: str, params: set[str]) -> list[SpecProblem]:
    """The problems of a group's templates: malformed ones, unknown placeholders (each
    named once), values their format spec cannot format, shell quoting that is unsafe."""
    problems: list[SpecProblem] = []
    known = params | BUILTIN_PLACEHOLDERS
    candidates = _candidate_values(group)
    templates: list[tuple[str, str, set[str]]] = []
    if isinstance(group.command, str):
        templates.append((f"{key}.command", group.command, known))
    elif group.command is not None:
        templates += [(f"{key}.command[{i}]", t, known) for i, t in enumerate(group.command)]
    for i, text in enumerate(group.commands or []):
        templates.append((f"{key}.commands[{i}]", text, set(BUILTIN_PLACEHOLDERS)))
    for where, text, allowed in templates:
        try:
            fields = template.fields(text)
            if not group.shell and isinstance(group.command, str) and where == f"{key}.command":
                shlex.split(text)
            elif not group.shell and group.commands is not None:
                shlex.split(text)
        except ValueError as exc:
            problems.append(SpecProblem(where, f"bad template: {exc}"))
            continue
        unknown = sorted({f.name for f in fields if f.name not in allowed})
        for name in unknown:
            hint = (
                "'commands' take no parameters; use 'command' with a 'grid'"
                if group.commands is not None and name not in BUILTIN_PLACEHOLDERS
                else "parameters: " + ", ".join(sorted(allowed))
            )
            problems.append(SpecProblem(where, f"unknown placeholder '{{{name}}}'; {hint}"))
        first = {name: values[0] for name, values in candidates.items() if values}
        seen: set[str] = set()
        for field in fields:
            if field.name not in allowed or field.text in seen:
                continue
            seen.add(field.text)
            for value in candidates.get(field.name, [])[:_TRIAL_VALUES]:
                try:
                    field.format({**first, field.name: value})
                except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
                    problems.append(
                        SpecProblem(where, f"{field.text} cannot format {field.name} = {value!r}: {exc}")
                    )
                    break
        if group.shell:
            problems += [SpecProblem(where, message) for message in template.shell_problems(text)]
    return problems


_TRIAL_VALUES = 100
"""How many values of each parameter a template's format specs are tried on."""


def _candidate_values(group: TaskGroup) -> dict[str, list[Any]]:
    """Values each placeholder may take, for trying a template's format specs."""
    out: dict[str, list[Any]] = {
        "task_id": [f"{group.name}-0"],
        "task_dir": ["/workdir/tasks/task"],
        "index": [0],
        "group": [group.name],
        "spec_dir": ["/spec"],
        "workdir": ["/workdir"],
    }
    for name, values in group.grid.items():
        out[name] = list(values)
    dists = dict(group.random.params) if group.random is not None else {}
    dists.update(group.search.params if group.search is not None else {})
    if dists:
        for name, dist in dists.items():
            bounds = dist.uniform or dist.loguniform or dist.randint or dist.choice or []
            out[name] = [float(v) for v in bounds] if (dist.uniform or dist.loguniform) else list(bounds)
    return out


def _check_distribution(dist: Distribution) -> str | None:
    chosen = [
        name for name in ("uniform", "loguniform", "randint", "choice") if getattr(dist, name) is not None
    ]
    if len(chosen) != 1:
        return "set exactly one of uniform, loguniform, randint, choice"
    values = getattr(dist, chosen[0])
    if chosen[0] == "choice":
        return None if values else "choice needs at least one value"
    if len(values) != 2 or values[0] > values[1]:
        return f"{chosen[0]} needs [low, high] with low <= high"
    if chosen[0] == "loguniform" and values[0] <= 0:
        return "loguniform needs low > 0"
    return None


def _draw(rng: random.Random, dist: Distribution) -> Any:
    if dist.uniform is not None:
        return rng.uniform(dist.uniform[0], dist.uniform[1])
    if dist.loguniform is not None:
        lo, hi = dist.loguniform
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if dist.randint is not None:
        return rng.randint(dist.randint[0], dist.randint[1])
    assert dist.choice is not None
    return rng.choice(dist.choice)
