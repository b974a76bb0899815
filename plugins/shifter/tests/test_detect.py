"""detect() against stand-in executables, prepare() format checks, registration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit_shifter import ShifterRuntime

from pilotkit.api import MissingBinaryError, PilotkitError, StagedImage
from pilotkit.plugins import Plugins


def fake_shifter(directory: Path, script: str) -> Path:
    path = directory / "shifter"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


async def test_detect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_shifter(tmp_path, "echo 'shifter version 23.05.0'\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    info = await ShifterRuntime().detect()
    assert (info.binary, info.version) == (str(fake), "23.05.0")


async def test_detect_without_a_version_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_shifter(tmp_path, "echo 'Missing an argument!' >&2; exit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert (await ShifterRuntime().detect()).version == "unknown"


async def test_detect_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingBinaryError, match="the shifter container runtime"):
        await ShifterRuntime().detect()


async def test_prepare(tmp_path: Path) -> None:
    for fmt in ("name", "dir"):
        image = StagedImage(ref="x", path=tmp_path, format=fmt)
        assert await ShifterRuntime().prepare(image, None) is image  # type: ignore[arg-type]
    with pytest.raises(PilotkitError, match="shifterimg"):
        await ShifterRuntime().prepare(StagedImage("x", tmp_path, "sif"), None)  # type: ignore[arg-type]


def test_registers_its_runtime() -> None:
    plugins = Plugins().load()
    assert plugins.tables["runtimes"]["shifter"].plugin == "shifter"
    assert plugins.runtime("shifter") is ShifterRuntime
