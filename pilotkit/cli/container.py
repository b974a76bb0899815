"""``pilotkit container run``: a one-task pilot with the defaults filled in."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from ..errors import PilotkitError
from ..vocab import attempt_log

ARCHITECTURES = ("cpu", "nvidia-gpu")
RUNTIME_PREFERENCE = ("apptainer", "sarus", "shifter", "podman-hpc", "oci")


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pilotkit"


def load_site(name: str) -> dict[str, Any]:
    """A site profile: ``$XDG_CONFIG_HOME/pilotkit/sites/NAME.toml`` (provider, resources,
    image stager and container runtime defaults for one HPC centre)."""
    path = Path(name) if name.endswith(".toml") else config_dir() / "sites" / f"{name}.toml"
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PilotkitError(f"--site: no site profile {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PilotkitError(f"--site: {path} is not valid TOML: {exc}") from None


def pick_runtime(available: list[str]) -> str:
    """The first installed runtime plugin whose binary is on PATH."""
    from ..plugins import get_plugins

    plugins = get_plugins()
    for ident in RUNTIME_PREFERENCE + tuple(sorted(available)):
        entry = plugins.tables["runtimes"].get(ident)
        if entry is None:
            continue
        binaries = entry.attr("binaries") or (ident,)
        if any(shutil.which(b) for b in binaries):
            return ident
    raise PilotkitError(
        "no container runtime found: install one of "
        + ", ".join(RUNTIME_PREFERENCE)
        + " (and its pilotkit plugin), or name one with --runtime"
    )


def build_spec(
    image: str, command: str, architecture: str, runtime: str | None, binds: tuple[str, ...],
    site: dict[str, Any], gpus: int,
) -> dict[str, Any]:  # fmt: skip
    from ..plugins import get_plugins

    spec: dict[str, Any] = {"name": "container"}
    for key in ("provider", "resources", "pilot", "env"):
        if key in site:
            spec[key] = dict(site[key])
    resources = spec.setdefault("resources", {})
    if architecture == "nvidia-gpu":
        resources["gpus"] = max(gpus, int(resources.get("gpus") or 0))
    spec["image"] = {"ref": image, **site.get("image", {})}
    container = {**site.get("container", {})}
    if runtime:
        container["runtime"] = runtime
    container.setdefault("runtime", pick_runtime(list(get_plugins().tables["runtimes"])))
    container["binds"] = [*container.get("binds", []), *binds]
    spec["container"] = container
    group = {"name": "exec", "shell": True, "commands": [command.replace("{", "{{").replace("}", "}}")]}
    if architecture == "nvidia-gpu":
        group["gpus"] = gpus
    spec["app"] = {"type": "tasks", "groups": [group]}
    return spec


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for a generated spec (tables, arrays of tables, scalars, lists)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    out = "\n".join(lines)
    for key, value in tables:
        name = f"{prefix}{key}"
        if isinstance(value, list):
            for item in value:
                out = out.rstrip("\n") + f"\n\n[[{name}]]\n" + to_toml(item, name + ".")
        else:
            out = out.rstrip("\n") + f"\n\n[{name}]\n" + to_toml(value, name + ".")
    return out.strip() + "\n"


@click.group()
def container() -> None:
    """Run commands in container images."""


@container.command("run")
@click.option("--image", required=True, help="Image reference: docker://org/name:tag, a .sif path, sync:///path...")
@click.option("--exec", "command", required=True, help="The command to run in the image (a shell line).")
@click.option("--architecture", type=click.Choice(ARCHITECTURES), default="cpu", show_default=True,
              help="nvidia-gpu asks for GPUs and passes them into the container.")  # fmt: skip
@click.option("--gpus", type=int, default=1, show_default=True, help="GPUs for nvidia-gpu.")
@click.option("--runtime", help="Container runtime plugin (default: the first installed one found).")
@click.option("--bind", "binds", multiple=True, help="src[:dst[:ro]], repeatable.")
@click.option("--site", help="A site profile: $XDG_CONFIG_HOME/pilotkit/sites/NAME.toml, or a .toml path.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Where the output goes.")
@click.option("--json", "as_json", is_flag=True, help="Stream events as JSON lines.")
@click.option("--print-spec", is_flag=True, help="Print the generated pilot spec and exit.")
def container_run(
    image: str, command: str, architecture: str, gpus: int, runtime: str | None, binds: tuple[str, ...],
    site: str | None, workdir: Path | None, as_json: bool, print_spec: bool,
) -> None:  # fmt: skip
    """A one-task pilot that runs COMMAND in IMAGE, with defaults filled in.

    \b
      pilotkit container run --image docker://rootproject/root:6.30.04 \\
          --exec 'root -b -q analysis.C' --architecture nvidia-gpu --site mysite
    """
    from .run import run_pilot

    profile = load_site(site) if site else {}
    spec = build_spec(image, command, architecture, runtime, binds, profile, gpus)
    text = to_toml(spec)
    if print_spec:
        click.echo(text, nl=False)
        return
    from ..pilot import new_pilot_id
    from ..rundir import earlier_run

    local = image.removeprefix("file://")
    if "://" not in local and not Path(local).exists():
        raise PilotkitError(f"--image: {image} does not exist")
    pilot_id = new_pilot_id("container")
    workdir = (workdir or Path("pilotkit-runs") / pilot_id).absolute()
    if earlier_run(workdir):
        raise PilotkitError(f"--workdir: {workdir} holds an earlier run: choose another directory")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "spec.toml"
    path.write_text(text)
    code = run_pilot(path, as_json=as_json, workdir=workdir, quiet=True, pilot_id=pilot_id)
    out = attempt_log(workdir, "exec-0", 1, "out")
    if not as_json and out.exists():
        click.echo(f"output: {out}", err=True)
        click.echo(f"errors: {out.with_suffix('.err')}", err=True)
        sys.stdout.write(out.read_text())
    sys.exit(code)
