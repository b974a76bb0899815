"""The options of ``[app] type = "jupyter"`` and the checks that need no running server."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from pilotkit.api import Duration, SpecProblem, parse_duration

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

BACKENDS = ("none", "dask", "ray")
DASK_FIXED = ("mode", "script", "module", "args")
"""Keys of the Dask (or Ray) app that the Jupyter app sets itself (the cluster serves the kernels)."""


class JupyterOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Options of ``[app] type = "jupyter"``: a Jupyter server on the first node that stays
    up until the pilot drains, with an optional cluster behind its kernels."""

    backend: Literal["none", "dask", "ray"] = "none"
    """``dask``: a Dask cluster across the nodes, kernels get ``DASK_SCHEDULER_ADDRESS``;
    ``ray``: a Ray cluster, kernels get ``RAY_ADDRESS``."""
    lab: bool | None = None
    """JupyterLab (true), the bare Jupyter server (false); default: Lab when installed."""
    notebook_dir: str | None = None
    """The server's root folder (relative to the spec's folder); default: the pilot's workdir."""
    python: str | None = None
    """The interpreter on the nodes (default: this one; ``python3`` inside a container)."""
    host: str | None = None
    """Address or name the server listens on, instead of the first node's name."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    """0: any free port."""
    env: dict[str, str] = {}
    """Extra environment for the server and its kernels."""
    ready_timeout: Duration = "120s"
    """How long the server gets to start listening."""
    dask: dict[str, Any] = {}
    """Options of the Dask cluster (those of ``[app] type = "dask"``, less mode/script)."""
    ray: dict[str, Any] = {}
    """Options of the Ray cluster (those of ``[app] type = "ray"``, less mode/script)."""


def check_options(options: JupyterOptions, spec: ResolvedSpec) -> list[SpecProblem]:
    """Problems with the Jupyter options that show before anything runs."""
    problems: list[SpecProblem] = []
    if options.dask and options.backend != "dask":
        problems.append(SpecProblem("app.dask", 'Dask options need backend = "dask"'))
    if options.ray and options.backend != "ray":
        problems.append(SpecProblem("app.ray", 'Ray options need backend = "ray"'))
    if options.notebook_dir is not None:
        path = notebook_path(options.notebook_dir, spec.base_dir)
        if not path.is_dir():
            problems.append(SpecProblem("app.notebook_dir", f"no such folder: {path}"))
    try:
        if parse_duration(options.ready_timeout) <= 0:
            problems.append(SpecProblem("app.ready_timeout", "must be more than 0"))
    except ValueError as exc:
        problems.append(SpecProblem("app.ready_timeout", str(exc)))
    for name, table in (("dask", options.dask), ("ray", options.ray)):
        for key in DASK_FIXED:
            if key in table:
                problems.append(SpecProblem(f"app.{name}.{key}", "set by the Jupyter app: remove it"))
    local = spec.spec.container is None
    if local and importlib.util.find_spec("jupyter_server") is None:
        problems.append(
            SpecProblem("app.type", "jupyter_server is not installed: pip install pilotkit-jupyter")
        )
    if local and options.lab and importlib.util.find_spec("jupyterlab") is None:
        problems.append(
            SpecProblem("app.lab", "JupyterLab is not installed: pip install 'pilotkit-jupyter[lab]'")
        )
    return problems


def notebook_path(folder: str, base_dir: Path) -> Path:
    """The root folder's absolute path (relative paths are taken from the spec's folder)."""
    path = Path(folder).expanduser()
    return path if path.is_absolute() else base_dir / path


def use_lab(options: JupyterOptions) -> bool:
    """Whether the server is JupyterLab."""
    if options.lab is not None:
        return options.lab
    return importlib.util.find_spec("jupyterlab") is not None
