"""The bag-of-tasks app: lists of commands and parameter scans (the groups and their
expansion are in :mod:`pilotkit.scan`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pilotkit

from ..errors import PilotkitError
from ..interfaces import App, AppContext
from ..plugins import get_plugins
from ..scan import (
    BUILTIN_PLACEHOLDERS,
    Distribution,
    RandomSamples,
    SearchSpec,
    TaskGroup,
    TasksOptions,
    check_groups,
    count_tasks,
    expand_group,
    iter_group,
    parameter_points,
    render,
)
from ..search import SearchRun

if TYPE_CHECKING:
    from ..errors import SpecProblem
    from ..interfaces import SpecView
    from ..plugins import Register
    from ..scheduler import TaskPool

__all__ = [
    "BUILTIN_PLACEHOLDERS",
    "Distribution",
    "RandomSamples",
    "TaskGroup",
    "TasksApp",
    "TasksOptions",
    "expand_group",
    "parameter_points",
    "pilotkit_register_apps",
    "render",
]


class TasksApp(App):
    """Runs every task of every group on the allocation's free slots."""

    id = "tasks"
    Options = TasksOptions
    description = "a bag of tasks: command lists and parameter scans"

    @classmethod
    def check(cls, spec: SpecView) -> list[SpecProblem]:
        problems = check_groups(spec.app_options, spec)
        for i, group in enumerate(spec.app_options.groups):
            if group.search is not None:
                problems += _sampler_problems(group.search, f"app.groups[{i}].search")
        return problems

    async def run(self, ctx: AppContext) -> None:
        options: TasksOptions = self.options
        ctx.pool.set_gpu_share(options.gpu_share)
        ctx.running()
        base_env = dict(self.spec.spec.env)
        cores = max((n.cores for n in ctx.nodes), default=0)
        gpus = max((len(n.gpus) for n in ctx.nodes), default=0)
        # No node at all: a re-attached pilot whose job ended with every task done
        # (it only records their results).
        for i, group in enumerate(options.groups if ctx.nodes else []):
            # What the nodes reported at probe time: a task no node can hold would wait forever.
            if group.gpus > gpus:
                raise PilotkitError(
                    f"app.groups[{i}].gpus: a task asks for {group.gpus} GPUs, the largest node has {gpus}"
                )
            if group.cores > cores:
                raise PilotkitError(
                    f"app.groups[{i}].cores: a task asks for {group.cores} cores, the largest node has {cores}"
                )
        searches: list[SearchRun] = []
        pool = cast("TaskPool", ctx.pool)  # a search feeds the pool's own group counts
        try:
            for group in options.groups:
                if group.search is not None:
                    search = SearchRun(
                        group, options, get_plugins().sampler(group.search.sampler), pool=ctx.pool,
                        nodes=ctx.nodes, workdir=ctx.pilot.workdir, spec_dir=self.spec.base_dir,
                        base_env=base_env, emit=ctx.emit, pilot_id=ctx.pilot.pilot_id,
                    )  # fmt: skip
                    await search.start()
                    searches.append(search)
                    pool.add_group(group.name, search.tasks(), total=count_tasks(group))
                    continue
                tasks = iter_group(
                    group, options, workdir=ctx.pilot.workdir, spec_dir=self.spec.base_dir, base_env=base_env
                )
                ctx.pool.add_group(group.name, tasks, total=count_tasks(group))
            await ctx.pool.wait()
        finally:
            for search in searches:
                await search.close()


def _sampler_problems(search: SearchSpec, key: str) -> list[SpecProblem]:
    """An unknown sampler, or the sampler's own objections to the search."""
    from ..errors import PluginError
    from ..errors import SpecProblem as Problem

    plugins = get_plugins()
    try:
        sampler = plugins.sampler(search.sampler)
    except PluginError as exc:
        hint = "" if plugins.tables["samplers"] else " (pip install pilotkit-optuna for tpe, random, cmaes, gp...)"
        return [Problem(f"{key}.sampler", f"{exc.message}{hint}")]
    return [Problem(f"{key}.{where}" if where else key, message) for where, message in sampler.check(search)]


@pilotkit.hookimpl
def pilotkit_register_apps(register: Register[Any]) -> None:
    register(TasksApp)
