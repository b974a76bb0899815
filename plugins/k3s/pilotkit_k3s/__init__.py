"""pilotkit-k3s: ``[app] type = "k3s"`` turns a pilot's nodes into a short-lived k3s
(Kubernetes) cluster: a server on the first node, agents on the others; it runs the Jobs
of Kubernetes manifests to their end (batch) or stays up for kubectl (interactive).
``pilotkit k3s preflight`` says whether a node can run k3s; ``pilotkit probe`` shows the
same checks.

The plugin API is the only part of pilotkit imported here; the Kubernetes client
(``kr8s``) is imported only when a k3s pilot runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilotkit.api import hookimpl, lazy_exports

if TYPE_CHECKING:
    import click

    from pilotkit.api import ProbeCheck, Register

    from .app import K3sApp

__all__ = ["K3sApp"]


@hookimpl
def pilotkit_register_apps(register: Register[Any]) -> None:
    register.lazy("k3s", "pilotkit_k3s.app:K3sApp")


@hookimpl
def pilotkit_add_commands(cli: click.Group) -> None:
    from .cli import k3s_group
    from .deploy import deploy_command

    cli.add_command(k3s_group)
    cli.add_command(deploy_command)


@hookimpl
def pilotkit_probe_checks() -> list[ProbeCheck]:
    from .preflight import probe_checks

    return probe_checks()


__getattr__ = lazy_exports(__name__, {"K3sApp": "app"})
