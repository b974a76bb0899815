"""``pilotkit.api.ConnectionFile``: the file an app publishes its service's address in,
written atomically, read back with one-line errors."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import msgspec
import pytest

from pilotkit.api import ConnectionFile, PilotkitError


class Info(msgspec.Struct):
    pilot: str
    state: str = "running"


FILE = ConnectionFile("demo.json", Info, "Demo")
PRIVATE = ConnectionFile("secret.json", Info, "Demo", "server", private=True)


def test_written_atomically_and_read_back_by_workdir_or_file(tmp_path: Path) -> None:
    path = FILE.write(tmp_path, Info("p-1"))
    assert path == tmp_path / "demo.json" and [p.name for p in tmp_path.iterdir()] == ["demo.json"]
    assert FILE.read(tmp_path) == FILE.read(path) == Info("p-1")
    assert stat.S_IMODE(PRIVATE.write(tmp_path, Info("p-1")).stat().st_mode) == 0o600


def test_errors_are_one_line_naming_the_file_and_the_app(tmp_path: Path) -> None:
    with pytest.raises(PilotkitError, match=r"^no demo.json in .*: not a Demo pilot, or its cluster is not up yet$"):
        FILE.read(tmp_path)
    with pytest.raises(PilotkitError, match=r"^no secret.json in .*: not a Demo pilot, or its server is not up yet$"):
        PRIVATE.read(tmp_path)
    (tmp_path / "demo.json").write_text('{"state": "running"}')
    with pytest.raises(PilotkitError, match=r"demo.json: not a Demo connection file: Object missing required field"):
        FILE.read(tmp_path)


def test_find_refuses_what_is_not_running(tmp_path: Path) -> None:
    FILE.write(tmp_path, Info("p-1"))
    assert asyncio.run(FILE.find(str(tmp_path))) == Info("p-1")
    FILE.write(tmp_path, Info("p-1", state="stopped"))
    with pytest.raises(PilotkitError, match=r"^the Demo cluster of .* is stopped$"):
        asyncio.run(FILE.find(str(tmp_path)))
