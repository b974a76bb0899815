"""The rlimit probe and prepare(), against a stand-in runc that behaves like the real one.

These run anywhere: the stand-in fails with runc's "error setting rlimits" message while
the bundle's config asks for rlimits, and otherwise fails at the exec of the absent
probe command, as runc does once a container is set up.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pilotkit_oci import OciOptions, OciRuntime
from pilotkit_oci.probe import PROBE_ARGV, interpret

from pilotkit.api import Event, Log, MissingBinaryError, PilotContext, PilotkitError, StagedImage

RLIMIT_FAILURE = (
    'time="2026-01-01T00:00:00Z" level=error msg="runc run failed: unable to start container process: '
    "error during container init: error setting rlimits for ready process: "
    'error setting rlimit type 7: operation not permitted"'
)
EXEC_FAILURE = (
    'time="2026-01-01T00:00:00Z" level=error msg="runc run failed: unable to start container process: '
    f'exec: \\"{PROBE_ARGV[0]}\\": stat {PROBE_ARGV[0]}: no such file or directory"'
)
FAKE_RUNC = """#!/bin/sh
[ "$1" = --version ] && { echo "runc version 9.9.9"; exit 0; }
while [ "$#" -gt 0 ]; do [ "$1" = --bundle ] && bundle=$2; shift; done
echo "$bundle" >> "$(dirname "$0")/bundles.log"
if grep -q '"rlimits"' "$bundle/config.json"; then
  [ -e "$(dirname "$0")/allow-rlimits" ] || { echo '@RLIMIT@' >&2; exit 1; }
fi
[ -e "$(dirname "$0")/broken" ] && { echo 'level=error msg="mount failed: permission denied"' >&2; exit 1; }
echo '@EXEC@' >&2
exit 1
"""


@pytest.fixture
def fake_runc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    runc = bindir / "runc"
    runc.write_text(FAKE_RUNC.replace("@RLIMIT@", RLIMIT_FAILURE).replace("@EXEC@", EXEC_FAILURE))
    runc.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return bindir


def pilot(tmp_path: Path, events: list[Event], **options: Any) -> PilotContext:
    spec = SimpleNamespace(runtime_options=OciOptions(**options))
    return PilotContext("p", spec, tmp_path / "work", events.append)  # type: ignore[arg-type]


def image(tmp_path: Path) -> StagedImage:
    rootfs = tmp_path / "rootfs"
    (rootfs / "tmp").mkdir(parents=True, exist_ok=True)
    return StagedImage(ref="test/image:1", path=rootfs, format="dir")


def test_interpret() -> None:
    assert interpret(1, EXEC_FAILURE).ok
    assert not interpret(1, EXEC_FAILURE).rlimits_refused
    refused = interpret(1, RLIMIT_FAILURE)
    assert (refused.ok, refused.rlimits_refused) == (False, True)
    other = interpret(1, 'level=error msg="pivot_root: invalid argument"\n')
    assert (other.ok, other.rlimits_refused, other.detail) == (
        False,
        False,
        'level=error msg="pivot_root: invalid argument"',
    )
    assert interpret(0, "").ok


async def test_rlimits_dropped_when_refused(fake_runc: Path, tmp_path: Path) -> None:
    events: list[Event] = []
    runtime = OciRuntime()
    prepared = await runtime.prepare(image(tmp_path), pilot(tmp_path, events))
    config = json.loads((prepared.path / "config.json").read_text())
    assert "rlimits" not in config["process"]
    assert runtime.rlimits_supported is False
    assert [e.level for e in events if isinstance(e, Log)] == ["warning"]
    assert len((fake_runc / "bundles.log").read_text().split()) == 2


async def test_rlimits_kept_where_allowed(fake_runc: Path, tmp_path: Path) -> None:
    (fake_runc / "allow-rlimits").touch()
    events: list[Event] = []
    runtime = OciRuntime()
    prepared = await runtime.prepare(image(tmp_path), pilot(tmp_path, events))
    config = json.loads((prepared.path / "config.json").read_text())
    assert config["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}]
    assert runtime.rlimits_supported is True
    assert events == []


async def test_second_image_skips_the_refused_rlimits(fake_runc: Path, tmp_path: Path) -> None:
    runtime = OciRuntime()
    await runtime.prepare(image(tmp_path), pilot(tmp_path, []))
    other = StagedImage(ref="other", path=image(tmp_path).path, format="dir")
    await runtime.prepare(other, pilot(tmp_path, []))
    assert len((fake_runc / "bundles.log").read_text().split()) == 3


async def test_prepare_fails_with_runcs_message(fake_runc: Path, tmp_path: Path) -> None:
    (fake_runc / "broken").touch()
    with pytest.raises(PilotkitError, match="mount failed: permission denied"):
        await OciRuntime().prepare(image(tmp_path), pilot(tmp_path, []))


async def test_probe_bundles_are_cleaned_up(fake_runc: Path, tmp_path: Path) -> None:
    runtime = OciRuntime()
    prepared = await runtime.prepare(image(tmp_path), pilot(tmp_path, [], root=str(tmp_path / "state")))
    assert runtime.prepared(prepared).root == str(tmp_path / "state")
    bundles = Path(runtime.prepared(prepared).bundles)
    deadline = time.monotonic() + 10
    while any(bundles.iterdir()):
        assert time.monotonic() < deadline, f"left behind: {list(bundles.iterdir())}"
        await asyncio.sleep(0.01)


async def test_prepare_rejects_other_formats_and_bad_options(fake_runc: Path, tmp_path: Path) -> None:
    with pytest.raises(PilotkitError, match="sif"):
        await OciRuntime().prepare(StagedImage("x", tmp_path, "sif"), pilot(tmp_path, []))
    with pytest.raises(PilotkitError, match="not a directory"):
        await OciRuntime().prepare(StagedImage("x", tmp_path / "nope", "dir"), pilot(tmp_path, []))
    with pytest.raises(PilotkitError, match="namespaces"):
        await OciRuntime().prepare(image(tmp_path), pilot(tmp_path, [], namespaces=["pid"]))


async def test_detect_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingBinaryError, match="the oci container runtime"):
        await OciRuntime().detect()


async def test_detect(fake_runc: Path) -> None:
    info = await OciRuntime().detect()
    assert (info.binary, info.version) == (str(fake_runc / "runc"), "9.9.9")
