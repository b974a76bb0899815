"""pilotkit-ray: ``[app] type = "ray"`` deploys a Ray cluster across a pilot's nodes
(the head on the first node, one Ray node per allocation node with the cores, memory
and GPUs its agent found) and runs a script on it (batch) or serves clients from
outside (interactive); ``pilotkit ray connect`` finds a pilot's Ray cluster, or
tunnels to it over SSH.

Ray itself is imported only on the nodes, never in the pilot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    import click

    from pilotkit.api import Register

    from .app import RayApp

__all__ = ["RayApp"]


@hookimpl
def pilotkit_register_apps(register: Register[Any]) -> None:
    register.lazy("ray", "pilotkit_ray.app:RayApp")


@hookimpl
def pilotkit_add_commands(cli: click.Group) -> None:
    from .cli import ray_group

    cli.add_command(ray_group)


__getattr__ = lazy_exports(__name__, {"RayApp": "app"})
