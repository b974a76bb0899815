"""The options of ``[app] type = "dask"`` and the checks that need no running cluster."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from pilotkit.api import Duration, Size, SpecProblem, check_script, parse_duration, parse_size

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec


class DaskOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Options of ``[app] type = "dask"``.

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
    """Extra environment for the scheduler, the workers and the script."""
    python: str | None = None
    """The interpreter on the nodes (default: this one; ``python3`` inside a container)."""
    threads: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Threads per worker (default: the node's cores, or 1 per GPU worker)."""
    nanny: bool = True
    """Run each worker under a nanny process (restarts it, enforces the memory limit)."""
    interface: str | None = None
    """Network interface the scheduler and workers listen on (``ib0``); default: the
    scheduler binds to the head node's name and workers to the address that reaches it."""
    host: str | None = None
    """Address or name the scheduler listens on, instead of the head node's name."""
    scheduler_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    """0: any free port."""
    dashboard: bool = True
    dashboard_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    ready_timeout: Duration = "120s"
    """How long the scheduler and every worker get to be up and connected."""
    worker_restarts: Annotated[int, msgspec.Meta(ge=0)] = 3
    """How many times a worker that exits while its node is still there is restarted."""
    retire_timeout: Duration = "60s"
    """How long retiring the workers gracefully may take before they are stopped."""
    progress_interval: Duration = "0.5s"
    """How often task counts are read from the scheduler."""
    save_datasets: bool = True
    """Before the cluster stops, gather every published dataset into
    ``<workdir>/dask-datasets/<name>.pickle``."""
    save_datasets_limit: Size = "1GiB"
    """Datasets larger than this (in worker memory) are not gathered."""


def check_options(options: DaskOptions, spec: ResolvedSpec) -> list[SpecProblem]:
    """Problems with the Dask options that show before anything runs."""
    problems = check_script(options, spec.base_dir)
    if options.interface is not None and options.host is not None:
        problems.append(SpecProblem("app.interface", "set 'interface' or 'host', not both"))
    for key in ("ready_timeout", "retire_timeout", "progress_interval"):
        try:
            if parse_duration(getattr(options, key)) <= 0:
                problems.append(SpecProblem(f"app.{key}", "must be more than 0"))
        except ValueError as exc:
            problems.append(SpecProblem(f"app.{key}", str(exc)))
    try:
        parse_size(options.save_datasets_limit)
    except ValueError as exc:
        problems.append(SpecProblem("app.save_datasets_limit", str(exc)))
    if spec.spec.container is None and importlib.util.find_spec("distributed") is None:
        problems.append(
            SpecProblem("app.type", "dask.distributed is not installed: pip install 'dask[distributed]'")
        )
    return problems
