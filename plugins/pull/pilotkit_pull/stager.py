"""The ``pull`` stager: the container runtime pulls the image itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import Literal

import msgspec

from pilotkit.api import (
    Duration,
    Log,
    PilotContext,
    PilotkitError,
    ResolvedSpec,
    SpecProblem,
    StagedImage,
    StageProgress,
    Stager,
    parse_duration,
    run_command,
)

from .commands import RUNTIMES, PullPlan, plan_pull

Runtime = Literal["apptainer", "sarus", "shifter", "podman-hpc"]


class PullOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The ``[image]`` keys of ``stager = "pull"``."""

    runtime: Runtime | None = None
    """Whose pull to use; default: the ``[container]`` runtime when it is one of these, else apptainer."""
    cache: str | None = None
    """Directory for pulled SIF files (apptainer); default ``$XDG_CACHE_HOME/pilotkit/images``."""
    force: bool = False
    """Pull again even when the SIF file is already in the cache."""
    timeout: Duration = "1h"
    """How long one pull may take."""


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pilotkit" / "images"


def runtime_for(options: PullOptions, spec: ResolvedSpec | None) -> str:
    """The runtime whose pull is used: the option, else the spec's runtime if it can pull."""
    if options.runtime is not None:
        return options.runtime
    runtime_cls = spec.runtime_cls if spec is not None else None
    if runtime_cls is not None and runtime_cls.id in RUNTIMES:
        return runtime_cls.id
    return "apptainer"


def apptainer_binary() -> str:
    """``apptainer``, or ``singularity`` where only that is installed."""
    if shutil.which("apptainer") is None and shutil.which("singularity") is not None:
        return "singularity"
    return "apptainer"


class PullStager(Stager):
    """Runs ``apptainer pull``, ``sarus pull``, ``shifterimg pull`` or ``podman-hpc pull``."""

    id = "pull"
    description = "pull with the runtime's own pull (apptainer, sarus, shifter, podman-hpc)"
    Options = PullOptions

    options: PullOptions

    def __init__(self, options: PullOptions | None = None) -> None:
        super().__init__(options or PullOptions())

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        options = spec.stager_options
        if not isinstance(options, PullOptions):
            return []
        problems = []
        runtime = runtime_for(options, spec)
        container = spec.runtime_cls.id if spec.runtime_cls is not None else None
        if runtime != "apptainer" and container is not None and container != runtime:
            problems.append(SpecProblem(
                "image.runtime",
                f"images pulled with {runtime} are held by {runtime}; [container] runtime is {container}",
            ))
        if options.cache is not None and runtime != "apptainer":
            problems.append(SpecProblem("image.cache", f"{runtime} keeps pulled images itself; remove 'cache'"))
        if spec.spec.image is not None:
            try:
                plan_pull(runtime, spec.spec.image.ref, Path("/"))
            except PilotkitError as exc:
                problems.append(SpecProblem("image.ref", str(exc)))
        return problems

    async def stage(self, ref: str, ctx: PilotContext) -> StagedImage:
        runtime = runtime_for(self.options, getattr(ctx, "spec", None))
        cache = Path(self.options.cache).expanduser() if self.options.cache else default_cache()
        plan = plan_pull(runtime, ref, cache, binary=apptainer_binary(), token=str(os.getpid()))
        if plan.dest is not None:
            if plan.dest.is_file() and not self.options.force:
                self._log(ctx, f"image {ref}: {plan.dest} (pulled before)")
                return StagedImage(ref=ref, path=plan.dest, format=plan.format)
            await asyncio.to_thread(cache.mkdir, parents=True, exist_ok=True)
        ctx.emit(StageProgress(pilot=ctx.pilot_id, image=ref, done=0, message=f"pulling with {runtime}"))
        try:
            await run_command(
                plan.argv,
                timeout=parse_duration(self.options.timeout),
                purpose=f"pulling images with {runtime}",
            )
            if plan.dest is not None and plan.partial is not None:
                os.replace(plan.partial, plan.dest)
        finally:
            if plan.partial is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(plan.partial)
        return self._staged(ref, plan, ctx)

    def _staged(self, ref: str, plan: PullPlan, ctx: PilotContext) -> StagedImage:
        if plan.dest is not None:
            self._log(ctx, f"image {ref}: pulled to {plan.dest}")
            return StagedImage(ref=ref, path=plan.dest, format=plan.format)
        self._log(ctx, f"image {ref}: pulled as {plan.image_ref}")
        return StagedImage(ref=plan.image_ref, path=Path(plan.image_ref), format=plan.format)

    def _log(self, ctx: PilotContext, message: str) -> None:
        ctx.emit(Log(pilot=ctx.pilot_id, level="info", source=self.id, message=message))
