"""The options of ``[app] type = "k3s"`` and the checks that need no running cluster."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from pilotkit.api import Duration, SpecProblem, parse_duration

from .archives import SUFFIXES

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec


class Chart(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One Helm chart of ``charts``, installed with ``helm upgrade --install``."""

    name: str
    """The release name."""
    chart: str
    """A chart reference (``repo/name``, ``oci://...``, a URL) or a local chart folder or
    ``.tgz`` (relative to the spec's folder)."""
    values: str | None = None
    """A values file (YAML, relative to the spec's folder)."""
    version: str | None = None
    namespace: str | None = None
    """Default: the app's ``namespace``."""


class K3sOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Options of ``[app] type = "k3s"``.

    Batch mode applies ``manifests`` and ends when every Job in them has finished;
    interactive mode keeps the cluster up (kubeconfig in the pilot's workdir) until the
    pilot drains.
    """

    mode: Literal["batch", "interactive"] = "batch"
    manifests: list[str] = []
    """YAML files (relative to the spec's folder), applied server-side in order."""
    charts: list[Chart] = []
    """Helm charts installed (``helm upgrade --install``, from the machine the pilot runs
    on, with the pilot's kubeconfig) after the manifests; in batch mode their Jobs are
    followed like the manifests'."""
    helm: str = "helm"
    """The ``helm`` executable (a name on PATH, or a path)."""
    helm_timeout: Duration = "300s"
    """How long one ``helm`` command may take."""
    images: list[str] = []
    """Image archives (OCI or docker-archive ``.tar``, relative to the spec's folder)
    imported into containerd on every node as k3s starts, so nodes without internet run
    them (pods name the image with ``imagePullPolicy: IfNotPresent``)."""
    nvidia: bool | None = None
    """On the nodes where pilotkit's NVML probe found GPUs: add the NVIDIA container
    runtime to k3s's containerd, and apply the RuntimeClass ``nvidia`` and the NVIDIA
    device plugin (``nvidia.com/gpu``). Default: when a node has GPUs; false: labels only."""
    nvidia_runtime: str = "nvidia-container-runtime"
    """The NVIDIA container runtime on GPU nodes (a name on PATH, or a path)."""
    device_plugin_image: str = "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
    """The NVIDIA device plugin's image (name an archive of it in ``images`` for nodes
    without internet)."""
    namespace: str = "default"
    """Namespace of manifest objects that name none."""
    binary: str = "k3s"
    """The k3s executable on the nodes (a name on PATH, or a path)."""
    rootless: bool | None = None
    """Run k3s rootless; default: rootful as root, rootless otherwise."""
    preflight: bool = True
    """Check every node (``python -m pilotkit_k3s.preflight``) before starting k3s."""
    data_dir: str | None = None
    """Node-local folder for k3s's data (containerd images, kubelet); default ``/tmp``.
    Everything goes in ``<data_dir>/pilotkit-k3s-<pilot id>/<node>`` and is removed at
    the end."""
    api_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 6443
    disable: list[str] = msgspec.field(default_factory=lambda: ["traefik"])
    """k3s components not to deploy (``--disable``)."""
    server_args: list[str] = []
    agent_args: list[str] = []
    python: str | None = None
    """The interpreter on the nodes for pilotkit's node helper (default: this one)."""
    ready_timeout: Duration = "300s"
    """How long the server and every node get to be Ready."""
    job_timeout: Duration | None = None
    """How long the Jobs may run in all; past it they are stopped."""
    grace: Duration = "30s"
    """Pods' termination grace when the pilot drains or evicts."""
    stop_timeout: Duration = "5s"
    """How long k3s gets to stop on a node before it is killed (then its data is removed).
    On cancel the pool kills what still runs after the pilot's `[pilot] grace` (10 s by
    default): keep this shorter than that, so the cleanup fits."""
    poll_interval: Duration = "1s"
    """How often the API server is asked about nodes and Jobs."""


DURATIONS = ("ready_timeout", "grace", "stop_timeout", "poll_interval", "job_timeout", "helm_timeout")
RELEASE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def check_charts(options: K3sOptions, base_dir: Path) -> list[SpecProblem]:
    """Each chart's release name, local chart and values file, and ``helm`` itself."""
    problems: list[SpecProblem] = []
    if options.charts and shutil.which(options.helm) is None:
        problems.append(
            SpecProblem(
                "app.charts",
                f"no '{options.helm}' on PATH: install Helm (https://helm.sh) where the pilot runs, "
                "or set [app] helm to its path",
            )
        )
    names: set[str] = set()
    for index, chart in enumerate(options.charts):
        key = f"app.charts[{index}]"
        if len(chart.name) > 53 or not RELEASE_NAME.fullmatch(chart.name):
            problems.append(
                SpecProblem(f"{key}.name", f"'{chart.name}': a release name is lowercase letters, digits, '-' and '.', at most 53")
            )
        elif chart.name in names:
            problems.append(SpecProblem(f"{key}.name", f"'{chart.name}' is installed twice"))
        names.add(chart.name)
        local = local_chart(chart.chart, base_dir)
        if local is not None and not local.exists():
            problems.append(SpecProblem(f"{key}.chart", f"no such chart: {local}"))
        if chart.values is not None and not manifest_path(chart.values, base_dir).is_file():
            problems.append(SpecProblem(f"{key}.values", f"no such file: {manifest_path(chart.values, base_dir)}"))
    return problems


def local_chart(chart: str, base_dir: Path) -> Path | None:
    """The local path of a chart given as one (``./chart``, ``/abs/chart.tgz``,
    ``chart.tgz``); None for a repository or OCI reference."""
    if "://" in chart:
        return None
    if chart.startswith((".", "/", "~")) or chart.endswith(".tgz"):
        return manifest_path(chart, base_dir)
    path = manifest_path(chart, base_dir)
    return path if path.exists() else None


def check_options(options: K3sOptions, spec: ResolvedSpec) -> list[SpecProblem]:
    """Problems with the k3s options that show before anything runs."""
    problems: list[SpecProblem] = []
    if options.mode == "batch" and not options.manifests and not options.charts:
        problems.append(
            SpecProblem("app.manifests", 'batch mode needs manifests to apply (or mode = "interactive")')
        )
    problems += check_charts(options, spec.base_dir)
    for index, manifest in enumerate(options.manifests):
        path = manifest_path(manifest, spec.base_dir)
        if not path.is_file():
            problems.append(SpecProblem(f"app.manifests[{index}]", f"no such file: {path}"))
    for index, image in enumerate(options.images):
        path = manifest_path(image, spec.base_dir)
        if not path.is_file():
            problems.append(SpecProblem(f"app.images[{index}]", f"no such file: {path}"))
        elif not path.name.endswith(SUFFIXES):
            problems.append(
                SpecProblem(
                    f"app.images[{index}]", f"{path.name}: not an image archive (.tar, .tar.gz, .tar.zst...)"
                )
            )
    if spec.spec.container is not None:
        problems.append(
            SpecProblem(
                "container",
                "the k3s app runs its pods' images itself: remove [container] "
                "(an [image] that stages an image archive is preloaded into containerd on every node)",
            )
        )
    for key in DURATIONS:
        value = getattr(options, key)
        if value is None:
            continue
        try:
            if parse_duration(value) <= 0 and key != "grace":
                problems.append(SpecProblem(f"app.{key}", "must be more than 0"))
        except ValueError as exc:
            problems.append(SpecProblem(f"app.{key}", str(exc)))
    return problems


def manifest_path(manifest: str, base_dir: Path) -> Path:
    path = Path(manifest).expanduser()
    return path if path.is_absolute() else base_dir / path
