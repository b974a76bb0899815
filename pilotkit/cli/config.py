"""``pilotkit config``: the site and user configuration files and their profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import SpecError

_CHECK_SPEC = 'name = "profile-check"\n[[app.groups]]\nname = "g"\ncommand = "true"\n'
"""A minimal valid spec: laid over a profile, the problems found are the profile's."""


def check_profile(name: str | None, *, provider: str | None = None) -> dict[str, Any]:
    """A profile's merged tables, under the ``PILOTKIT__...`` variables (None: the
    variables alone); SpecError naming each problem of its values in the file or the
    variable that set it. ``provider``: the provider whose options they are checked as
    when the profile names none (default: the local one)."""
    from ..config import merged_profile_data, site_file, user_file
    from ..config.environment import PREFIX
    from ..spec import parse_spec

    data = merged_profile_data(name)
    check = _CHECK_SPEC
    if provider is not None and "type" not in data.get("provider", {}):
        check += f'[provider]\ntype = "{provider}"\n'
    if "walltime" not in data.get("resources", {}):
        check += '[resources]\nwalltime = "1h"\n'  # a batch provider needs one; specs may set it
    if isinstance(data.get("image"), dict) and "ref" not in data["image"]:
        check += '[image]\nref = "profile-check"\n'  # the image is the spec's to name
    try:
        parse_spec(check, "<profile check>", profile=name)
    except SpecError as exc:
        config_files = {str(site_file()), str(user_file())}
        own = [
            p for p in exc.problems if p.file in config_files or (p.file or "").startswith(f"${PREFIX}")
        ]
        if own:
            raise SpecError(own) from None
    return data


@click.group()
def config() -> None:
    """Site and user configuration: named profiles that specs start from."""


@config.command("show")
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--profile", envvar="PILOTKIT_PROFILE", metavar="NAME", help="The profile (default: the spec's)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(spec: Path | None, profile: str | None, as_json: bool) -> None:
    """Print a profile's merged values, or SPEC's laid over its profile, each with the
    file and line that set it (the spec wins over the user file, which wins over the
    site file). Without either: the files read and the profiles they hold."""
    from ..config import merged_profile, merged_spec, read_configs, site_file, user_file
    from ..spec import load_spec
    from ..specfile.parsing import read_text

    if spec is None and profile is None:
        configs = read_configs()
        files = {str(site_file()): "site", str(user_file()): "user"}
        found = {c.path: sorted(c.profiles) for c in configs}
        if as_json:
            click.echo(json.dumps([{"file": f, "kind": k, "exists": f in found, "profiles": found.get(f, [])}
                                   for f, k in files.items()], indent=2))  # fmt: skip
            return
        for file, kind in files.items():
            names = found.get(file)
            held = ("profiles: " + (", ".join(names) or "none")) if names is not None else "absent"
            click.echo(f"{kind} file {file}: {held}")
        for setting in merged_profile(None):  # the PILOTKIT__... variables, under every spec
            click.echo(f"environment: {setting.format()}")
        return
    if spec is not None:
        load_spec(spec, profile=profile)  # every problem, located, before anything is shown
        settings = merged_spec(read_text(spec), str(spec), profile)
    else:
        assert profile is not None
        check_profile(profile)
        settings = merged_profile(profile)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in settings], indent=2))
        return
    for setting in settings:
        click.echo(setting.format())
