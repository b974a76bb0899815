"""detect() against stand-in executables, prepare() format checks, registration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pilotkit_apptainer import ApptainerRuntime
from pilotkit_apptainer.runtime import parse_version

from pilotkit.api import MissingBinaryError, PilotkitError, StagedImage
from pilotkit.plugins import Plugins


def fake_binary(directory: Path, name: str, output: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("apptainer version 1.2.5-1.el8", "1.2.5-1.el8"),
        ("singularity-ce version 3.11.4", "3.11.4"),
        ("singularity version 3.8.7-1.el7", "3.8.7-1.el7"),
        ("something else", "unknown"),
    ],
)
def test_parse_version(output: str, version: str) -> None:
    assert parse_version(output) == version


async def test_detect_prefers_apptainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_binary(tmp_path, "apptainer", "apptainer version 1.3.0")
    fake_binary(tmp_path, "singularity", "singularity-ce version 4.1.0")
    monkeypatch.setenv("PATH", str(tmp_path))
    info = await ApptainerRuntime().detect()
    assert (info.binary, info.version) == (str(tmp_path / "apptainer"), "1.3.0")


async def test_detect_falls_back_to_singularity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_binary(tmp_path, "singularity", "singularity-ce version 4.1.0")
    monkeypatch.setenv("PATH", str(tmp_path))
    runtime = ApptainerRuntime()
    info = await runtime.detect()
    assert info.version == "4.1.0"
    assert runtime.binary == "singularity"


async def test_detect_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingBinaryError) as err:
        await ApptainerRuntime().detect()
    assert err.value.binary == "apptainer"
    assert "the apptainer container runtime" in str(err.value)


async def test_prepare_accepts_runnable_formats(tmp_path: Path) -> None:
    for fmt in ("sif", "squashfs", "dir", "name"):
        image = StagedImage(ref="x", path=tmp_path, format=fmt)
        assert await ApptainerRuntime().prepare(image, None) is image  # type: ignore[arg-type]


async def test_prepare_rejects_oci_bundle(tmp_path: Path) -> None:
    image = StagedImage(ref="x", path=tmp_path, format="oci-bundle")
    with pytest.raises(PilotkitError, match="oci-bundle"):
        await ApptainerRuntime().prepare(image, None)  # type: ignore[arg-type]


def test_registers_its_runtime() -> None:
    plugins = Plugins().load()
    assert plugins.tables["runtimes"]["apptainer"].plugin == "apptainer"
    assert plugins.runtime("apptainer") is ApptainerRuntime
    assert ApptainerRuntime.id == "apptainer"
    assert os.sep not in ApptainerRuntime.id
