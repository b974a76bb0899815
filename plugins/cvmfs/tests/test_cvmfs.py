"""The cvmfs stager against trees laid out in tmp_path, including ones that hang."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pilotkit_cvmfs
import pytest
from pilotkit_cvmfs import CvmfsOptions, CvmfsStager, DockerRef, parse_docker_ref, unpacked_path

from pilotkit.api import PilotContext, PilotkitError, SpecError, Stager
from pilotkit.testing import Plugins, need_optional, parse_spec
from pilotkit.testing.contracts import StagerContract

from .conftest import GROUPS, Tree, plugins_with
from .hungfuse import fuse_problem, hung_mount


class TestContract(StagerContract):
    @pytest.fixture
    def stager_cls(self) -> type[Stager]:
        return CvmfsStager


HUB = "registry.hub.docker.com"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("docker://python", DockerRef(HUB, "library/python", "latest")),
        ("docker://python:3.11", DockerRef(HUB, "library/python", "3.11")),
        ("docker://atlas/athena:22.0", DockerRef(HUB, "atlas/athena", "22.0")),
        ("docker://docker.io/atlas/athena:22.0", DockerRef(HUB, "atlas/athena", "22.0")),
        ("docker://docker.io/python", DockerRef(HUB, "library/python", "latest")),
        ("docker://registry.example/org/name:tag", DockerRef("registry.example", "org/name", "tag")),
        ("docker://gitlab-registry.cern.ch/a/b/c:v1", DockerRef("gitlab-registry.cern.ch", "a/b/c", "v1")),
        ("docker://localhost:5000/name:1", DockerRef("localhost:5000", "name", "1")),
    ],
)
def test_parse(ref: str, expected: DockerRef) -> None:
    assert parse_docker_ref(ref) == expected


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("python:3.11", "not a docker://"),
        ("docker://Python", "not a valid image name"),
        ("docker://org//name", "not a valid image name"),
        ("docker://python:", "not a valid tag"),
        ("docker://python@sha256:" + "0" * 64, "digest references"),
    ],
)
def test_parse_refuses(ref: str, message: str) -> None:
    with pytest.raises(PilotkitError, match=message):
        parse_docker_ref(ref)


def test_unpacked_path() -> None:
    ref = parse_docker_ref("docker://registry.example/org/name:tag")
    assert unpacked_path(ref, Path("/cvmfs/unpacked.cern.ch")) == Path(
        "/cvmfs/unpacked.cern.ch/registry.example/org/name:tag"
    )


def test_chosen_for_docker_refs() -> None:
    plugins = Plugins().load()
    assert plugins.stager_for("docker://python:3.11") is CvmfsStager


def stager(tree: Tree, timeout: float = 5.0) -> CvmfsStager:
    return CvmfsStager(CvmfsOptions(root=str(tree.root), timeout=timeout))


@pytest.mark.parametrize(
    "ref",
    [
        "docker://python:3.11",
        "docker://python",
        "docker://atlas/athena:22.0",
        "docker://gitlab-registry.cern.ch/org/img:v1",
    ],
)
async def test_resolves(tree: Tree, ctx: PilotContext, ref: str) -> None:
    staged = await stager(tree).stage(ref, ctx)
    assert (staged.ref, staged.path, staged.format) == (ref, tree.flat.resolve(), "dir")


async def test_missing_image_names_the_path(tree: Tree, ctx: PilotContext) -> None:
    want = tree.repository / HUB / "library/ubuntu:22.04"
    with pytest.raises(PilotkitError) as info:
        await stager(tree).stage("docker://ubuntu:22.04", ctx)
    assert str(info.value) == f"image docker://ubuntu:22.04 is not on CVMFS: {want} does not exist"


async def test_dangling_link(tree: Tree, ctx: PilotContext) -> None:
    os.symlink("../../.flat/gone", tree.repository / HUB / "library/broken:1")
    with pytest.raises(PilotkitError, match="dangling link"):
        await stager(tree).stage("docker://broken:1", ctx)


async def test_absent_root_fails_fast(tmp_path: Path, ctx: PilotContext) -> None:
    started = time.monotonic()
    with pytest.raises(PilotkitError) as info:
        await CvmfsStager(CvmfsOptions(root=str(tmp_path / "nothing"))).stage("docker://python", ctx)
    assert time.monotonic() - started < 2
    assert str(info.value) == (
        f"CVMFS repository {tmp_path / 'nothing' / 'unpacked.cern.ch'} is not mounted (no such directory)"
    )


@pytest.fixture
def fifo_image(tree: Tree) -> Iterator[Tree]:
    """The image's data file is a FIFO: opening it blocks, as a read from a CVMFS whose
    servers stopped answering does. Afterwards a writer releases the stuck probe."""
    data = tree.flat / "usr/lib/os-release"
    data.unlink()
    os.mkfifo(data)
    yield tree
    try:
        os.close(os.open(data, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


async def test_unresponsive_data_fails_fast(fifo_image: Tree, ctx: PilotContext) -> None:
    started = time.monotonic()
    with pytest.raises(PilotkitError) as info:
        await stager(fifo_image, timeout=1.0).stage("docker://python:3.11", ctx)
    assert 1.0 <= time.monotonic() - started < 3
    assert str(info.value) == f"CVMFS repository {fifo_image.repository} did not answer within 1s"


async def test_hung_repository_fails_fast(tmp_path: Path, ctx: PilotContext) -> None:
    problem = fuse_problem(tmp_path)
    need_optional("FUSE mounts", problem is None, problem or "")
    root = tmp_path / "cvmfs"
    with hung_mount(root / "unpacked.cern.ch"):
        started = time.monotonic()
        with pytest.raises(PilotkitError) as info:
            await CvmfsStager(CvmfsOptions(root=str(root), timeout="1.5s")).stage("docker://python", ctx)
        assert 1.5 <= time.monotonic() - started < 3.5
    assert str(info.value) == f"CVMFS repository {root / 'unpacked.cern.ch'} did not answer within 1.5s"


def test_spec(tmp_path: Path) -> None:
    plugins = plugins_with(pilotkit_cvmfs, "cvmfs")
    text = 'name = "t"\n[image]\nref = "{}"\nroot = "/tmp/cv"\ntimeout = "2s"\n[container]\nruntime = "fake-runtime"\n'
    resolved = parse_spec(text.format("docker://python") + GROUPS, tmp_path / "s.toml", plugins)
    assert resolved.stager_cls is CvmfsStager
    assert resolved.stager_options == CvmfsOptions(root="/tmp/cv", timeout="2s")
    with pytest.raises(SpecError, match=r"image\.ref: 'docker://Bad' is not a valid image name"):
        parse_spec(text.format("docker://Bad") + GROUPS, tmp_path / "s.toml", plugins)
