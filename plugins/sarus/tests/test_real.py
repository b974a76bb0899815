"""Against a real Sarus, where one is installed (never on CI machines)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pilotkit_sarus import SarusRuntime

from pilotkit.api import Bind, ContainerContext, StagedImage
from pilotkit.testing import need_optional

IMAGE = "alpine:latest"


@pytest.fixture
def runtime() -> SarusRuntime:
    need_optional("Sarus", shutil.which("sarus") is not None, "'sarus' not on PATH")
    return SarusRuntime()


async def test_detect_real(runtime: SarusRuntime) -> None:
    assert (await runtime.detect()).version != "unknown"


async def test_runs_an_image_sarus_holds(runtime: SarusRuntime, tmp_path: Path) -> None:
    images = subprocess.run(["sarus", "images"], capture_output=True, text=True, timeout=120)
    need_optional(f"the Sarus image {IMAGE}", "alpine" in images.stdout, "pull it with 'sarus pull'")
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
