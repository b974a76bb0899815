"""``pilotkit timeline PILOT`` and ``pilotkit nodes PILOT``: which task ran where and
when, and each node as it is now (the daemon's ``timeline`` and ``nodes``)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import click

from ..timeline import nodes_lines, timeline_lines
from .daemon_commands import _echo_json, connection_options, with_client

if TYPE_CHECKING:
    from ..client import Client


@click.command()
@click.argument("pilot")
@click.option("--width", type=click.IntRange(10, 400), default=60, show_default=True, help="Columns of each bar.")
@click.option("--tasks", "with_tasks", is_flag=True, help="List each attempt under its node.")
@click.option("--min-gap", type=float, default=1.0, show_default=True, help="Seconds: shorter idle periods are not gaps.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20_000, show_default=True,
              help="The latest attempts read (the count says how many there are).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the daemon's timeline result).")
@connection_options
@with_client
async def timeline(client: Client, pilot: str, width: int, with_tasks: bool, min_gap: float, limit: int,
                   as_json: bool) -> None:
    """Which task ran on which node and when: a bar per node (blank where it ran nothing),
    how busy each node was and its idle gaps."""
    r = await client.timeline(pilot, min_gap=min_gap, limit=limit)
    if as_json:
        _echo_json(r)
        return
    for line in timeline_lines(r, width, tasks=with_tasks):
        click.echo(line)


@click.command()
@click.argument("pilot")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the daemon's nodes result).")
@connection_options
@with_client
async def nodes(client: Client, pilot: str, as_json: bool) -> None:
    """Each node of a pilot now: cores (free), memory, load, GPUs with the tasks on them,
    the tasks running there."""
    r = await client.nodes(pilot)
    if as_json:
        _echo_json(r)
        return
    for line in nodes_lines(r, shutil.get_terminal_size().columns):
        click.echo(line)
