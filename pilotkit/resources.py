"""The files pilotkit ships beside its code: examples, JSON schemas, docs, the systemd unit.

In a checkout they are under ``share/``; a wheel carries copies as package data
(``pilotkit/_share/``, written by ``setup.py`` at build time). :func:`shared` finds
them either way.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PilotkitError

SHARED = ("examples", "schema", "docs", "systemd")
"""The folders of ``share/`` that are package data."""

_PACKAGED = Path(__file__).resolve().parent / "_share"
_CHECKOUT = Path(__file__).resolve().parent.parent / "share"


def shared(name: str) -> Path:
    """The folder ``name`` (one of :data:`SHARED`), from the wheel or the checkout."""
    if name not in SHARED:
        raise ValueError(f"not a shared folder: {name}")
    for base in (_PACKAGED, _CHECKOUT):
        if (base / name).is_dir():
            return base / name
    raise PilotkitError(f"pilotkit's {name} are missing from this installation ({_PACKAGED / name}); reinstall pilotkit")
