"""``example-sweep``: run one command per value of a list and summarise the results."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec

from pilotkit.api import App, AppContext, Log, ResolvedSpec, SpecProblem, Task, TaskStatus, render_command


class SweepOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[app]`` keys of ``type = "example-sweep"``."""

    command: str
    """The command, with ``{value}`` where each value goes (``python3 fit.py --alpha {value}``)."""
    values: list[str | int | float]
    retries: int = 0
    """Attempts after a failed one, per task."""


class SweepApp(App):
    """One task per value; ``sweep.json`` in the pilot's workdir says how each one ended."""

    id = "example-sweep"
    Options = SweepOptions
    description = "one task per value of a list, and a sweep.json summary"

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        options: SweepOptions = spec.app_options
        problems = []
        if not options.values:
            problems.append(SpecProblem("app.values", "give at least one value"))
        if "{value}" not in options.command:
            problems.append(SpecProblem("app.command", "the command must say where the value goes: {value}"))
        return problems

    async def run(self, ctx: AppContext) -> None:
        options: SweepOptions = self.options
        tasks = [
            Task(
                id=f"sweep-{i}",
                group="sweep",
                argv=render_command(options.command, {"value": value}),
                params={"value": value},
                retries=options.retries,
            )
            for i, value in enumerate(options.values)
        ]
        ctx.pool.add_group("sweep", tasks)
        ctx.running()
        await ctx.pool.wait()
        summary = {
            task.id: {"value": task.params["value"], "status": task.status.value, "node": task.node}
            for task in tasks
        }
        await asyncio.to_thread(_write_json, ctx.pilot.workdir / "sweep.json", summary)
        done = sum(1 for task in tasks if task.status is TaskStatus.DONE)
        ctx.emit(
            Log(
                pilot=ctx.pilot.pilot_id,
                level="info",
                message=f"sweep: {done} of {len(tasks)} values done",
                source=self.id,
            )
        )


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
