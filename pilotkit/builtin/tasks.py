"""The bag-of-tasks app: lists of commands and parameter scans (the groups and their
expansion are in :mod:`pilotkit.scan`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pilotkit

from ..errors import PilotkitError
from ..interfaces import App, AppContext
from ..scan import (
    BUILTIN_PLACEHOLDERS,
    Distribution,
    RandomSamples,
    TaskGroup,
    TasksOptions,
    check_groups,
    count_tasks,
    expand_group,
    iter_group,
    parameter_points,
    render,
)

if TYPE_CHECKING:
    from ..errors import SpecProblem
    from ..interfaces import SpecView
    from ..plugins import Register

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
        return check_groups(spec.app_options, spec)

    async def run(self, ctx: AppContext) -> None:
        options: TasksOptions = self.options
        ctx.pool.set_gpu_share(options.gpu_share)
        ctx.running()
        base_env = dict(self.spec.spec.env)
        cores = max((n.cores for n in ctx.nodes), default=0)
        gpus = max((len(n.gpus) for n in ctx.nodes), default=0)
        for i, group in enumerate(options.groups):
            # What the nodes reported at probe time: a task no node can hold would wait forever.
            if group.gpus > gpus:
                raise PilotkitError(
                    f"app.groups[{i}].gpus: a task asks for {group.gpus} GPUs, the largest node has {gpus}"
                )
            if group.cores > cores:
                raise PilotkitError(
                    f"app.groups[{i}].cores: a task asks for {group.cores} cores, the largest node has {cores}"
                )
        for group in options.groups:
            tasks = iter_group(
                group, options, workdir=ctx.pilot.workdir, spec_dir=self.spec.base_dir, base_env=base_env
            )
            ctx.pool.add_group(group.name, tasks, total=count_tasks(group))
        await ctx.pool.wait()


@pilotkit.hookimpl
def pilotkit_register_apps(register: Register[Any]) -> None:
    register(TasksApp)
