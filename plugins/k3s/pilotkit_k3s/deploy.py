"""``pilotkit deploy --app IMAGE``: a pilot with a k3s app that runs IMAGE across the
allocation, as a Job (runs to its end) or a Deployment (stays up until drained).

It writes the pilot spec and the manifest into a folder (``--out``) and runs that spec
with ``pilotkit run`` (the same command, options and exit codes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import yaml

from pilotkit.api import parse_duration

MANIFEST = "app.yaml"
SPEC = "pilot.toml"


def app_name(image: str) -> str:
    """``daskdev/dask:latest`` -> ``dask``: a DNS-1123 name for the Job or Deployment."""
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    name = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:50]
    return name or "app"


def manifest(image: str, kind: str, replicas: int, gpus: int, command: tuple[str, ...]) -> dict[str, Any]:
    """The Job (``replicas`` pods at once, each to completion) or Deployment of IMAGE."""
    name = app_name(image)
    container: dict[str, Any] = {"name": name, "image": image}
    if command:
        container["command"] = list(command)
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "pilotkit"}
    pod_labels = dict(labels)  # a copy: one YAML object each, no anchors
    gpu_runtime = {"runtimeClassName": "nvidia"} if gpus else {}  # the app's RuntimeClass (nvidia.py)
    if kind == "job":
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "parallelism": replicas,
                "completions": replicas,
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {"restartPolicy": "Never", **gpu_runtime, "containers": [container]},
                },
            },
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": pod_labels}, "spec": {**gpu_runtime, "containers": [container]}},
        },
    }


def _duration(value: str | None, param: click.Parameter) -> str | None:
    """``value`` as written, once it is a duration with a unit (a bare number is minutes to
    sbatch and seconds to pilotkit)."""
    if value is not None:
        try:
            parse_duration(value, require_unit=True)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param=param) from None
    return value


def spec_text(image: str, kind: str, nodes: int, provider: str | None, walltime: str | None) -> str:
    lines = [f'name = "deploy-{app_name(image)}"']
    if provider:
        lines += ["", "[provider]", f'type = "{provider}"']
    resources = [f"nodes = {nodes}"] + ([f'walltime = "{walltime}"'] if walltime else [])
    lines += ["", "[resources]", *resources]
    lines += ["", "[app]", 'type = "k3s"', f'mode = "{"batch" if kind == "job" else "interactive"}"']
    lines += [f'manifests = ["{MANIFEST}"]', ""]
    return "\n".join(lines)


@click.command("deploy", context_settings={"ignore_unknown_options": False})
@click.option("--app", "image", required=True, metavar="IMAGE", help="The container image to run.")
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True, help="Pods at once.")
@click.option("--gpus-per-replica", type=click.IntRange(min=0), default=0, show_default=True,
              help="GPUs each pod asks for (nvidia.com/gpu, runtimeClassName nvidia: the app deploys the NVIDIA device plugin on GPU nodes).")  # fmt: skip
@click.option("--command", "command", multiple=True, metavar="ARG",
              help="The container's command, one --command per word (default: the image's).")  # fmt: skip
@click.option("--kind", type=click.Choice(["job", "deployment"]), default="job", show_default=True,
              help="job: run to completion and end the pilot; deployment: stay up until drained.")  # fmt: skip
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True, help="Nodes of the pilot.")
@click.option(
    "--provider", metavar="TYPE", help="Provider (slurm, local...; default: the profile's, else local)."
)
@click.option(
    "--walltime", metavar="DURATION", callback=lambda ctx, param, value: _duration(value, param),
    help="Walltime of the allocation, with a unit (30m, 2h, 01:30:00).",
)  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Where the spec and manifest go (default: ./pilotkit-deploy/<name>).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Write and print the spec and manifest; run nothing.")
@click.option(
    "--profile", envvar="PILOTKIT_PROFILE", metavar="NAME", help="Profile of the site and user configuration."
)
@click.option(
    "--workdir", type=click.Path(file_okay=False, path_type=Path), help="The pilot's working directory."
)
@click.pass_context
def deploy_command(
    ctx: click.Context,
    image: str,
    replicas: int,
    gpus_per_replica: int,
    command: tuple[str, ...],
    kind: str,
    nodes: int,
    provider: str | None,
    walltime: str | None,
    out: Path | None,
    dry_run: bool,
    profile: str | None,
    workdir: Path | None,
) -> None:
    """Run IMAGE on a k3s cluster made of a pilot's nodes, in one command.

    \b
      pilotkit deploy --app busybox:1.36 --replicas 6 --nodes 3 --provider slurm \\
          --command sh --command -c --command 'hostname; sleep 10'
    """
    folder = out or Path("pilotkit-deploy") / app_name(image)
    folder.mkdir(parents=True, exist_ok=True)
    data = manifest(image, kind, replicas, gpus_per_replica, command)
    (folder / MANIFEST).write_text(yaml.safe_dump(data, sort_keys=False))
    spec = folder / SPEC
    spec.write_text(spec_text(image, kind, nodes, provider, walltime))
    if dry_run:
        click.echo(
            f"# {spec}\n{spec.read_text()}\n# {folder / MANIFEST}\n{(folder / MANIFEST).read_text()}",
            nl=False,
        )
        return
    root = ctx.find_root().command
    assert isinstance(root, click.Group)
    run = root.get_command(ctx, "run")
    if run is None:
        raise click.UsageError("this pilotkit has no 'run' command")
    ctx.invoke(run, spec=spec, workdir=workdir, profile=profile)
