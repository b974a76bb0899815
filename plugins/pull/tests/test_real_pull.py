"""Against a real Apptainer, where one is installed (never on CI machines)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pilotkit_pull import PullOptions, PullStager

from pilotkit.api import CommandError, PilotContext
from pilotkit.testing import need_optional


async def test_apptainer_pull_busybox(tmp_path: Path, ctx: PilotContext) -> None:
    found = shutil.which("apptainer") or shutil.which("singularity")
    need_optional("Apptainer", found is not None, "'apptainer' or 'singularity' not on PATH")
    stager = PullStager(PullOptions(runtime="apptainer", cache=str(tmp_path / "images"), timeout="10m"))
    try:
        staged = await stager.stage("docker://busybox:1.36", ctx)
    except CommandError as exc:
        pytest.skip(f"image not reachable here: {exc}")
    assert staged.format == "sif"
    assert staged.path.read_bytes()[32:41] == b"SIF_MAGIC"
