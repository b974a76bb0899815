"""The cluster behind the kernels, borrowed from another app through the plugin manager.

``backend = "dask"`` runs the ``dask`` app (the pilotkit-dask plugin) in interactive mode,
side by side with the server, on the same pilot: this plugin imports none of its code. The
Dask app publishes its scheduler in ``<workdir>/dask.json``, which is read from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from pilotkit.api import App, PilotkitError, SpecProblem, get_plugins

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec

DASK_CONNECTION_FILE = "dask.json"
"""Where the Dask app publishes its scheduler (its documented connection file)."""


class _WithOptions:
    """A spec seen with other app options (what the borrowed app's checks read)."""

    def __init__(self, spec: ResolvedSpec, options: Any) -> None:
        self._spec = spec
        self.app_options = options

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)


def dask_app_class() -> type[App]:
    """The registered ``dask`` app; a one-line error without pilotkit-dask."""
    try:
        return get_plugins().app("dask")
    except PilotkitError:
        raise PilotkitError(
            "backend = \"dask\" needs the Dask app: pip install 'pilotkit-jupyter[dask]'"
        ) from None


def dask_options(table: dict[str, Any]) -> tuple[type[App], Any]:
    """The Dask app and its typed options for an interactive cluster."""
    cls = dask_app_class()
    try:
        options = msgspec.convert({**table, "mode": "interactive"}, cls.Options)
    except msgspec.ValidationError as exc:
        raise PilotkitError(str(exc)) from None
    return cls, options


def check_dask(table: dict[str, Any], spec: ResolvedSpec) -> list[SpecProblem]:
    """The Dask app's own problems with ``[app.dask]``, located under ``app.dask``."""
    try:
        cls, options = dask_options(table)
    except PilotkitError as exc:
        message = str(exc)
        where = "app.dask" if table else "app.backend"
        if " - at `$." in message:  # msgspec: "Expected ... - at `$.key`"
            text, _, key = message.partition(" - at `$.")
            return [SpecProblem(f"app.dask.{key.rstrip('`')}", text)]
        return [SpecProblem(where, message)]
    problems = cls.check(_WithOptions(spec, options))  # type: ignore[arg-type,unused-ignore]
    return [SpecProblem(_under_dask(p.key), p.message, suggestion=p.suggestion) for p in problems]


def _under_dask(key: str) -> str:
    """``app.threads`` of the Dask app is ``app.dask.threads`` in a Jupyter spec."""
    return "app.dask" + key[len("app") :] if key == "app" or key.startswith("app.") else key


def make_dask_app(table: dict[str, Any], spec: Any) -> App:
    """An interactive Dask app for this pilot, with the options of ``[app.dask]``."""
    cls, options = dask_options(table)
    return cls(spec, options)


def read_dask_connection(workdir: Path) -> dict[str, Any]:
    """``<workdir>/dask.json`` as the Dask app wrote it (``scheduler``, ``dashboard``...)."""
    path = workdir / DASK_CONNECTION_FILE
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PilotkitError(f"cannot read the Dask cluster's {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("scheduler"), str):
        raise PilotkitError(f"{path}: no scheduler address in it")
    return data
