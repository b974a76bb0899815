"""pilotkit-k3s: ``pilotkit k3s preflight`` says whether a node can run k3s (Kubernetes).

The plugin API is the only part of pilotkit imported here; the Kubernetes client
(``kr8s``) is imported only when a k3s pilot runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotkit.api import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def pilotkit_add_commands(cli: click.Group) -> None:
    from .cli import k3s_group

    cli.add_command(k3s_group)
