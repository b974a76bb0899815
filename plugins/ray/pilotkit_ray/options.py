"""The options of ``[app] type = "ray"`` and the checks that need no running cluster."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Literal

import msgspec

from pilotkit.api import Duration, Size, SpecProblem, check_script, parse_duration, parse_size

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

MIN_OBJECT_STORE = 75 * 1024 * 1024
"""Ray refuses an object store smaller than 75 MiB."""


class RayOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Options of ``[app] type = "ray"``.

    Batch mode runs ``script`` (or ``module``) against the cluster and ends with it;
    interactive mode keeps the cluster up for outside clients until the pilot drains.
    """

    mode: Literal["batch", "interactive"] = "batch"
    script: str | None = None
    """Batch mode: a Python file (relative to the spec's folder) run on the head node."""
    module: str | None = None
    """Batch mode: a module run as ``python -m MODULE`` on the head node."""
    args: list[str] = []
    """Arguments for the script or module."""
    env: dict[str, str] = {}
    """Extra environment for Ray on every node and for the script."""
    python: str | None = None
    """The interpreter on the nodes (default: this one; ``python3`` inside a container)."""
    host: str | None = None
    """The head node's address for Ray (default: what the head node's name resolves to)."""
    object_store_memory: Size | None = None
    """Each node's object store, taken out of the node's memory (default: 30% of it,
    at least 75 MiB)."""
    resources: dict[str, float] = {}
    """Extra custom resources every node offers (besides MIG slices, which are added)."""
    dashboard: bool = False
    """Start the Ray dashboard on the head node (needs ``pip install 'ray[default]'``)."""
    temp_dir: str | None = None
    """Ray's temporary directory on each node (default: a short one under /tmp: Ray's
    socket paths must stay under 108 bytes)."""
    ready_timeout: Duration = "120s"
    """How long the head and every worker node get to be up and connected."""
    progress_interval: Duration = "1s"
    """How often task counts are read from Ray's state API (with ``dashboard = true``)."""


def check_options(options: RayOptions, spec: ResolvedSpec) -> list[SpecProblem]:
    """Problems with the Ray options that show before anything runs."""
    problems = check_script(options, spec.base_dir)
    for key in ("ready_timeout", "progress_interval"):
        try:
            if parse_duration(getattr(options, key)) <= 0:
                problems.append(SpecProblem(f"app.{key}", "must be more than 0"))
        except ValueError as exc:
            problems.append(SpecProblem(f"app.{key}", str(exc)))
    if options.object_store_memory is not None:
        try:
            if parse_size(options.object_store_memory) < MIN_OBJECT_STORE:
                problems.append(SpecProblem("app.object_store_memory", "Ray needs at least 75MiB"))
        except ValueError as exc:
            problems.append(SpecProblem("app.object_store_memory", str(exc)))
    for name, amount in options.resources.items():
        if amount < 0:
            problems.append(SpecProblem(f"app.resources.{name}", "must be 0 or more"))
    if options.temp_dir is not None and len(options.temp_dir) > 40:
        problems.append(
            SpecProblem("app.temp_dir", "at most 40 characters: Ray's socket paths below it must stay short")
        )
    if spec.spec.container is None and importlib.util.find_spec("ray") is None:
        problems.append(SpecProblem("app.type", "Ray is not installed: pip install 'ray[client]'"))
    elif (
        spec.spec.container is None and options.dashboard and importlib.util.find_spec("aiohttp_cors") is None
    ):
        problems.append(SpecProblem("app.dashboard", "Ray's dashboard needs pip install 'ray[default]'"))
    return problems
