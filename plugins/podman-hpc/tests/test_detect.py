"""detect() against stand-in executables, prepare() format checks, registration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit_podman_hpc import PodmanHpcRuntime
from pilotkit_podman_hpc.runtime import parse_version

from pilotkit.api import MissingBinaryError, PilotkitError, StagedImage
from pilotkit.plugins import Plugins

PODMAN_VERSION = """Client:       Podman Engine
Version:      4.9.4-rhel
API Version:  4.9.4-rhel
Go Version:   go1.21.9
"""


def test_parse_version() -> None:
    assert parse_version(PODMAN_VERSION) == "4.9.4-rhel"
    assert parse_version("podman version 4.3.1") == "4.3.1"
    assert parse_version("") == "unknown"


async def test_detect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "podman-hpc"
    fake.write_text(f'#!/bin/sh\n[ "$1" = version ] && cat <<"EOF"\n{PODMAN_VERSION}EOF\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    info = await PodmanHpcRuntime().detect()
    assert (info.binary, info.version) == (str(fake), "4.9.4-rhel")


async def test_detect_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingBinaryError, match="the podman-hpc container runtime"):
        await PodmanHpcRuntime().detect()


async def test_prepare(tmp_path: Path) -> None:
    for fmt in ("name", "dir"):
        image = StagedImage(ref="x", path=tmp_path, format=fmt)
        assert await PodmanHpcRuntime().prepare(image, None) is image  # type: ignore[arg-type]
    with pytest.raises(PilotkitError, match="podman-hpc"):
        await PodmanHpcRuntime().prepare(StagedImage("x", tmp_path, "sif"), None)  # type: ignore[arg-type]


def test_registers_its_runtime() -> None:
    plugins = Plugins().load()
    assert plugins.tables["runtimes"]["podman-hpc"].plugin == "podman-hpc"
    assert plugins.runtime("podman-hpc") is PodmanHpcRuntime
