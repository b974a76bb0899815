"""``pilotkit init``: a commented spec to start from, valid as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from ..errors import PilotkitError

APPS = ("tasks", "dask", "mpi", "ray", "jupyter", "k3s")

_HEAD = """\
# A pilot spec written by `pilotkit init`. Check it with `pilotkit validate {file}` and
# run it with `pilotkit run {file}`; the README's "The pilot spec" lists every key.
# Durations need a unit (90s, 10m, 1h30m, 01:30:00); sizes take one (512M, 4GiB).
name = "{name}"
description = "{description}"
"""

_PROFILE = """\
{profile_line}# starts from this profile of the site and user
                                   # configuration (`pilotkit config show --profile {profile}`);
                                   # a value written here wins over the profile's
"""

_RESOURCES = """\

[resources]                        # per node; unset means everything the node has
# nodes = 1
# cores = 4
# memory = "8GiB"
{walltime_line}
"""

_APPS = {
    "tasks": (
        "a parameter scan",
        "30m",
        """\

[pilot]
grace = "10s"                      # between SIGTERM and SIGKILL when tasks are stopped

[app]
type = "tasks"                     # the bag-of-tasks app
retries = 1                        # extra attempts for a failed task

[[app.groups]]
name = "scan"
shell = true                       # run through /bin/sh -c, parameters shell-quoted
command = "echo alpha={alpha} seed={seed} on $(hostname)"
cores = 1                          # per task
time_limit = "5m"                  # SIGTERM past it
[app.groups.grid]                  # one task per point of the cartesian product
alpha = [0.1, 1.0]
seed = [1, 2, 3]
""",
    ),
    "dask": (
        "a Dask cluster for interactive work",
        "1h",
        """\

[pilot]
grace = "5s"
drain_margin = "2m"                # stop starting work this long before the walltime ends

[app]
type = "dask"                      # needs pilotkit-dask
mode = "interactive"               # a scheduler and workers that serve clients until
                                   # drained; `pilotkit dask connect <workdir>` prints the
                                   # address. Or: script = "analysis.py" to run one script.
""",
    ),
    "mpi": (
        "an MPI program",
        "30m",
        """\

[pilot]
grace = "10s"

[app]
type = "mpi"                       # needs pilotkit-mpi
command = "hostname"               # each rank runs it; e.g. "python3 {spec_dir}/prog.py"
ranks_per_node = 2
# launcher = "mpirun"              # one from `pilotkit plugins` (default: auto)
""",
    ),
    "ray": (
        "a Ray cluster for interactive work",
        "1h",
        """\

[pilot]
grace = "10s"
drain_margin = "2m"                # stop starting work this long before the walltime ends

[app]
type = "ray"                       # needs pilotkit-ray
mode = "interactive"               # a Ray head on the first node and Ray on every node,
                                   # with the cores, GPUs and memory found there, until
                                   # drained; `pilotkit ray connect <workdir or id>`
                                   # prints the address. Or: script = "analysis.py"
# object_store_memory = "2GiB"     # per node (default: 30% of its memory)
""",
    ),
    "jupyter": (
        "JupyterLab with a Dask cluster behind its kernels",
        "2h",
        """\

[pilot]
grace = "10s"

[app]
type = "jupyter"                   # needs pilotkit-jupyter
backend = "dask"                   # every kernel gets DASK_SCHEDULER_ADDRESS; or "none"
notebook_dir = "."                 # the server's root, relative to this file
# `pilotkit jupyter open <workdir or id> [--host me@login]` prints the URL with its
# token (through an SSH tunnel with --host); the server stays up until drained.

[app.dask]                         # the options of the dask app for the cluster
nanny = true
""",
    ),
    "k3s": (
        "a short-lived Kubernetes (k3s) cluster",
        "1h",
        """\

[pilot]
grace = "30s"

[app]
type = "k3s"                       # needs pilotkit-k3s, and k3s on every node
mode = "interactive"               # stays up until drained; `pilotkit k3s kubeconfig
                                   # <workdir or id>` prints a kubeconfig for kubectl.
                                   # Or: manifests = ["job.yaml"] to run Jobs to the end
# data_dir = "/tmp"                # node-local: k3s's images and kubelet data, removed
                                   # at the end; `pilotkit k3s preflight` checks a node
""",
    ),
}


def render(app: str, name: str, profile: str | None, file: str) -> str:
    description, walltime, body = _APPS[app]
    text = _HEAD.format(file=file, name=name, description=description)
    if profile:
        text += _PROFILE.format(profile_line=f'profile = "{profile}"'.ljust(35), profile=profile)
        line = f'# walltime = "{walltime}"'.ljust(35) + "# the profile may set it"
    else:
        line = f'walltime = "{walltime}"'
    return text + _RESOURCES.format(walltime_line=line) + body


@click.command()
@click.argument(
    "file", required=False, default="pilot.toml", type=click.Path(dir_okay=False, allow_dash=True)
)
@click.option(
    "--app", type=click.Choice(APPS), default="tasks", show_default=True, help="What the pilot runs."
)
@click.option(
    "--profile", envvar="PILOTKIT_PROFILE", metavar="NAME", help="Start the spec from this profile."
)
@click.option("--name", help="The pilot's name (default: from FILE).")
@click.option("--force", is_flag=True, help="Overwrite FILE.")
def init(file: str, app: str, profile: str | None, name: str | None, force: bool) -> None:
    """Write a commented spec to FILE (default pilot.toml; - for stdout) to start from,
    valid as written."""
    if profile is not None:
        from .config import check_profile

        check_profile(profile)
    stem = Path(file).stem if file != "-" else app
    name = name or (re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or app)
    text = render(app, name, profile, file if file != "-" else "FILE")
    if file == "-":
        sys.stdout.write(text)
        return
    path = Path(file)
    if path.exists() and not force:
        raise PilotkitError(f"{path} exists: pass --force to overwrite it")
    try:
        path.write_text(text)
    except OSError as exc:
        raise PilotkitError(f"cannot write {path}: {exc.strerror or exc}") from None
    click.echo(f"wrote {path}: check it with `pilotkit validate {path}`", err=True)
