"""An example third-party pilotkit plugin (see ``share/docs/plugins.md``).

- provider ``example-fork``: pretend nodes, one pilotkit node agent process per node on
  this machine, reached the way a batch provider reaches real nodes;
- app ``example-sweep``: one task per value of a list, and a ``sweep.json`` summary.

It imports nothing of pilotkit but :mod:`pilotkit.api`.
"""

from __future__ import annotations

from pilotkit.api import App, Provider, Register, hookimpl

from .app import SweepApp, SweepOptions
from .provider import ForkOptions, ForkProvider

__all__ = ["ForkOptions", "ForkProvider", "SweepApp", "SweepOptions"]


@hookimpl
def pilotkit_register_providers(register: Register[Provider]) -> None:
    register(ForkProvider)


@hookimpl
def pilotkit_register_apps(register: Register[App]) -> None:
    register(SweepApp)
