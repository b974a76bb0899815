"""Against a real podman-hpc, where one is installed (never on CI machines)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pilotkit_podman_hpc import PodmanHpcRuntime

from pilotkit.api import Bind, ContainerContext, StagedImage
from pilotkit.testing import need_optional

IMAGE = "docker.io/library/alpine:latest"


@pytest.fixture
def runtime() -> PodmanHpcRuntime:
    need_optional("podman-hpc", shutil.which("podman-hpc") is not None, "'podman-hpc' not on PATH")
    return PodmanHpcRuntime()


async def test_detect_real(runtime: PodmanHpcRuntime) -> None:
    assert (await runtime.detect()).version != "unknown"


async def test_runs_an_image(runtime: PodmanHpcRuntime, tmp_path: Path) -> None:
    images = subprocess.run(["podman-hpc", "images"], capture_output=True, text=True, timeout=120)
    need_optional(f"the image {IMAGE}", "alpine" in images.stdout, "pull it with 'podman-hpc pull'")
    (tmp_path / "in.txt").write_text("hello\n")
    ctx = ContainerContext(
        image=StagedImage(ref=IMAGE, path=Path("."), format="name"),
        binds=(Bind(str(tmp_path), "/data", True),),
        env={"X": "42"},
        workdir="/data",
    )
    done = subprocess.run(
        runtime.wrap(["sh", "-c", 'cat in.txt; echo "$X"; exit 3'], ctx),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.split() == ["hello", "42"]
