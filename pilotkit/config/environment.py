"""Settings from the environment: ``PILOTKIT__SECTION__KEY=value`` sets ``section.key``
of a spec (``PILOTKIT__RESOURCES__PARTITION=gpu``), over the profile's value and under
the spec's own, as the tables of a profile do.

The sections are those a profile may set; names below them are lower-cased, except in
``env`` (``PILOTKIT__ENV__OMP_NUM_THREADS=4``), and ``__`` separates deeper tables
(``PILOTKIT__PROVIDER__CALLBACK_HOST``). A value is read as a TOML value when it is
one (``3``, ``true``, ``["module load x"]``, ``"1h"``), else as text (``1h``)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError, SpecProblem
from ..specfile.layers import PROFILE_SECTIONS, Layer
from ..specfile.lines import KeyLines

PREFIX = "PILOTKIT__"


def value_of(text: str) -> Any:
    """``text`` as a TOML value, or the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def env_layers(environ: Mapping[str, str] | None = None) -> list[Layer]:
    """One layer per ``PILOTKIT__...`` variable, in name order.

    :raises SpecError: a variable naming no section a profile may set, or no key."""
    environ = os.environ if environ is None else environ
    layers: list[Layer] = []
    problems: list[SpecProblem] = []
    for name in sorted(n for n in environ if n.startswith(PREFIX)):
        parts = name[len(PREFIX) :].split("__")
        section = parts[0].lower()
        if section not in PROFILE_SECTIONS or len(parts) < 2 or not all(parts):
            problems.append(SpecProblem(
                "", f"not a setting: PILOTKIT__SECTION__KEY with SECTION one of "
                f"{', '.join(s.upper() for s in PROFILE_SECTIONS)}", file=f"${name}",
            ))  # fmt: skip
            continue
        keys = [section] + [p if section == "env" else p.lower() for p in parts[1:]]
        data: dict[str, Any] = {keys[-1]: value_of(environ[name])}
        for key in reversed(keys[:-1]):
            data = {key: data}
        layers.append(Layer(data, f"${name}", KeyLines(""), ""))
    if problems:
        raise SpecError(problems)
    return layers
