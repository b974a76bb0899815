"""Against a real Apptainer, where one is installed (never on CI machines)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pilotkit_apptainer import ApptainerRuntime

from pilotkit.api import Bind, ContainerContext, StagedImage
from pilotkit.testing import need_optional


@pytest.fixture
def runtime() -> ApptainerRuntime:
    found = shutil.which("apptainer") or shutil.which("singularity")
    need_optional("Apptainer", found is not None, "'apptainer' or 'singularity' not on PATH")
    return ApptainerRuntime()


async def test_detect_real(runtime: ApptainerRuntime) -> None:
    info = await runtime.detect()
    assert info.version != "unknown"


async def test_runs_a_busybox_image(runtime: ApptainerRuntime, tmp_path: Path) -> None:
    await runtime.detect()
    (tmp_path / "in.txt").write_text("hello\n")
    image = StagedImage(ref="docker://busybox:1.36", path=Path("."), format="name")
    ctx = ContainerContext(
        image=image, binds=(Bind(str(tmp_path), "/data", True),), env={"X": "42"}, workdir="/data"
    )
    argv = runtime.wrap(["sh", "-c", 'cat in.txt; echo "$X"; exit 3'], ctx)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if "FATAL" in done.stderr and "pull" in done.stderr:
        pytest.skip(f"image not reachable here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 3, done.stderr
    assert done.stdout.split() == ["hello", "42"]
