"""The podman-hpc runtime: ``podman-hpc run --rm [flags] IMAGE ARGV``.

podman-hpc (NERSC) wraps podman and adds site modules as flags: ``--gpu`` binds the
NVIDIA driver and devices, ``--mpi`` the host's Cray MPICH (with host IPC, PID and
network). Tasks with GPUs get ``--gpu`` and ``CUDA_VISIBLE_DEVICES`` /
``NVIDIA_VISIBLE_DEVICES`` set to their GPU UUIDs; MPI tasks get ``--mpi``. The
container shares the host network by default so tasks can reach the pilot. An
unpacked directory runs with ``--rootfs``. The image's ENTRYPOINT is cleared so the
task's argv runs as given; ``entrypoint = true`` keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from pilotkit.api import (
    Bind,
    ContainerContext,
    ContainerRuntime,
    PilotContext,
    PilotkitError,
    StagedImage,
    version_in,
)


class PodmanHpcOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The ``[container]`` keys of ``runtime = "podman-hpc"``."""

    gpu: bool = True
    """``--gpu`` for tasks with GPUs."""
    mpi: bool = True
    """``--mpi`` for MPI tasks."""
    network: str | None = "host"
    """``--network``; None keeps podman's default (a private network)."""
    entrypoint: bool = False
    """Keep the image's ENTRYPOINT (the task's argv becomes its arguments)."""
    extra_args: list[str] = []
    """Passed to ``podman-hpc run`` just before the image."""


def parse_version(text: str) -> str:
    """podman's version from ``podman-hpc version`` (``Version:  4.9.4``), else any number."""
    match = re.search(r"^\s*Version:\s*(\S+)", text, re.MULTILINE)
    if match:
        return match.group(1)
    return version_in(text)


def volume_arg(bind: Bind) -> str:
    """``src:dst`` or ``src:dst:ro``, as ``-v`` takes it."""
    return f"{bind.source}:{bind.target}" + (":ro" if bind.readonly else "")


def options_of(value: Any) -> PodmanHpcOptions:
    """The runtime's options from a spec (a struct, a table or nothing)."""
    if isinstance(value, PodmanHpcOptions):
        return value
    return msgspec.convert(value or {}, PodmanHpcOptions)


class PodmanHpcRuntime(ContainerRuntime):
    """Runs each task with ``podman-hpc run --rm``."""

    id = "podman-hpc"
    binaries = ("podman-hpc",)
    description = "podman-hpc (NERSC): rootless podman with --gpu and --mpi site modules"
    Options = PodmanHpcOptions
    version_args = ("version",)
    parse_version = staticmethod(parse_version)

    async def prepare(self, image: StagedImage, ctx: PilotContext) -> StagedImage:
        if image.format not in ("name", "dir"):
            raise PilotkitError(
                f"podman-hpc runs images it holds or unpacked directories, not a "
                f"'{image.format}' file ({image.ref}): pull it with podman-hpc first"
            )
        return image

    def wrap(self, argv: Sequence[str], ctx: ContainerContext) -> list[str]:
        opts = options_of(ctx.options)
        flags = ["run", "--rm"]
        if ctx.gpus and opts.gpu:
            flags.append("--gpu")
        if ctx.mpi and opts.mpi:
            flags.append("--mpi")
        if opts.network:
            flags.append(f"--network={opts.network}")
        for bind in ctx.binds:
            flags += ["-v", volume_arg(bind)]
        gpus = ",".join(ctx.gpus)
        env = {"CUDA_VISIBLE_DEVICES": gpus, "NVIDIA_VISIBLE_DEVICES": gpus} if gpus else {}
        env.update(ctx.env)
        for key, value in env.items():
            flags += ["-e", f"{key}={value}"]
        if ctx.workdir:
            flags += ["-w", ctx.workdir]
        if not opts.entrypoint:
            flags += ["--entrypoint", ""]
        flags += opts.extra_args
        if ctx.image.format == "dir":
            flags.append("--rootfs")
            image = str(ctx.image.path)
        else:
            image = ctx.image.ref
        return [self.binaries[0], *flags, image, *argv]
