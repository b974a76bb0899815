"""The local stager against real files: formats, permissions, sha256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec
import pilotkit_local_image
import pytest
from pilotkit_local_image import LocalImageOptions, LocalImageStager, detect_format, path_of_ref

from pilotkit.api import PilotContext, PilotkitError, SpecError, StageProgress, Stager
from pilotkit.testing import Plugins, parse_spec
from pilotkit.testing.contracts import StagerContract

from .conftest import GROUPS, Recorder, plugins_with

SIF_HEADER = b"#!/usr/bin/env run-singularity\n\x00" + b"SIF_MAGIC\x0001\x00"


def write_sif(path: Path, payload: bytes = b"x" * 1000) -> Path:
    path.write_bytes(SIF_HEADER + payload)
    return path


def write_squashfs(path: Path) -> Path:
    path.write_bytes(b"hsqs" + os.urandom(4096))
    return path


class TestContract(StagerContract):
    @pytest.fixture
    def stager_cls(self) -> type[Stager]:
        return LocalImageStager


def test_detect_format() -> None:
    assert detect_format(SIF_HEADER) == "sif"
    assert detect_format(b"hsqs\x00\x00") == "squashfs"
    assert detect_format(b"\x7fELF" + bytes(60)) is None
    assert detect_format(b"") is None


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("/abs/image.sif", "/abs/image.sif"),
        ("file:///abs/image.sif", "/abs/image.sif"),
        ("images/x.sif", "/base/images/x.sif"),
        ("file://images/../x.sif", "/base/x.sif"),
    ],
)
def test_path_of_ref(ref: str, expected: str) -> None:
    assert path_of_ref(ref, Path("/base")) == Path(expected)


def test_registered_by_scheme() -> None:
    plugins = Plugins().load()
    assert plugins.stager_for("/some/image.sif") is LocalImageStager
    assert plugins.stager_for("file:///some/image.sif") is LocalImageStager


async def test_sif(tmp_path: Path, ctx: PilotContext, events: Recorder) -> None:
    image = write_sif(tmp_path / "img.sif")
    staged = await LocalImageStager().stage(str(image), ctx)
    assert (staged.path, staged.format, staged.digest) == (image, "sif", None)
    assert any("img.sif (sif" in getattr(e, "message", "") for e in events.of("log"))


async def test_squashfs_relative_to_spec(tmp_path: Path, ctx: PilotContext) -> None:
    write_squashfs(tmp_path / "img.sqfs")
    staged = await LocalImageStager().stage("file://img.sqfs", ctx)
    assert (staged.path, staged.format) == (tmp_path / "img.sqfs", "squashfs")


async def test_directory(tmp_path: Path, ctx: PilotContext) -> None:
    (tmp_path / "rootfs" / "bin").mkdir(parents=True)
    staged = await LocalImageStager().stage(str(tmp_path / "rootfs"), ctx)
    assert staged.format == "dir"


async def test_missing(tmp_path: Path, ctx: PilotContext) -> None:
    with pytest.raises(PilotkitError, match=r"image .*nope\.sif does not exist"):
        await LocalImageStager().stage(str(tmp_path / "nope.sif"), ctx)


async def test_not_an_image(tmp_path: Path, ctx: PilotContext) -> None:
    (tmp_path / "x.tar").write_bytes(b"not an image at all" * 10)
    with pytest.raises(PilotkitError, match="neither a SIF nor a squashfs"):
        await LocalImageStager().stage(str(tmp_path / "x.tar"), ctx)


async def test_fifo_is_refused_without_blocking(tmp_path: Path, ctx: PilotContext) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(PilotkitError, match="neither a regular file nor a directory"):
        await LocalImageStager().stage(str(tmp_path / "pipe"), ctx)


async def test_unreadable(tmp_path: Path, ctx: PilotContext) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    image = write_sif(tmp_path / "img.sif")
    image.chmod(0)
    with pytest.raises(PilotkitError, match="not readable"):
        await LocalImageStager().stage(str(image), ctx)


async def test_sha256_verified(tmp_path: Path, ctx: PilotContext, events: Recorder) -> None:
    image = write_sif(tmp_path / "img.sif", os.urandom(9 << 20))
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    stager = LocalImageStager(LocalImageOptions(sha256=f"sha256:{digest.upper()}"))
    staged = await stager.stage(str(image), ctx)
    assert staged.digest == f"sha256:{digest}"
    progress = [e for e in events.of("stage-progress") if isinstance(e, StageProgress)]
    assert progress[0].done == 0 and progress[-1].done == progress[-1].total == image.stat().st_size


async def test_sha256_mismatch_refuses(tmp_path: Path, ctx: PilotContext) -> None:
    image = write_sif(tmp_path / "img.sif")
    stager = LocalImageStager(LocalImageOptions(sha256="0" * 64))
    with pytest.raises(PilotkitError, match=r"expected 0000.*not using it"):
        await stager.stage(str(image), ctx)


async def test_sha256_on_directory(tmp_path: Path, ctx: PilotContext) -> None:
    (tmp_path / "rootfs").mkdir()
    with pytest.raises(PilotkitError, match="is a directory"):
        await LocalImageStager(LocalImageOptions(sha256="0" * 64)).stage(str(tmp_path / "rootfs"), ctx)


def test_spec_options(tmp_path: Path) -> None:
    plugins = plugins_with(pilotkit_local_image, "local-image")
    text = 'name = "t"\n[image]\nref = "/x.sif"\nsha256 = "{}"\n[container]\nruntime = "fake-runtime"\n' + GROUPS
    resolved = parse_spec(text.format("a" * 64), tmp_path / "s.toml", plugins)
    assert resolved.stager_cls is LocalImageStager
    assert resolved.stager_options == LocalImageOptions(sha256="a" * 64)
    with pytest.raises(SpecError, match=r"image\.sha256: expected 64 hexadecimal"):
        parse_spec(text.format("abc"), tmp_path / "s.toml", plugins)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"sha": "x"}, LocalImageOptions)
