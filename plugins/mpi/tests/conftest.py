"""Shared helpers: golden argv files, the runtime plugins' classes, the examples."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
ROOT = HERE.parents[2]
EXAMPLES = ROOT / "share" / "examples"
ALLREDUCE = EXAMPLES / "mpi_allreduce.py"


class Golden:
    """Compare an argv with ``golden/<name>.json`` (``PILOTKIT_UPDATE_GOLDEN=1`` rewrites it).

    Machine-specific strings (this Python, this checkout) are written as ``{python}``
    and ``{root}`` so the files hold on any machine.
    """

    def __init__(self) -> None:
        self.subs = {sys.executable: "{python}", str(ROOT): "{root}"}

    def normalise(self, argv: list[str]) -> list[str]:
        out = []
        for arg in argv:
            for real, name in self.subs.items():
                arg = arg.replace(real, name)
            out.append(arg)
        return out

    def check(self, name: str, argv: list[str]) -> None:
        path = GOLDEN / f"{name}.json"
        got = self.normalise(argv)
        if os.environ.get("PILOTKIT_UPDATE_GOLDEN"):
            path.write_text(json.dumps(got, indent=1) + "\n")
        assert path.exists(), f"no golden file {path.name}; run with PILOTKIT_UPDATE_GOLDEN=1"
        assert got == json.loads(path.read_text())


@pytest.fixture
def golden() -> Golden:
    return Golden()


def runtime_module(package: str, folder: str) -> ModuleType:
    """A container runtime plugin's package: installed, else from this checkout's
    ``plugins/<folder>``; skip when neither has it."""
    source = ROOT / "plugins" / folder
    if importlib.util.find_spec(package) is None and (source / package).is_dir():
        sys.path.insert(0, str(source))
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        pytest.skip(f"{package} is neither installed nor importable from {source}: {exc}")


def of_kind(events: list[Any], kind: type) -> list[Any]:
    """The events of one class, in order."""
    return [e for e in events if isinstance(e, kind)]
