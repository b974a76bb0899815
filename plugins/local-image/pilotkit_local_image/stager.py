"""The ``local`` stager: an image already on this machine, checked before use."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import msgspec

from pilotkit.api import Log, PilotContext, PilotkitError, ResolvedSpec, SpecProblem, StagedImage, Stager

from .formats import inspect_image
from .progress import Progress

BLOCK = 4 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")


class LocalImageOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The ``[image]`` keys of ``stager = "local"``."""

    sha256: str | None = None
    """Expected SHA-256 of the image file (hex, ``sha256:`` prefix allowed); checked before use."""


def normalise_sha256(text: str) -> str | None:
    """The 64 lower-case hex digits of ``text`` (``sha256:`` prefix allowed), or None."""
    value = text.strip().lower().removeprefix("sha256:")
    return value if _HEX64.fullmatch(value) else None


def path_of_ref(ref: str, base: Path) -> Path:
    """The absolute path a ``file://`` or plain-path reference names.

    ``file:///abs/image.sif`` and ``/abs/image.sif`` are absolute; a relative path (or
    ``file://rel/image.sif``) is taken from ``base``, the spec file's directory; ``~``
    is expanded.
    """
    text = ref.removeprefix("file://") if ref.startswith("file://") else ref
    if not text:
        raise PilotkitError(f"image reference '{ref}' names no path")
    path = Path(text).expanduser()
    return Path(os.path.abspath(path if path.is_absolute() else base / path))


def sha256_file(path: Path, report: Callable[[int], None] | None = None) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
            done += len(block)
            if report is not None:
                report(done)
    return digest.hexdigest()


def spec_base(ctx: PilotContext) -> Path:
    """The directory relative image paths are taken from."""
    spec = getattr(ctx, "spec", None)
    return spec.base_dir if isinstance(spec, ResolvedSpec) else Path.cwd()


class LocalImageStager(Stager):
    """A SIF/squashfs file or an unpacked directory on this machine.

    It is checked to exist and be readable, its format is found from its magic
    number, and when ``sha256`` is given the file's hash is checked before use.
    """

    id = "local"
    description = "an image already on this machine (SIF, squashfs or directory)"
    schemes: ClassVar[tuple[str, ...]] = ("file",)
    Options = LocalImageOptions

    options: LocalImageOptions

    def __init__(self, options: LocalImageOptions | None = None) -> None:
        super().__init__(options or LocalImageOptions())

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        options = spec.stager_options
        if isinstance(options, LocalImageOptions) and options.sha256 is not None:
            if normalise_sha256(options.sha256) is None:
                return [SpecProblem("image.sha256", "expected 64 hexadecimal digits (optionally 'sha256:...')")]
        return []

    async def stage(self, ref: str, ctx: PilotContext) -> StagedImage:
        path = path_of_ref(ref, spec_base(ctx))
        info = await asyncio.to_thread(inspect_image, path)
        digest = None
        if self.options.sha256 is not None:
            expected = normalise_sha256(self.options.sha256)
            if expected is None:
                raise PilotkitError(f"image.sha256 '{self.options.sha256}' is not a SHA-256 digest")
            if info.format == "dir":
                raise PilotkitError(f"image.sha256 applies to image files; {path} is a directory")
            actual = await self._hash(path, ref, info.size, ctx)
            if actual != expected:
                raise PilotkitError(f"image {path} has sha256 {actual}, expected {expected}: not using it")
            digest = f"sha256:{actual}"
        size = f", {info.size / 1e6:.1f} MB" if info.format != "dir" else ""
        verified = ", sha256 verified" if digest else ""
        ctx.emit(Log(pilot=ctx.pilot_id, level="info", source=self.id,
                     message=f"image {path} ({info.format}{size}{verified})"))
        return StagedImage(ref=ref, path=path, format=info.format, digest=digest)

    async def _hash(self, path: Path, ref: str, size: int, ctx: PilotContext) -> str:
        loop = asyncio.get_running_loop()
        progress = Progress(ctx.emit, ctx.pilot_id, ref, size, "verifying sha256")
        progress.update(0)

        def report(done: int) -> None:
            loop.call_soon_threadsafe(progress.update, done)

        try:
            return await asyncio.to_thread(sha256_file, path, report)
        except OSError as exc:
            raise PilotkitError(f"image {path} cannot be read: {exc.strerror}") from None
