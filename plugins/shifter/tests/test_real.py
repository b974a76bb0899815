"""Against a real Shifter, where one is installed (never on CI machines)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pilotkit_shifter import ShifterRuntime

from pilotkit.api import Bind, ContainerContext, StagedImage
from pilotkit.testing import need_optional

IMAGE = "docker:alpine:latest"


@pytest.fixture
def runtime() -> ShifterRuntime:
    need_optional("Shifter", shutil.which("shifter") is not None, "'shifter' not on PATH")
    return ShifterRuntime()


async def test_detect_real(runtime: ShifterRuntime) -> None:
    info = await runtime.detect()
    assert info.binary.endswith("shifter")


async def test_runs_a_gateway_image(runtime: ShifterRuntime, tmp_path: Path) -> None:
    images = subprocess.run(["shifterimg", "images"], capture_output=True, text=True, timeout=120)
    need_optional(f"the Shifter image {IMAGE}", "alpine" in images.stdout, "pull it with 'shifterimg pull'")
    (tmp_path / "in.txt").write_text("hello\n")
    ctx = ContainerContext(
        image=StagedImage(ref=IMAGE, path=Path("."), format="name"),
        binds=(Bind(str(tmp_path), "/mnt/data", True),),
        env={"X": "42"},
        workdir="/mnt/data",
    )
    done = subprocess.run(
        runtime.wrap(["sh", "-c", 'cat in.txt; echo "$X"; exit 3'], ctx),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.split() == ["hello", "42"]
