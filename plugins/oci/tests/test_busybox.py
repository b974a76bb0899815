"""The busybox test image."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pilotkit_oci.busybox import BUSYBOX, build_busybox_rootfs, is_static

from pilotkit.api import PilotkitError
from pilotkit.testing import need


@pytest.fixture
def busybox() -> Path:
    need("busybox-static", BUSYBOX.is_file(), f"{BUSYBOX} missing: apt-get install busybox-static")
    return BUSYBOX


def test_layout(busybox: Path, tmp_path: Path) -> None:
    root = build_busybox_rootfs(tmp_path / "rootfs", busybox)
    assert (root / "bin" / "busybox").read_bytes() == busybox.read_bytes()
    assert (root / "bin" / "sh").readlink() == Path("busybox")
    assert (root / "bin" / "true").is_symlink()
    assert len(list((root / "bin").iterdir())) > 100
    for name in ("proc", "dev", "sys", "tmp", "root"):
        assert (root / name).is_dir()
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (root / "etc" / "passwd").read_text().startswith("root:x:0:0:")
    assert (root / "etc" / "hosts").is_file()


def test_busybox_is_static(busybox: Path) -> None:
    assert is_static(busybox)


def test_dynamic_binaries_are_refused(tmp_path: Path) -> None:
    dynamic = Path(shutil.which("ls") or "/bin/ls")
    assert not is_static(dynamic)
    with pytest.raises(PilotkitError, match="dynamically linked"):
        build_busybox_rootfs(tmp_path / "rootfs", dynamic)


def test_non_empty_destination_is_refused(busybox: Path, tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "keep").touch()
    with pytest.raises(PilotkitError, match="not empty"):
        build_busybox_rootfs(tmp_path / "rootfs", busybox)
