"""The Apptainer (or SingularityCE) runtime: ``apptainer exec [flags] IMAGE ARGV``.

GPUs: ``--nv`` binds the host's driver and every GPU; the task's GPUs are chosen with
``CUDA_VISIBLE_DEVICES`` (UUIDs). With ``nvccli = true`` Apptainer sets the GPUs up with
``nvidia-container-cli`` instead (``--nv --nvccli --contain``): only the GPUs named in
the *host's* ``NVIDIA_VISIBLE_DEVICES`` are bound, so the argv starts with ``env``.

MPI follows the hybrid model: the host's launcher starts one ``apptainer exec`` per rank.
For the bind model, ``mpi_binds`` bind the host's MPI into the image and
``mpi_library_path`` is put in front of ``LD_LIBRARY_PATH``; both apply only to
tasks that ask for MPI.
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

IMAGE_FORMATS = ("sif", "squashfs", "dir", "name")


class ApptainerOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The ``[container]`` keys of ``runtime = "apptainer"``."""

    nv: bool = True
    """``--nv`` for tasks that have GPUs."""
    nvccli: bool = False
    """Set GPUs up with nvidia-container-cli (``--nvccli``, implies ``--contain``)."""
    rocm: bool = False
    """``--rocm``: bind the host's ROCm stack."""
    contain: bool = False
    """``--contain``: a minimal /dev and empty home, tmp and workdir."""
    cleanenv: bool = False
    """``--cleanenv``: start from an empty environment (the task's env still applies)."""
    writable_tmpfs: bool = False
    """``--writable-tmpfs``: a tmpfs overlay so the image looks writable."""
    mpi_binds: list[str] = []
    """Host MPI paths bound for MPI tasks, ``src[:dst[:ro|rw]]``."""
    mpi_library_path: list[str] = []
    """Paths in the image put in front of ``LD_LIBRARY_PATH`` for MPI tasks."""
    extra_args: list[str] = []
    """Passed to ``apptainer exec`` just before the image."""


def parse_version(text: str) -> str:
    """The version in ``apptainer --version`` output (``apptainer version 1.2.5-1.el8``)."""
    return version_in(text)


def bind_spec(bind: Bind) -> str:
    """``src:dst`` or ``src:dst:ro``, as ``--bind`` takes it."""
    return f"{bind.source}:{bind.target}" + (":ro" if bind.readonly else "")


def env_arg(key: str, value: str) -> str:
    """``KEY=VALUE`` for ``--env``, CSV-quoted where Apptainer would split it.

    ``--env`` is a key=value map flag: a value holding both ``=`` and ``,`` would be
    read as several pairs unless the whole pair is quoted.
    """
    text = f"{key}={value}"
    if text.count("=") > 1 and ("," in text or '"' in text):
        text = '"' + text.replace('"', '""') + '"'
    return text


def options_of(value: Any) -> ApptainerOptions:
    """The runtime's options from a spec (a struct, a table or nothing)."""
    if isinstance(value, ApptainerOptions):
        return value
    return msgspec.convert(value or {}, ApptainerOptions)


class ApptainerRuntime(ContainerRuntime):
    """Runs each task with ``apptainer exec`` (or ``singularity exec``)."""

    id = "apptainer"
    binaries = ("apptainer", "singularity")
    description = "Apptainer / SingularityCE: SIF, squashfs or sandbox images, --nv GPUs"
    Options = ApptainerOptions

    _binary: str | None = None

    @property
    def binary(self) -> str:
        """The command name used in argv: the one :meth:`detect` found, else the first."""
        return self._binary or getattr(self, "found_binary", None) or self.binaries[0]

    async def prepare(self, image: StagedImage, ctx: PilotContext) -> StagedImage:
        if image.format not in IMAGE_FORMATS:
            raise PilotkitError(
                f"apptainer cannot run a '{image.format}' image ({image.ref}); "
                f"it runs {', '.join(IMAGE_FORMATS)}"
            )
        return image

    def wrap(self, argv: Sequence[str], ctx: ContainerContext) -> list[str]:
        opts = options_of(ctx.options)
        gpus = ",".join(ctx.gpus)
        prefix: list[str] = []
        flags = ["exec"]
        if ctx.gpus and opts.nvccli:
            prefix = ["env", f"NVIDIA_VISIBLE_DEVICES={gpus}"]
            flags += ["--nv", "--nvccli"]
        elif ctx.gpus and opts.nv:
            flags.append("--nv")
        if opts.rocm:
            flags.append("--rocm")
        if opts.contain or (ctx.gpus and opts.nvccli):
            flags.append("--contain")
        if opts.cleanenv:
            flags.append("--cleanenv")
        if opts.writable_tmpfs:
            flags.append("--writable-tmpfs")
        binds = list(ctx.binds)
        if ctx.mpi:
            binds += [Bind.parse(text) for text in opts.mpi_binds]
        for bind in binds:
            flags += ["--bind", bind_spec(bind)]
        env = {"CUDA_VISIBLE_DEVICES": gpus, "NVIDIA_VISIBLE_DEVICES": gpus} if ctx.gpus else {}
        env.update(ctx.env)
        if ctx.mpi and opts.mpi_library_path:
            paths = [*opts.mpi_library_path, env.get("LD_LIBRARY_PATH", "")]
            env["LD_LIBRARY_PATH"] = ":".join(p for p in paths if p)
        for key, value in env.items():
            flags += ["--env", env_arg(key, value)]
        if ctx.workdir:
            flags += ["--pwd", ctx.workdir]
        flags += opts.extra_args
        return [*prefix, self.binary, *flags, image_arg(ctx.image), *argv]


def image_arg(image: StagedImage) -> str:
    """What ``apptainer exec`` is given: the file or directory, or a ``docker://`` ref."""
    return image.ref if image.format == "name" else str(image.path)
