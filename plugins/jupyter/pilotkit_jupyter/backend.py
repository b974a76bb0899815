"""The cluster behind the kernels, borrowed from another app through the plugin manager.

``backend = "dask"`` runs the ``dask`` app (the pilotkit-dask plugin), ``backend = "ray"``
the ``ray`` app (pilotkit-ray), in interactive mode, side by side with the server, on the
same pilot: this plugin imports none of their code. Each app publishes its addresses in its
documented connection file in the working directory (``dask.json``, ``ray.json``), which is
read from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from pilotkit.api import App, PilotkitError, SpecProblem, get_plugins

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec


@dataclass(frozen=True)
class Backend:
    """What this plugin knows of a borrowed app: its id, where it publishes its addresses,
    which key there the kernels need, and how to install it."""

    name: str
    title: str
    connection_file: str
    address_key: str
    install: str


BACKENDS = {
    "dask": Backend("dask", "Dask", "dask.json", "scheduler", "pip install 'pilotkit-jupyter[dask]'"),
    "ray": Backend("ray", "Ray", "ray.json", "address", "pip install 'pilotkit-jupyter[ray]'"),
}
DASK_CONNECTION_FILE = BACKENDS["dask"].connection_file
"""Where the Dask app publishes its scheduler (its documented connection file)."""


class _WithOptions:
    """A spec seen with other app options (what the borrowed app's checks read)."""

    def __init__(self, spec: ResolvedSpec, options: Any) -> None:
        self._spec = spec
        self.app_options = options

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)


def backend_app_class(name: str) -> type[App]:
    """The registered app ``name``; a one-line error when its plugin is not installed."""
    try:
        return get_plugins().app(name)
    except PilotkitError:
        raise PilotkitError(f'backend = "{name}" needs the {BACKENDS[name].title} app: {BACKENDS[name].install}') from None


def backend_options(name: str, table: dict[str, Any]) -> tuple[type[App], Any]:
    """The app and its typed options for an interactive cluster."""
    cls = backend_app_class(name)
    try:
        options = msgspec.convert({**table, "mode": "interactive"}, cls.Options)
    except msgspec.ValidationError as exc:
        raise PilotkitError(str(exc)) from None
    return cls, options


def check_backend(name: str, table: dict[str, Any], spec: ResolvedSpec) -> list[SpecProblem]:
    """The borrowed app's own problems with ``[app.NAME]``, located under ``app.NAME``."""
    try:
        cls, options = backend_options(name, table)
    except PilotkitError as exc:
        message = str(exc)
        where = f"app.{name}" if table else "app.backend"
        if " - at `$." in message:  # msgspec: "Expected ... - at `$.key`"
            text, _, key = message.partition(" - at `$.")
            return [SpecProblem(f"app.{name}.{key.rstrip('`')}", text)]
        return [SpecProblem(where, message)]
    problems = cls.check(_WithOptions(spec, options))  # type: ignore[arg-type,unused-ignore]
    return [SpecProblem(_under(name, p.key), p.message, suggestion=p.suggestion) for p in problems]


def check_dask(table: dict[str, Any], spec: ResolvedSpec) -> list[SpecProblem]:
    """The Dask app's own problems with ``[app.dask]``, located under ``app.dask``."""
    return check_backend("dask", table, spec)


def _under(name: str, key: str) -> str:
    """``app.threads`` of the Dask app is ``app.dask.threads`` in a Jupyter spec."""
    return f"app.{name}" + key[len("app") :] if key == "app" or key.startswith("app.") else key


def make_backend_app(name: str, table: dict[str, Any], spec: Any) -> App:
    """An interactive ``name`` app for this pilot, with the options of ``[app.NAME]``."""
    cls, options = backend_options(name, table)
    return cls(spec, options)


def make_dask_app(table: dict[str, Any], spec: Any) -> App:
    """An interactive Dask app for this pilot, with the options of ``[app.dask]``."""
    return make_backend_app("dask", table, spec)


def read_connection(name: str, workdir: Path) -> dict[str, Any]:
    """The borrowed app's connection file as it wrote it (``dask.json``: ``scheduler``,
    ``dashboard``...; ``ray.json``: ``address``, ``client``, ``dashboard``...)."""
    backend = BACKENDS[name]
    path = workdir / backend.connection_file
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PilotkitError(f"cannot read the {backend.title} cluster's {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get(backend.address_key), str):
        raise PilotkitError(f"{path}: no {backend.address_key} address in it")
    return data


def read_dask_connection(workdir: Path) -> dict[str, Any]:
    """``<workdir>/dask.json`` as the Dask app wrote it (``scheduler``, ``dashboard``...)."""
    return read_connection("dask", workdir)
