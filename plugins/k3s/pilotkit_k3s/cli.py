"""``pilotkit k3s``: whether this node can run k3s, and a pilot's kubeconfig."""

from __future__ import annotations

import sys

import click
import msgspec

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
