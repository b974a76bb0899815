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


def pilot_processes(workdir: Path) -> list[int]:
    """Processes still running whose command line or working directory is in ``workdir``
    (what a pilot's tasks would leave behind)."""
    import psutil

    left: list[int] = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cwd = proc.info["cwd"] or ""
            cmd = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if cwd.startswith(str(workdir)) or str(workdir) in cmd:
            left.append(proc.info["pid"])
    return left
