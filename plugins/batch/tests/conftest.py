"""Shared fixtures: golden files, and fake batch-system executables on PATH."""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


class Golden:
    """Read golden files; compare rendered text with one (``PILOTKIT_UPDATE_GOLDEN=1``
    rewrites it instead)."""

    def path(self, name: str) -> Path:
        return GOLDEN / name

    def read(self, name: str) -> str:
        return (GOLDEN / name).read_text()

    def check(self, name: str, text: str) -> None:
        path = GOLDEN / name
        if os.environ.get("PILOTKIT_UPDATE_GOLDEN"):
            path.write_text(text)
        assert path.exists(), f"no golden file {name}; run with PILOTKIT_UPDATE_GOLDEN=1"
        assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.fixture
def golden() -> Golden:
    return Golden()


@dataclass(frozen=True)
class Reply:
    """One recorded run of a fake command."""

    stdout: str = ""
    stderr: str = ""
    returncode: int = 0
    delay: float = 0.0
    """When set, the fake hangs this long and prints nothing (a controller that does not
    answer)."""


class FakeBin:
    """Fake executables in a directory that is all of PATH.

    Each fake is a small shell script that prints its recorded replies in turn (the last
    one again for every further call) and records its argv, stdin and working directory.
    """

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.data = root / "data"
        self.bin.mkdir()
        self.data.mkdir()

    @staticmethod
    def reply(stdout: str = "", stderr: str = "", returncode: int = 0, delay: float = 0.0) -> Reply:
        """One recorded run: what it prints and how it exits, or how long it hangs."""
        return Reply(stdout, stderr, returncode, delay)

    def add(self, name: str, *replies: Reply) -> None:
        """Install fake ``name`` answering with ``replies`` in turn."""
        cases = []
        for index, reply in enumerate(replies, start=1):
            out = self.data / f"{name}.{index}.out"
            err = self.data / f"{name}.{index}.err"
            out.write_text(reply.stdout)
            err.write_text(reply.stderr)
            label = str(index) if index < len(replies) else "*"
            if reply.delay:
                # Hang without a child process, so that killing the fake ends it.
                cases.append(f"  {label}) exec /bin/sleep {reply.delay} ;;")
                continue
            cases.append(
                f"  {label}) /bin/cat {shlex.quote(str(out))}; "
                f"/bin/cat {shlex.quote(str(err))} >&2; exit {reply.returncode} ;;"
            )
        log = shlex.quote(str(self.data / name))
        script = "\n".join(
            [
                "#!/bin/sh",
                f"n=$(/bin/cat {log}.count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {log}.count",
                f'printf "%s\\n" "$*" >> {log}.argv',
                f"pwd > {log}.cwd",
                f"[ -t 0 ] || /bin/cat > {log}.stdin.$n",
                'case "$n" in',
                *cases,
                "esac",
                "",
            ]
        )
        path = self.bin / name
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def calls(self, name: str) -> list[str]:
        """The argv (after the name) of each call, space-joined."""
        path = self.data / f"{name}.argv"
        return path.read_text().splitlines() if path.exists() else []

    def stdin(self, name: str, call: int = 1) -> str:
        return (self.data / f"{name}.stdin.{call}").read_text()

    def cwd(self, name: str) -> str:
        return (self.data / f"{name}.cwd").read_text().strip()


@pytest.fixture
def fakebin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBin:
    fake = FakeBin(tmp_path)
    monkeypatch.setenv("PATH", str(fake.bin))
    return fake
