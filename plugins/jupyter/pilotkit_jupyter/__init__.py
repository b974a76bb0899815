"""pilotkit-jupyter: ``[app] type = "jupyter"`` runs a Jupyter server (JupyterLab when
installed) on a pilot's first node, with a Dask (``backend = "dask"``) or
Ray (``backend = "ray"``) cluster behind its kernels; ``pilotkit jupyter open`` prints its URL, or tunnels to it over SSH.

Heavy imports (``jupyter_server``) happen only on the nodes, in the server's own process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    import click

    from pilotkit.api import Register

    from .app import JupyterApp

__all__ = ["JupyterApp"]


@hookimpl
def pilotkit_register_apps(register: Register[Any]) -> None:
    register.lazy("jupyter", "pilotkit_jupyter.app:JupyterApp")


@hookimpl
def pilotkit_add_commands(cli: click.Group) -> None:
    from .cli import jupyter_group

    cli.add_command(jupyter_group)


__getattr__ = lazy_exports(__name__, {"JupyterApp": "app"})
