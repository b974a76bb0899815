"""``pilotkit doctor``: check, in seconds, what a run on this site would need."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys

import click

from ..vocab import ExitCode


@click.command()
@click.option(
    "--profile", envvar="PILOTKIT_PROFILE", metavar="NAME", help="Check the site as this profile sets it."
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also run tiny steps on a compute node (waiting up to 60s for one): the workdir is seen there, the callback address reached.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(profile: str | None, deep: bool, as_json: bool) -> None:
    """Check what a run would need: batch commands answering, the partition and account
    accepted (sbatch --test-only), the workdir on a filesystem the nodes share, the
    callback address reachable from a node (--deep), container runtimes, CVMFS, GPUs,
    cgroup delegation, free disk. Each line is ok, warning or error, with what to do.
    The profile's values are laid under the PILOTKIT__SECTION__KEY variables, as for a
    run (without --profile: the variables alone). Exit 0 without errors, 1 with any, 2
    when a value of the profile or a variable is bad."""
    from .checks import Site, run_checks
    from .config import check_profile

    # Without a provider named, the options are checked as Slurm's where its commands are.
    slurm = "slurm" if shutil.which("sbatch") else None
    site = Site.from_profile(check_profile(profile, provider=slurm))
    checks = asyncio.run(run_checks(site, deep=deep))
    failed = any(c.level == "error" for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": not failed, "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        for check in checks:
            click.echo(check.format())
    sys.exit(ExitCode.FAILED if failed else ExitCode.DONE)
