"""``[app] type = "k3s"``: a short-lived k3s (Kubernetes) cluster across the pilot's nodes.

- **batch** (``manifests``): the manifests are applied (server-side) once every node is
  Ready; the pilot ends when every Job in them has ended, each Job a task result with its
  exit code and its pods' logs.
- **interactive**: the cluster stays up (``<workdir>/kubeconfig``, ``<workdir>/k3s.json``)
  until the pilot drains, reaches its walltime or is cancelled.

Either way the end drains the nodes (pods get their termination grace), stops k3s and
removes its data directories, mounts and network interfaces from every node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from pilotkit.api import App, AppContext, PilotkitError, SpecProblem, unless_draining

from .archives import archive_suffix
from .kube import KubeApi, load_manifests
from .options import K3sOptions, check_options, manifest_path

T = TypeVar("T")


class K3sApp(App):
    """Runs a k3s server on the first node and k3s agents on the others."""

    id = "k3s"
    Options = K3sOptions
    runs_images = True
    """The spec's ``[image]`` (an image archive) is preloaded into containerd."""
    description = "a k3s (Kubernetes) cluster across the nodes: run Jobs from manifests, or serve kubectl"

    @classmethod
    def check(cls, spec: Any) -> list[SpecProblem]:
        options: K3sOptions = spec.app_options
        return check_options(options, spec)

    def make_api(self, kubeconfig: Path) -> KubeApi:
        """The Kubernetes client the app uses (kr8s, with the pilot's kubeconfig)."""
        from .kr8s_api import Kr8sApi

        return Kr8sApi(kubeconfig)

    def load(self) -> list[dict[str, Any]]:
        options: K3sOptions = self.options
        objects: list[dict[str, Any]] = []
        for index, manifest in enumerate(options.manifests):
            objects += load_manifests(manifest_path(manifest, self.spec.base_dir), f"app.manifests[{index}]")
        return objects

    async def stage_image(self, ctx: AppContext) -> Path | None:
        """The spec's ``[image]``, staged by its stager: an image archive (OCI or
        docker-archive tar) to preload on every node; None without ``[image]``."""
        section = self.spec.spec.image
        if section is None or self.spec.stager_cls is None:
            return None
        stager = self.spec.stager_cls(self.spec.stager_options)
        image = await stager.stage(section.ref, ctx.pilot)
        try:
            suffix = await asyncio.to_thread(archive_suffix, image.path)
        except OSError as exc:
            raise PilotkitError(f"image.ref: cannot read the staged image {image.path}: {exc.strerror or exc}") from None
        if suffix is None:
            raise PilotkitError(
                f"image.ref: '{section.ref}' was staged as {image.format} ({image.path}), not an image archive "
                "(an OCI or docker-archive tar) that k3s can import into containerd"
            )
        return image.path.resolve()

    async def run(self, ctx: AppContext) -> None:
        from .cluster import K3sCluster
        from .jobs import apply_all, run_jobs

        options: K3sOptions = self.options
        objects = await asyncio.to_thread(self.load)  # a bad manifest fails before k3s starts
        images = [manifest_path(image, self.spec.base_dir).resolve() for image in options.images]
        staged = await self.stage_image(ctx)
        if staged is not None:
            images.append(staged)
        cluster = K3sCluster(ctx, options, self.make_api, images)
        try:
            if not await unless_draining(ctx, cluster.start()):
                return
            ctx.running()
            supervisor = asyncio.ensure_future(cluster.supervise())
            try:
                refs = await apply_all(cluster, objects) if objects else []
                if options.charts:
                    from .helm import install_charts

                    refs += await _first(install_charts(cluster, self.spec.base_dir), supervisor)
                if options.mode == "batch":
                    await _first(run_jobs(cluster, refs), supervisor)
                else:
                    cluster.say(
                        "info",
                        f"k3s cluster up until drained; KUBECONFIG={cluster.kubeconfig} kubectl get nodes",
                    )
                    await _first(ctx.draining.wait(), supervisor)
            finally:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
        finally:
            await cluster.shutdown()


async def _first(main: Awaitable[T], watcher: asyncio.Future[None]) -> T:
    """Wait for ``main``; if ``watcher`` ends first (it raised), raise its error."""
    work: asyncio.Future[T] = asyncio.ensure_future(main)
    pending: set[asyncio.Future[Any]] = {work, watcher}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if not work.done() and watcher.done() and watcher.exception() is not None:
            watcher.result()
        return await work
    finally:
        work.cancel()
