"""detect() against stand-in executables, prepare() format checks, registration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit_sarus import SarusRuntime
from pilotkit_sarus.runtime import parse_version

from pilotkit.api import MissingBinaryError, PilotkitError, StagedImage
from pilotkit.plugins import Plugins


@pytest.mark.parametrize(
    ("output", "version"),
    [("1.6.3", "1.6.3"), ("sarus version 1.7.0-rc1\n", "1.7.0-rc1"), ("", "unknown")],
)
def test_parse_version(output: str, version: str) -> None:
    assert parse_version(output) == version


async def test_detect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "sarus"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo 1.6.3\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    info = await SarusRuntime().detect()
    assert (info.binary, info.version) == (str(fake), "1.6.3")


async def test_detect_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingBinaryError, match="the sarus container runtime"):
        await SarusRuntime().detect()


async def test_prepare(tmp_path: Path) -> None:
    named = StagedImage(ref="alpine:3.19", path=tmp_path, format="name")
    assert await SarusRuntime().prepare(named, None) is named  # type: ignore[arg-type]
    sif = StagedImage(ref="x.sif", path=tmp_path, format="sif")
    with pytest.raises(PilotkitError, match="sarus"):
        await SarusRuntime().prepare(sif, None)  # type: ignore[arg-type]


def test_registers_its_runtime() -> None:
    plugins = Plugins().load()
    assert plugins.tables["runtimes"]["sarus"].plugin == "sarus"
    assert plugins.runtime("sarus") is SarusRuntime
