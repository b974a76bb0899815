"""The plain OCI runtime: runc on an unpacked root filesystem.

``prepare`` turns the image directory into an OCI bundle, ``DIR/config.json``, with the
image as its read-only root, and checks by running a container once that runc works
here (see :mod:`pilotkit_oci.probe`). A task's argv, environment, working directory and
binds differ from task to task, so ``wrap`` does not return a runc command line: it
returns the argv of a small wrapper, :mod:`pilotkit_oci.run`, given the bundle directory
and the task's part of the config as JSON. The wrapper writes the task's own bundle
under a unique container id and then *becomes* ``runc run`` (exec), so the task's exit
status and signals pass through runc unchanged; a janitor it forks removes the bundle
(and the container, if runc was killed) when runc has gone.

``wrap`` stays a pure function of its arguments; all writing happens in the wrapper.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pilotkit.errors import MissingBinaryError, PilotkitError
from pilotkit.events import Log
from pilotkit.interfaces import ContainerContext, ContainerRuntime, PilotContext, RuntimeInfo, StagedImage
from pilotkit.proc import run_command

from . import probe, run
from .config import Host, base_config, task_overlay
from .options import OciOptions, options_of

PURPOSE = "the oci container runtime"
WRAPPER = Path(run.__file__).resolve()
"""Run as a file (``python -I -S``), not as ``-m``: that would import pilotkit first."""

log = logging.getLogger("pilotkit.oci")


def parse_version(text: str) -> str:
    """The version in ``runc --version`` output (``runc version 1.1.5+ds1``)."""
    match = re.search(r"version\s+(\S+)", text) or re.search(r"\d+(?:\.\d+)+\S*", text)
    if match is None:
        return "unknown"
    return match.group(1) if match.re.groups else match.group(0)


class OciRuntime(ContainerRuntime):
    """Runs each task with runc, in its own bundle derived from the image's base bundle."""

    id = "oci"
    binaries = ("runc",)
    description = "runc on an unpacked image directory (read-only root, host network)"
    Options = OciOptions

    _runc: str | None = None
    rlimits_supported: bool | None = None
    """What the probe found: False when runc could not set rlimits here (and they were dropped)."""

    async def detect(self) -> RuntimeInfo:
        path = shutil.which(self.binaries[0])
        if path is None:
            raise MissingBinaryError(self.binaries[0], PURPOSE)
        done = await run_command([path, "--version"], timeout=30, purpose=PURPOSE)
        self._runc = path
        return RuntimeInfo(binary=path, version=parse_version(done.stdout))

    async def prepare(self, image: StagedImage, ctx: PilotContext) -> StagedImage:
        """Write the base bundle for ``image`` and probe runc with it once."""
        opts = options_of(getattr(ctx.spec, "runtime_options", None))
        rootfs = rootfs_of(image)
        if self._runc is None:
            await self.detect()
        assert self._runc is not None
        state = Path(opts.state_dir) if opts.state_dir else ctx.workdir / "oci" / bundle_name(image)
        meta: dict[str, Any] = {
            "runc": self._runc,
            "root": str(Path(opts.root) if opts.root else state / "runc"),
            "bundles": str(state / "bundles"),
            "run_args": list(opts.extra_args),
        }
        for key in ("root", "bundles"):
            Path(meta[key]).mkdir(parents=True, exist_ok=True)
        (state / run.META).write_text(json.dumps(meta, indent=1))
        host = host_of(rootfs, opts)
        try:
            config = base_config(rootfs, opts, host, rlimits=self.rlimits_supported is not False)
        except ValueError as exc:
            raise PilotkitError(f"oci runtime: {exc}") from None
        write_config(state, config)
        prepared = StagedImage(ref=image.ref, path=state, format="oci-bundle", digest=image.digest)
        probe_argv = self.wrap(probe.PROBE_ARGV, ContainerContext(image=prepared))
        result = await probe.probe(probe_argv)
        if result.rlimits_refused and "rlimits" in config["process"]:
            self.rlimits_supported = False
            del config["process"]["rlimits"]
            write_config(state, config)
            message = "runc may not set rlimits here (no CAP_SYS_RESOURCE): tasks keep the pilot's limits"
            log.warning(message)
            ctx.emit(Log(pilot=ctx.pilot_id, level="warning", message=message, source="oci"))
            result = await probe.probe(probe_argv)
        elif result.ok and "rlimits" in config["process"]:
            self.rlimits_supported = True
        if not result.ok:
            raise PilotkitError(f"runc cannot start a container from {rootfs}: {result.detail}")
        return prepared

    def wrap(self, argv: Sequence[str], ctx: ContainerContext) -> list[str]:
        """The wrapper's argv for one task (see :mod:`pilotkit_oci.run`)."""
        if ctx.image.format != "oci-bundle" or not ctx.image.path.is_absolute():
            raise ValueError(f"oci runtime: image '{ctx.image.ref}' has not been through prepare()")
        overlay = task_overlay(argv, ctx, options_of(ctx.options))
        task = json.dumps(overlay, separators=(",", ":"))
        return [
            sys.executable,
            "-I",
            "-S",
            str(WRAPPER),
            "--bundle-base",
            str(ctx.image.path),
            "--task",
            task,
        ]


def rootfs_of(image: StagedImage) -> Path:
    """The image's root filesystem: the directory itself, or a bundle's ``root.path``."""
    if image.format == "dir":
        rootfs = image.path
    elif image.format == "oci-bundle":
        config = json.loads((image.path / "config.json").read_text())
        rootfs = image.path / config.get("root", {}).get("path", "rootfs")
    else:
        raise PilotkitError(f"the oci runtime runs image directories, not '{image.format}' ({image.ref})")
    if not (rootfs.is_dir() and rootfs.is_absolute()):
        raise PilotkitError(f"the image's root filesystem {rootfs} is not a directory's absolute path")
    return rootfs


def host_of(rootfs: Path, opts: OciOptions) -> Host:
    """Who runs runc, and which host files and mount points the image has."""
    files = tuple(f for f in opts.host_files if Path(f).is_file() and (rootfs / f.lstrip("/")).is_file())
    return Host(uid=os.geteuid(), gid=os.getegid(), host_files=files, tmp=(rootfs / "tmp").is_dir())


def bundle_name(image: StagedImage) -> str:
    """A readable, unique directory name for an image's bundle."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", image.ref).strip("-.")[-40:] or "image"
    digest = hashlib.sha256(f"{image.ref}\0{image.path}".encode()).hexdigest()[:10]
    return f"{stem}-{digest}"


def write_config(state: Path, config: dict[str, Any]) -> None:
    (state / "config.json").write_text(json.dumps(config, indent=1))
