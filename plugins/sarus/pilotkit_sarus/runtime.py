"""The Sarus runtime: ``sarus run [flags] IMAGE ARGV``.

Images are Sarus's own (pulled or loaded beforehand), named as ``sarus images`` lists
them. GPUs go through Sarus's NVIDIA Container Toolkit hook, which reads
``CUDA_VISIBLE_DEVICES`` from the *host* environment of ``sarus``: the argv starts with
``env CUDA_VISIBLE_DEVICES=<uuids>``. MPI tasks get ``--mpi`` (the native MPICH hook,
optionally chosen with ``mpi_type``). The image's ENTRYPOINT is cleared so the task's
argv runs as given, as with the other runtimes; ``entrypoint = true`` keeps it.
"""

from __future__ import annotations

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


class SarusOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The ``[container]`` keys of ``runtime = "sarus"``."""

    mpi: bool = True
    """``--mpi`` for MPI tasks (the native MPI hook)."""
    mpi_type: str | None = None
    """``--mpi-type``: which configured MPI hook to use."""
    entrypoint: bool = False
    """Keep the image's ENTRYPOINT (the task's argv becomes its arguments)."""
    extra_args: list[str] = []
    """Passed to ``sarus run`` just before the image."""


def parse_version(text: str) -> str:
    """The version in ``sarus --version`` output (``1.6.3``)."""
    return version_in(text)


def mount_arg(bind: Bind) -> str:
    """``--mount=type=bind,source=...,destination=...[,readonly]``."""
    text = f"--mount=type=bind,source={bind.source},destination={bind.target}"
    return text + (",readonly" if bind.readonly else "")


def options_of(value: Any) -> SarusOptions:
    """The runtime's options from a spec (a struct, a table or nothing)."""
    if isinstance(value, SarusOptions):
        return value
    return msgspec.convert(value or {}, SarusOptions)


class SarusRuntime(ContainerRuntime):
    """Runs each task with ``sarus run``."""

    id = "sarus"
    binaries = ("sarus",)
    description = "Sarus (CSCS): OCI images with native MPI and NVIDIA GPU hooks"
    Options = SarusOptions

    async def prepare(self, image: StagedImage, ctx: PilotContext) -> StagedImage:
        if image.format != "name":
            raise PilotkitError(
                f"sarus runs images from its own repository, not a '{image.format}' file "
                f"({image.ref}): pull or load it with sarus first"
            )
        return image

    def wrap(self, argv: Sequence[str], ctx: ContainerContext) -> list[str]:
        opts = options_of(ctx.options)
        prefix = ["env", "CUDA_VISIBLE_DEVICES=" + ",".join(ctx.gpus)] if ctx.gpus else []
        flags = ["run"]
        if ctx.mpi and opts.mpi:
            flags.append("--mpi")
            if opts.mpi_type:
                flags.append(f"--mpi-type={opts.mpi_type}")
        flags += [mount_arg(bind) for bind in ctx.binds]
        flags += [f"--env={key}={value}" for key, value in ctx.env.items()]
        if ctx.workdir:
            flags.append(f"--workdir={ctx.workdir}")
        if not opts.entrypoint:
            flags += ["--entrypoint", ""]
        flags += opts.extra_args
        image = ctx.image.ref.removeprefix("docker://")
        return [*prefix, self.binaries[0], *flags, image, *argv]
