"""pilotkit-dask: ``[app] type = "dask"`` deploys a Dask cluster across a pilot's nodes
(a scheduler on the head node, workers on every node, one per GPU where there are GPUs)
and runs a script on it (batch) or serves clients from outside (interactive);
``pilotkit dask connect`` finds a pilot's scheduler, or tunnels to it over SSH.

Heavy imports (``distributed``) happen only when a Dask pilot runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    import click

    from pilotkit.api import Register

    from .app import DaskApp

__all__ = ["DaskApp"]


@hookimpl
def pilotkit_register_apps(register: Register[Any]) -> None:
    register.lazy("dask", "pilotkit_dask.app:DaskApp")


@hookimpl
def pilotkit_add_commands(cli: click.Group) -> None:
    from .cli import dask_group

    cli.add_command(dask_group)


__getattr__ = lazy_exports(__name__, {"DaskApp": "app"})
