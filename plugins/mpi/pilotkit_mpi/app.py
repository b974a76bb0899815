"""``[app] type = "mpi"``: MPI jobs over the allocation's nodes, one or a scan of them.

Every run is a *trial* in the task pool (see :mod:`pilotkit_mpi.trials`). Trials come
from a source with the optimiser interface (:mod:`pilotkit_mpi.optimiser`): a fixed
list (one lone run, or a grid / random samples, all queued at once, the pool starting
each as soon as a group of nodes is free) or an optimiser, asked for as many points as
there are free groups and then for one more each time a trial finishes.

A trial that fails (a rank died, the launcher gave up) fails alone: its task is
recorded as failed, the ranks the launcher named are written to ``failure.json`` in its
task directory and logged, and the other trials go on. As with the tasks app, the pilot
ends ``failed`` when any trial did.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotkit.api import (
    App,
    AppContext,
    Launcher,
    Log,
    PilotkitError,
    PluginError,
    SearchRun,
    SpecProblem,
    Task,
    TaskFinished,
    TasksOptions,
    TaskStatus,
    attempt_log,
    get_plugins,
    parameter_points,
    task_dir,
)

from . import optimiser, report, trials, watch
from .launchers import BuiltLauncher
from .options import MpiOptions, as_task_group, check, launcher_class, launcher_options
from .trials import Layout

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

MakeTask = Callable[[int, dict[str, Any]], Task]

FINAL = (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED)
SCAN_RECORD = "scan.jsonl"
FAILURE_RECORD = "failure.json"


@dataclass
class Trial:
    task: Task
    params: dict[str, Any]
    future: asyncio.Future[TaskFinished] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class MpiApp(App):
    """Runs the command as an MPI job on groups of nodes, one trial per parameter point."""

    id = "mpi"
    Options = MpiOptions
    description = "MPI jobs across the nodes (srun or mpirun), and grouped scans of them"

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        return check(spec)

    async def run(self, ctx: AppContext) -> None:
        options: MpiOptions = self.options
        spec = self.spec
        lay = trials.layout(
            options, ctx.nodes, spec.provider_cls.id, slurm_gpus=bool(spec.spec.resources.gpus)
        )
        python = options.python or getattr(spec.provider_options, "python", None) or sys.executable
        env = {**spec.spec.env, **options.env}
        launcher = self._launcher(lay.launcher)
        config = trials.wrapper_config(options, lay, python=python, env=env, built=launcher is None)
        if options.search is not None:
            await self._search(ctx, lay, config, python, env, launcher)
            return
        source, window, total = self._source(lay)
        width = None if options.scan is None else max(1, len(str(max(total - 1, 0))))
        ctx.running()
        self._log(
            ctx,
            f"{options.name}: {total} run(s) with {lay.launcher}, "
            + (f"{lay.nodes} node(s)" if lay.nodes else f"{lay.gpus} GPU(s)")
            + f" and {lay.ranks_per_node} rank(s) per node each, {min(window, lay.slots)} at once",
        )

        def make(index: int, params: dict[str, Any]) -> Task:
            return trials.make_trial(
                options, lay, config, index=index, width=width, params=params, python=python,
                workdir=ctx.pilot.workdir, spec_dir=spec.base_dir, env=env, launcher=launcher,
            )  # fmt: skip

        await self._drive(ctx, source, window, total, make)

    async def _search(
        self, ctx: AppContext, lay: Layout, config: dict[str, Any], python: str, env: dict[str, str],
        launcher: Launcher | None,
    ) -> None:
        """``[app.search]``: the core's adaptive search, each trial one MPI job on its
        group of nodes, as many at once as there are groups."""
        options: MpiOptions = self.options
        spec = self.spec
        assert options.search is not None
        budget = options.search.trials
        width = max(1, len(str(budget - 1)))
        ctx.running()
        self._log(
            ctx,
            f"{options.name}: a {options.search.sampler} search of {budget} run(s) with {lay.launcher}, "
            + (f"{lay.nodes} node(s)" if lay.nodes else f"{lay.gpus} GPU(s)")
            + f" and {lay.ranks_per_node} rank(s) per node each, {lay.slots} at once",
        )

        def make(index: int, params: dict[str, Any]) -> Task:
            return trials.make_trial(
                options, lay, config, index=index, width=width, params=params, python=python,
                workdir=ctx.pilot.workdir, spec_dir=spec.base_dir, env=env, launcher=launcher,
            )  # fmt: skip

        search = SearchRun(
            as_task_group(options), TasksOptions(), get_plugins().sampler(options.search.sampler),
            pool=ctx.pool, nodes=ctx.nodes, workdir=ctx.pilot.workdir, spec_dir=spec.base_dir,
            base_env=env, emit=ctx.emit, pilot_id=ctx.pilot.pilot_id, make=make, slots=lay.slots,
        )  # fmt: skip
        await search.start()
        try:
            ctx.pool.add_group(options.name, search.tasks(), total=budget)
            await ctx.pool.wait()
        finally:
            await search.close()

    def _launcher(self, ident: str) -> Launcher | None:
        """The launcher registered as ``ident``, made with its options; None for srun and
        mpirun, which the trial wrapper builds on the node from this app's keys."""
        try:
            cls = launcher_class(ident)
        except PluginError as exc:
            raise PilotkitError(f"app.launcher: {exc}") from None
        if issubclass(cls, BuiltLauncher):
            return None
        launcher = cls()
        launcher.options = launcher_options(cls, self.options.launcher_options)  # type: ignore[attr-defined]
        return launcher

    # ---------------------------------------------------------------- sources

    def _source(self, lay: Layout) -> tuple[optimiser.Optimiser, int, int]:
        """(where points come from, how many trials may be queued at once, how many in all)."""
        options: MpiOptions = self.options
        scan = options.scan
        if scan is None:
            return optimiser.PointList([{}], "min"), 1, 1
        if scan.optimiser is None:
            points = [params for _, params in parameter_points(as_task_group(options))]
            return optimiser.PointList(points, scan.goal), max(1, len(points)), len(points)
        factory = optimiser.load_optimiser(scan.optimiser)
        settings = optimiser.OptimiserSettings(
            params=dict(scan.params), goal=scan.goal, seed=scan.seed, options=dict(scan.options)
        )
        trials_total = scan.trials or 0
        return factory(settings), min(scan.parallel or lay.slots, trials_total), trials_total

    # ---------------------------------------------------------------- the loop

    async def _drive(
        self,
        ctx: AppContext,
        source: optimiser.Optimiser,
        window: int,
        total: int,
        make: MakeTask,
    ) -> None:
        options: MpiOptions = self.options
        pilot = ctx.pilot.pilot_id
        pending: dict[str, Trial] = {}
        issued = 0
        exhausted = False
        records: list[dict[str, Any]] = []
        try:
            while True:
                stopping = ctx.draining.is_set() or ctx.pool.draining
                want = min(window - len(pending), total - issued)
                if not stopping and not exhausted and want > 0:
                    points = self._suggest(source, want)
                    exhausted = not points
                    batch = [Trial(make(issued + i, p), dict(p)) for i, p in enumerate(points)]
                    issued += len(batch)
                    for trial in batch:
                        trial.future = watch.expect(pilot, trial.task.id)
                        pending[trial.task.id] = trial
                    if batch:
                        ctx.pool.add_group(options.name, [t.task for t in batch])
                if not pending:
                    break
                idle = await self._until_one_ends(ctx, pending)
                ended = [tid for tid, t in pending.items() if t.task.status in FINAL]
                for tid in ended:
                    records.append(self._finish(ctx, pending.pop(tid), source))
                if idle and not ended:
                    break  # the pool is idle yet these never ended: nothing more will happen
        finally:
            watch.forget(pilot)
        self._report_best(ctx, records)

    def _suggest(self, source: optimiser.Optimiser, n: int) -> list[dict[str, Any]]:
        try:
            return [dict(p) for p in source.suggest(n)][:n]
        except Exception as exc:
            name = self.options.scan.optimiser if self.options.scan else "points"
            raise PilotkitError(f"optimiser '{name}': suggest() raised {type(exc).__name__}: {exc}") from exc

    async def _until_one_ends(self, ctx: AppContext, pending: dict[str, Trial]) -> bool:
        """Wait for a trial's end, the pool going idle or a drain; True if the pool is idle."""
        waiters: set[asyncio.Future[Any]] = {t.future for t in pending.values() if t.future is not None}
        if any(t.task.status in FINAL for t in pending.values()):
            return False
        idle = asyncio.ensure_future(ctx.pool.wait())
        waiters.add(idle)
        drain: asyncio.Future[Any] | None = None
        if not ctx.draining.is_set():
            drain = asyncio.ensure_future(ctx.draining.wait())
            waiters.add(drain)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for extra in (idle, drain):
                if extra is not None and not extra.done():
                    extra.cancel()
        return idle.done() and not idle.cancelled()

    # ---------------------------------------------------------------- results

    def _finish(self, ctx: AppContext, trial: Trial, source: optimiser.Optimiser) -> dict[str, Any]:
        options: MpiOptions = self.options
        task = trial.task
        tdir = task_dir(ctx.pilot.workdir, task.id)
        metric = None
        if options.scan is not None and task.status is TaskStatus.DONE:
            metric = report.read_metric(tdir / options.scan.metric_file, options.scan.metric_key)
        record: dict[str, Any] = {
            "task": task.id,
            "params": trial.params,
            "status": task.outcome if task.status is not TaskStatus.CANCELLED else "cancelled",
            "exit_code": task.exit_code,
            "metric": metric,
            "nodes": _launched_nodes(tdir),
            "duration": (task.end - task.start) if task.end and task.start else None,
        }
        if task.status is TaskStatus.FAILED:
            record["failure"] = self._failure(ctx, task, tdir)
            record["exit_code"] = record["failure"]["exit_code"]
            record["launcher_exit_code"] = task.exit_code
        if task.status is not TaskStatus.CANCELLED:
            try:
                source.observe(trial.params, metric)
            except Exception as exc:  # a broken optimiser must not take the pilot down
                self._log(ctx, f"optimiser.observe raised {type(exc).__name__}: {exc}", "warning")
        if options.scan is not None:
            with open(ctx.pilot.workdir / SCAN_RECORD, "a") as f:
                f.write(json.dumps(record, default=str) + "\n")
        return record

    def _failure(self, ctx: AppContext, task: Task, tdir: Path) -> dict[str, Any]:
        """Collect the launcher's report of which ranks failed; log one line."""
        stderr = attempt_log(ctx.pilot.workdir, task.id, task.attempts, "err")
        failures = report.rank_failures(report.read_tail(stderr))
        summary = report.summarise(failures, task.exit_code)
        failure = {
            "task": task.id,
            "outcome": task.outcome,
            "exit_code": report.rank_exit_code(failures, task.exit_code),
            "launcher_exit_code": task.exit_code,
            "ranks": [f.to_dict() for f in failures],
            "stderr": str(stderr),
            "time": time.time(),
        }
        try:
            (tdir / FAILURE_RECORD).write_text(json.dumps(failure, indent=1) + "\n")
        except OSError:
            pass
        self._log(ctx, f"trial {task.id} failed: {summary} (stderr: {stderr})", "warning")
        return failure

    def _report_best(self, ctx: AppContext, records: list[dict[str, Any]]) -> None:
        options: MpiOptions = self.options
        scored = [r for r in records if r["metric"] is not None]
        if options.scan is None or not scored:
            return
        pick = min if options.scan.goal == "min" else max
        best = pick(scored, key=lambda r: float(r["metric"]))
        self._log(
            ctx,
            f"best trial {best['task']}: {options.scan.metric_key} = {best['metric']:g} with {best['params']}",
        )

    def _log(self, ctx: AppContext, message: str, level: str = "info") -> None:
        ctx.emit(Log(pilot=ctx.pilot.pilot_id, level=level, message=message, source="mpi"))


def _launched_nodes(tdir: Path) -> list[str] | None:
    """The nodes the trial's wrapper launched on (from its ``launch.json``)."""
    try:
        data = json.loads((tdir / "launch.json").read_text())
    except (OSError, ValueError):
        return None
    nodes = data.get("nodes")
    return [str(n) for n in nodes] if isinstance(nodes, list) else None
