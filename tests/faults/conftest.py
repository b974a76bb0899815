"""Fixtures of the fault suite: the real ``pilotkit`` command, real processes, real
filesystems (a tmpfs mounted for a disk-full test)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run(cmd: list[str], env: dict[str, str], *args: str, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [*cmd, *args], env=env, capture_output=True, text=True, timeout=timeout, **kw
    )


def spec_file(tmp_path: Path, body: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path
