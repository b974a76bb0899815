"""The Shifter runtime: ``shifter --image=TYPE:TAG [flags] -- ARGV``.

Images come from Shifter's image gateway (``docker:repo:tag``, ``id:...``), or are an
unpacked directory (``local:/path``, where the site allows it). GPU and MPI support are
Shifter modules: tasks with GPUs get the ``gpu`` module, MPI tasks the ``mpich`` module
(both names configurable), added to ``modules``. Shifter activates GPU support from
``CUDA_VISIBLE_DEVICES`` in the *host* environment, so GPU tasks start with
``env CUDA_VISIBLE_DEVICES=<uuids> NVIDIA_VISIBLE_DEVICES=<uuids>``; Shifter passes the
calling environment into the container.
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

IMAGE_TYPES = ("docker", "id", "local", "custom")


class ShifterOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The ``[container]`` keys of ``runtime = "shifter"``."""

    modules: list[str] = []
    """Shifter modules for every task (``--module``)."""
    gpu_module: str = "gpu"
    """Module added for tasks with GPUs ("" for none)."""
    mpi_module: str = "mpich"
    """Module added for MPI tasks ("" for none)."""
    extra_args: list[str] = []
    """Passed to ``shifter`` just before ``--``."""


def parse_version(text: str) -> str:
    """The version in ``shifter --version`` output, or ``unknown`` (older Shifters have none)."""
    return version_in(text)


def image_spec(image: StagedImage) -> str:
    """``--image`` value: ``local:/path`` for a directory, else the ref with a type."""
    if image.format == "dir":
        return f"local:{image.path}"
    if image.ref.startswith("docker://"):
        return "docker:" + image.ref.removeprefix("docker://")
    kind = image.ref.split(":", 1)[0]
    return image.ref if kind in IMAGE_TYPES and ":" in image.ref else f"docker:{image.ref}"


def volume_arg(bind: Bind) -> str:
    """``--volume=src:dst`` or ``--volume=src:dst:ro``."""
    return f"--volume={bind.source}:{bind.target}" + (":ro" if bind.readonly else "")


def options_of(value: Any) -> ShifterOptions:
    """The runtime's options from a spec (a struct, a table or nothing)."""
    if isinstance(value, ShifterOptions):
        return value
    return msgspec.convert(value or {}, ShifterOptions)


class ShifterRuntime(ContainerRuntime):
    """Runs each task with ``shifter``."""

    id = "shifter"
    binaries = ("shifter",)
    description = "Shifter (NERSC): gateway images, gpu and mpich modules"
    Options = ShifterOptions
    version_must_succeed = False  # older Shifters have no --version

    async def prepare(self, image: StagedImage, ctx: PilotContext) -> StagedImage:
        if image.format not in ("name", "dir"):
            raise PilotkitError(
                f"shifter runs gateway images or directories, not a '{image.format}' file "
                f"({image.ref}): pull it with shifterimg first"
            )
        return image

    def wrap(self, argv: Sequence[str], ctx: ContainerContext) -> list[str]:
        opts = options_of(ctx.options)
        gpus = ",".join(ctx.gpus)
        prefix = ["env", f"CUDA_VISIBLE_DEVICES={gpus}", f"NVIDIA_VISIBLE_DEVICES={gpus}"] if gpus else []
        modules = list(opts.modules)
        if ctx.gpus and opts.gpu_module:
            modules.append(opts.gpu_module)
        if ctx.mpi and opts.mpi_module:
            modules.append(opts.mpi_module)
        flags = [f"--image={image_spec(ctx.image)}"]
        flags += [volume_arg(bind) for bind in ctx.binds]
        if modules:
            flags.append("--module=" + ",".join(dict.fromkeys(modules)))
        if ctx.workdir:
            flags.append(f"--workdir={ctx.workdir}")
        flags += [f"--env={key}={value}" for key, value in ctx.env.items()]
        flags += opts.extra_args
        return [*prefix, self.binaries[0], *flags, "--", *argv]
