"""The plain OCI runtime: runc on an unpacked root filesystem.

``prepare`` writes the image's OCI bundle, ``STATE/config.json`` with the image
directory as its read-only root, keeps that base config in memory, and runs one
container from it to check that runc works here (see :mod:`pilotkit_oci.probe`).

A task's argv, environment, working directory and binds differ from task to task, and
a runc bundle is a directory, so ``wrap`` cannot return a plain runc command line.
It merges the task into the base config itself (no I/O: ``wrap`` stays a pure function
of its arguments and of what ``prepare`` left in memory) and returns the argv of a
small wrapper, :mod:`pilotkit_oci.run`, that carries the task's complete config. Run,
the wrapper writes it to a fresh bundle under a unique container id and then *becomes*
``runc run`` (exec), so the task's exit status and signals pass through runc unchanged;
a janitor it forks removes the bundle (and the container, if runc was killed) once
runc has gone. Nothing the wrapper needs lives in ``STATE`` but the bundles it writes,
so another node only needs the same paths to runc and to the image.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotkit.api import (
    ContainerContext,
    ContainerRuntime,
    Log,
    MissingBinaryError,
    PilotContext,
    PilotkitError,
    RuntimeInfo,
    StagedImage,
    run_command,
)

from . import probe, run
from .config import Host, apply_overlay, base_config, task_overlay
from .options import OciOptions, options_of

PURPOSE = "the oci container runtime"
WRAPPER = Path(run.__file__).resolve()
"""Run as a file with ``-I -S``, not with ``-m``: that would import pilotkit first."""

log = logging.getLogger("pilotkit.oci")


@dataclass
class Prepared:
    """What ``prepare`` left for ``wrap``: the base config and where runc keeps things."""

    config: dict[str, Any]
    runc: str
    root: str
    """runc's state directory (``--root``)."""
    bundles: str
    """Where the wrapper writes per-task bundles."""
    run_args: list[str]
    options: OciOptions
    """The spec's options, for tasks whose context carries none."""


def parse_version(text: str) -> str:
    """The version in ``runc --version`` output (``runc version 1.1.5+ds1``)."""
    match = re.search(r"version\s+(\S+)", text)
    if match:
        return match.group(1)
    match = re.search(r"\d+(?:\.\d+)+\S*", text)
    return match.group(0) if match else "unknown"


class OciRuntime(ContainerRuntime):
    """Runs each task with runc, in a bundle of its own made from the image's base config."""

    id = "oci"
    binaries = ("runc",)
    description = "runc on an unpacked image directory (read-only root, host network)"
    Options = OciOptions

    rlimits_supported: bool | None
    """What the probe found: False where runc may not set rlimits (they were dropped)."""

    def __init__(self) -> None:
        self.rlimits_supported = None
        self._runc: str | None = None
        self._prepared: dict[str, Prepared] = {}

    async def detect(self) -> RuntimeInfo:
        path = shutil.which(self.binaries[0])
        if path is None:
            raise MissingBinaryError(self.binaries[0], PURPOSE)
        done = await run_command([path, "--version"], timeout=30, purpose=PURPOSE)
        self._runc = path
        return RuntimeInfo(binary=path, version=parse_version(done.stdout))

    async def prepare(self, image: StagedImage, ctx: PilotContext) -> StagedImage:
        """Write the base bundle for ``image``, and probe runc with it once."""
        opts = options_of(getattr(ctx.spec, "runtime_options", None))
        rootfs = rootfs_of(image)
        if self._runc is None:
            await self.detect()
        assert self._runc is not None
        state = Path(opts.state_dir) if opts.state_dir else ctx.workdir / "oci" / bundle_name(image)
        root = Path(opts.root) if opts.root else state / "runc"
        for path in (root, state / "bundles"):
            path.mkdir(parents=True, exist_ok=True)
        host = host_of(rootfs, opts)
        try:
            config = base_config(rootfs, opts, host, rlimits=self.rlimits_supported is not False)
        except ValueError as exc:
            raise PilotkitError(f"oci runtime: {exc}") from None
        prepared = StagedImage(ref=image.ref, path=state, format="oci-bundle", digest=image.digest)
        self._prepared[str(state)] = Prepared(
            config, self._runc, str(root), str(state / "bundles"), opts.extra_args, opts
        )
        write_config(state, config)
        probe_argv = self.wrap(probe.PROBE_ARGV, ContainerContext(image=prepared, options=opts))
        result = await probe.probe(probe_argv)
        if result.rlimits_refused and "rlimits" in config["process"]:
            self.rlimits_supported = False
            del config["process"]["rlimits"]
            write_config(state, config)
            message = "runc may not set rlimits here (no CAP_SYS_RESOURCE): tasks keep the pilot's limits"
            log.warning(message)
            ctx.emit(Log(pilot=ctx.pilot_id, level="warning", message=message, source="oci"))
            result = await probe.probe(
                self.wrap(probe.PROBE_ARGV, ContainerContext(image=prepared, options=opts))
            )
        elif result.ok and "rlimits" in config["process"]:
            self.rlimits_supported = True
        if not result.ok:
            raise PilotkitError(f"runc cannot start a container from {rootfs}: {result.detail}")
        return prepared

    def prepared(self, image: StagedImage, options: OciOptions | None = None) -> Prepared:
        """What :meth:`prepare` left for ``image`` (the image it returned).

        A directory image that never went through ``prepare`` (as in the contract tests)
        still gets a config: the defaults, without host files, and with rlimits only if
        a probe has shown that runc may set them; runc is then found on ``PATH`` and
        bundles go under ``$TMPDIR/pilotkit-oci-<uid>``.
        """
        found = self._prepared.get(str(image.path)) if image.format == "oci-bundle" else None
        if found is not None:
            return found
        if image.format != "dir":
            raise ValueError(
                f"oci runtime: image '{image.ref}' has not been through this runtime's prepare()"
            )
        opts = options or OciOptions()
        host = Host(uid=os.geteuid(), gid=os.getegid())
        config = base_config(
            Path(os.path.abspath(image.path)), opts, host, rlimits=self.rlimits_supported is True
        )
        state = Path(os.environ.get("TMPDIR") or "/tmp") / f"pilotkit-oci-{host.uid}"
        root = opts.root or str(state / "runc")
        return Prepared(config, self._runc or "runc", root, str(state / "bundles"), opts.extra_args, opts)

    def wrap(self, argv: Sequence[str], ctx: ContainerContext) -> list[str]:
        """The wrapper's argv for one task (see :mod:`pilotkit_oci.run`)."""
        opts = None if ctx.options is None else options_of(ctx.options)
        prepared = self.prepared(ctx.image, opts)
        opts = opts or prepared.options
        config = apply_overlay(copy.deepcopy(prepared.config), task_overlay(argv, ctx, opts))
        return [
            sys.executable, "-I", "-S", str(WRAPPER),
            "--runc", prepared.runc,
            "--root", prepared.root,
            "--bundles", prepared.bundles,
            "--config", json.dumps(config, separators=(",", ":")),
            *(["--", *prepared.run_args] if prepared.run_args else []),
        ]  # fmt: skip


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
