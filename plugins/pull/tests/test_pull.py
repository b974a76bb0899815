"""The pull stager with stand-in runtime executables: caching, atomic rename, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pilotkit_pull
import pytest
from pilotkit_pull import PullOptions, PullStager

from pilotkit.api import (
    CommandError,
    Event,
    MissingBinaryError,
    PilotContext,
    SpecError,
    StageProgress,
    Stager,
)
from pilotkit.testing import Plugins
from pilotkit.testing.contracts import StagerContract

from .conftest import plugins_with, spec_with

SIF_HEADER = b"#!/usr/bin/env run-singularity\n\x00SIF_MAGIC\x0001\x00"


class TestContract(StagerContract):
    @pytest.fixture
    def stager_cls(self) -> type[Stager]:
        return PullStager


def test_no_default_scheme() -> None:
    assert PullStager.schemes == ()
    plugins = Plugins().load()
    for ref in ("docker://python", "oras://x/y:1", "library://alpine", "/x.sif"):
        assert plugins.stager_for(ref) is not PullStager


def stand_in(bindir: Path, name: str, body: str) -> Path:
    """An executable ``name`` that logs its argv to ``calls`` and runs ``body``."""
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text(f'#!/bin/sh\necho "$@" >> {bindir}/calls\n{body}\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def bindir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}:/usr/bin:/bin")
    return directory


def fake_apptainer(bindir: Path) -> None:
    header = "".join(f"\\{b:03o}" for b in SIF_HEADER)
    stand_in(bindir, "apptainer", f'[ -e "$3" ] && exit 9\nprintf "{header}" > "$3"')


async def test_apptainer_pull_then_reuse(
    tmp_path: Path, bindir: Path, ctx: PilotContext, events: list[Event]
) -> None:
    fake_apptainer(bindir)
    stager = PullStager(PullOptions(runtime="apptainer", cache=str(tmp_path / "cache")))
    staged = await stager.stage("docker://python:3.11", ctx)
    assert staged.path == tmp_path / "cache/python_3.11.sif" and staged.format == "sif"
    assert staged.path.read_bytes() == SIF_HEADER
    assert os.listdir(tmp_path / "cache") == ["python_3.11.sif"], "the partial file was renamed"
    assert any(isinstance(e, StageProgress) and e.message == "pulling with apptainer" for e in events)
    again = await stager.stage("docker://python:3.11", ctx)
    assert again == staged
    assert len((bindir / "calls").read_text().splitlines()) == 1, "pulled once, then reused"
    await PullStager(PullOptions(runtime="apptainer", cache=str(tmp_path / "cache"), force=True)).stage(
        "docker://python:3.11", ctx
    )
    assert len((bindir / "calls").read_text().splitlines()) == 2


async def test_falls_back_to_singularity(tmp_path: Path, bindir: Path, ctx: PilotContext) -> None:
    fake_apptainer(bindir)
    (bindir / "apptainer").rename(bindir / "singularity")
    staged = await PullStager(PullOptions(cache=str(tmp_path / "c"))).stage("docker://alpine", ctx)
    assert staged.path.read_bytes() == SIF_HEADER


async def test_failed_pull_leaves_nothing(tmp_path: Path, bindir: Path, ctx: PilotContext) -> None:
    stand_in(bindir, "apptainer", 'echo partial > "$3"; echo "FATAL: no such image" >&2; exit 255')
    cache = tmp_path / "cache"
    with pytest.raises(CommandError) as info:
        await PullStager(PullOptions(runtime="apptainer", cache=str(cache))).stage("docker://nope:1", ctx)
    assert str(info.value) == "'apptainer' exited with 255: FATAL: no such image"
    assert os.listdir(cache) == []


@pytest.mark.parametrize(
    ("runtime", "binary"),
    [("apptainer", "apptainer"), ("sarus", "sarus"), ("shifter", "shifterimg"), ("podman-hpc", "podman-hpc")],
)
async def test_missing_binary_is_one_line(
    runtime: str, binary: str, tmp_path: Path, bindir: Path, ctx: PilotContext
) -> None:
    stager = PullStager(PullOptions(runtime=runtime, cache=str(tmp_path / "c") if runtime == "apptainer" else None))  # type: ignore[arg-type]
    with pytest.raises(MissingBinaryError) as info:
        await stager.stage("docker://python:3.11", ctx)
    assert info.value.binary == binary
    assert str(info.value) == f"'{binary}' not found on PATH (needed for pulling images with {runtime})"


@pytest.mark.parametrize(
    ("runtime", "binary", "image"),
    [
        ("sarus", "sarus", "docker://python:3.11"),
        ("shifter", "shifterimg", "docker:python:3.11"),
        ("podman-hpc", "podman-hpc", "docker.io/library/python:3.11"),
    ],
)
async def test_named_images(runtime: str, binary: str, image: str, bindir: Path, ctx: PilotContext) -> None:
    stand_in(bindir, binary, "exit 0")
    staged = await PullStager(PullOptions(runtime=runtime)).stage("docker://python:3.11", ctx)  # type: ignore[arg-type]
    assert (staged.ref, staged.format) == (image, "name")
    assert (bindir / "calls").read_text().split() == ["pull", image.removeprefix("docker://")]


async def test_runtime_follows_the_container_section(tmp_path: Path, bindir: Path) -> None:
    stand_in(bindir, "podman-hpc", "exit 0")
    plugins = plugins_with(pilotkit_pull, "pull")
    spec = spec_with('[image]\nref = "docker://alpine"\nstager = "pull"\n[container]\nruntime = "podman-hpc"\n',
                     tmp_path, plugins)
    assert spec.stager_cls is PullStager
    ctx = PilotContext("p", spec, tmp_path, lambda event: None)
    staged = await PullStager(spec.stager_options).stage("docker://alpine", ctx)
    assert staged.ref == "docker.io/library/alpine"


@pytest.mark.parametrize(
    ("image", "container", "message"),
    [
        ('runtime = "sarus"', "apptainer", "images pulled with sarus are held by sarus"),
        ('runtime = "sarus"\ncache = "/x"', "sarus", "image.cache: sarus keeps pulled images itself"),
        ("", "shifter", "image.ref: shifter pulls docker:// images"),
    ],
)
def test_spec_problems(image: str, container: str, message: str, tmp_path: Path) -> None:
    plugins = plugins_with(pilotkit_pull, "pull")
    ref = "library://x" if container == "shifter" else "docker://x"
    text = f'[image]\nref = "{ref}"\nstager = "pull"\n{image}\n[container]\nruntime = "{container}"\n'
    with pytest.raises(SpecError, match=message):
        spec_with(text, tmp_path, plugins)
