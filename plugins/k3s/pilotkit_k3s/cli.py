"""``pilotkit k3s``: whether this node can run k3s (``preflight``), and a pilot's
kubeconfig, here or through an SSH tunnel (``kubeconfig``)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click
import msgspec

from pilotkit.api import tunnel_options

from .preflight import EXIT_MISSING, render, run_checks


@click.group("k3s")
def k3s_group() -> None:
    """k3s (Kubernetes) clusters of pilots that run ``[app] type = "k3s"``."""


@k3s_group.command("preflight")
@click.option(
    "--rootless/--rootful",
    default=None,
    help="Check for this mode (default: rootful as root, else rootless).",
)
@click.option("--binary", default="k3s", show_default=True, help="The k3s executable to look for.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def preflight_command(rootless: bool | None, binary: str, as_json: bool) -> None:
    """Check whether this node can run k3s: cgroups, delegated controllers, newuidmap,
    user namespaces, /dev/fuse, kernel modules, the k3s binary. Names each missing thing
    and what to ask the site for; exit 2 when something is missing."""
    report = run_checks(rootless, binary)
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
    else:
        click.echo(render(report))
    if report.missing:
        sys.exit(EXIT_MISSING)


@k3s_group.command("kubeconfig")
@click.argument("pilot")
@tunnel_options(
    "The pilot runs there: read its kubeconfig over SSH and forward a local port to the "
    "API server (stays in the foreground until Ctrl-C)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the kubeconfig here (mode 0600).",
)
def kubeconfig_command(
    pilot: str, host: str | None, ssh_config: str | None, local_port: int, output: str | None
) -> None:
    """Print the kubeconfig of PILOT's k3s cluster (PILOT: its working directory, or its
    id when a pilotkit daemon runs it).

    \b
    From a laptop, through the login node:
      pilotkit k3s kubeconfig --host me@login -o kc.yaml /scratch/me/runs/k8s-1 &
      KUBECONFIG=kc.yaml kubectl get nodes
    """
    from .tunnel import local_kubeconfig, tunnel

    if host is None:
        _emit(asyncio.run(local_kubeconfig(pilot)), output)
        return
    asyncio.run(tunnel(pilot, host, ssh_config, local_port, lambda text: _emit(text, output)))


def _emit(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        sys.stdout.flush()
        return
    path = Path(output).expanduser()
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
