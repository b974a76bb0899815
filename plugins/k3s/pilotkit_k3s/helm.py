"""Helm charts (``charts``): installed with ``helm upgrade --install`` from the machine the
pilot runs on, with the pilot's kubeconfig; the objects of each release (``helm get
manifest``) come back as references, so batch mode follows their Jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pilotkit.api import CommandError, MissingBinaryError, PilotkitError, parse_duration, run_command

from .cluster import K3sCluster
from .kube import ObjectRef
from .options import Chart, local_chart, manifest_path


def helm_argv(cluster: K3sCluster, chart: Chart, base_dir: Path) -> list[str]:
    """``helm upgrade --install`` of one chart."""
    options = cluster.options
    namespace = chart.namespace or options.namespace
    local = local_chart(chart.chart, base_dir)
    argv = [options.helm, "upgrade", "--install", chart.name, str(local or chart.chart)]
    argv += ["--namespace", namespace, "--create-namespace", "--kubeconfig", str(cluster.kubeconfig)]
    if chart.version:
        argv += ["--version", chart.version]
    if chart.values:
        argv += ["--values", str(manifest_path(chart.values, base_dir))]
    return argv


async def install_charts(cluster: K3sCluster, base_dir: Path) -> list[ObjectRef]:
    """Install every chart in order; the objects of their releases."""
    import yaml

    options = cluster.options
    timeout = parse_duration(options.helm_timeout)
    refs: list[ObjectRef] = []
    for index, chart in enumerate(options.charts):
        namespace = chart.namespace or options.namespace
        where = f"app.charts[{index}]"
        try:
            await run_command(helm_argv(cluster, chart, base_dir), timeout=timeout, purpose="installing Helm charts")
            shown = await run_command(
                [options.helm, "get", "manifest", chart.name, "--namespace", namespace,
                 "--kubeconfig", str(cluster.kubeconfig)],
                timeout=timeout,
                purpose="installing Helm charts",
            )  # fmt: skip
        except MissingBinaryError:
            raise PilotkitError(f"{where}: no '{options.helm}' on PATH: install Helm (https://helm.sh)") from None
        except CommandError as exc:
            raise PilotkitError(f"{where}: helm could not install '{chart.chart}': {exc}") from None
        try:
            documents = [d for d in yaml.safe_load_all(shown.stdout) if isinstance(d, dict)]
        except yaml.YAMLError as exc:
            raise PilotkitError(f"{where}: cannot read the manifest of release '{chart.name}': {exc}") from None
        release = [_ref(d, namespace) for d in documents if "kind" in d and "apiVersion" in d]
        refs += release
        kinds = ", ".join(f"{r.kind}/{r.name}" for r in release)
        cluster.say("info", f"installed Helm chart {chart.chart} as '{chart.name}': {kinds or 'no objects'}")
    return refs


def _ref(document: dict[str, Any], namespace: str) -> ObjectRef:
    meta = document.get("metadata") or {}
    return ObjectRef(document["kind"], str(meta.get("name", "")), meta.get("namespace") or namespace,
                     document["apiVersion"])  # fmt: skip
