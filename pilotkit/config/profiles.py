"""Named profiles: a site's and a user's defaults for specs, laid under a spec."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ..errors import PilotkitError, SpecError, SpecProblem
from ..specfile.layers import Layer, lay
from ..specfile.lines import KeyLines
from ..specfile.parsing import LayersFor
from .environment import env_layers
from .files import PROFILE_ENV, ConfigFile, read_configs, site_file, user_file


def profile_layers(name: str, configs: list[ConfigFile]) -> list[Layer]:
    """The profile's tables in each file that has it, site first."""
    return [
        Layer(c.profiles[name], c.path, c.lines, f"profiles.{name}.") for c in configs if name in c.profiles
    ]


def no_profile(name: str, configs: list[ConfigFile]) -> str:
    """Why profile ``name`` cannot be used: the files looked in and the profiles they hold."""
    known = sorted({p for c in configs for p in c.profiles})
    return f"no profile '{name}' in {site_file()} or {user_file()}" + (
        f" (profiles: {', '.join(known)})" if known else ""
    )


def chosen_by(name: str) -> str:
    """What chose profile ``name`` for a message: ``$PILOTKIT_PROFILE`` or ``--profile``."""
    return f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) == name else "--profile"


def layers_for(chosen: str | None) -> LayersFor:
    """What :func:`pilotkit.specfile.parsing.start` lays under a spec: the profile named
    by ``chosen`` (``--profile``, ``$PILOTKIT_PROFILE``), else by the spec's ``profile``,
    then the ``PILOTKIT__SECTION__KEY`` variables of the environment."""

    def pick(data: dict[str, Any], lines: KeyLines, fname: str) -> list[Layer]:
        return profile(data, lines, fname) + env_layers()

    def profile(data: dict[str, Any], lines: KeyLines, fname: str) -> list[Layer]:
        written = data.get("profile")
        name = chosen or written
        if not isinstance(name, str):
            return []  # none, or not a string: the spec check says so
        configs = read_configs()
        layers = profile_layers(name, configs)
        if not layers:
            message = no_profile(name, configs)
            if chosen:
                raise PilotkitError(f"{chosen_by(name)}: {message}")
            raise SpecError([SpecProblem("profile", message, file=fname, line=lines.find("profile"))])
        return layers

    return pick


@dataclass(frozen=True)
class Setting:
    """One merged value and where it was set."""

    key: str
    value: Any
    file: str
    line: int | None

    def format(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{self.key} = {json.dumps(self.value)}  # {where}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "file": self.file, "line": self.line}


def settings(data: dict[str, Any], lines: KeyLines, fname: str) -> list[Setting]:
    """Every value of merged ``data`` with the file and line that set it."""
    out: list[Setting] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else k)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        else:
            file, _, line = lines.where(key)
            out.append(Setting(key, value, file or fname, line))

    if data:
        walk(data, "")
    return out


def _merged(name: str | None) -> tuple[dict[str, Any], KeyLines]:
    layers: list[Layer] = []
    if name is not None:
        configs = read_configs()
        layers = profile_layers(name, configs)
        if not layers:
            raise PilotkitError(f"{chosen_by(name)}: {no_profile(name, configs)}")
    lines = KeyLines("")
    return lay({}, lines, layers + env_layers()), lines


def merged_profile(name: str | None) -> list[Setting]:
    """A profile as the site and user files set it, under the ``PILOTKIT__...``
    variables (None: the variables alone), each value with its origin."""
    data, lines = _merged(name)
    return settings(data, lines, "")


def merged_profile_data(name: str | None) -> dict[str, Any]:
    """A profile's tables as the site and user files set them (user over site), under
    the ``PILOTKIT__...`` variables (None: the variables alone)."""
    return _merged(name)[0]


def merged_spec(text: str, fname: str, chosen: str | None) -> list[Setting]:
    """A spec's values laid over its profile, each with its origin (the spec's text must
    be valid TOML: check it first)."""
    import tomllib

    data = tomllib.loads(text)
    lines = KeyLines(text)
    layers = layers_for(chosen)(data, lines, fname)
    return settings(lay(data, lines, layers) if layers else data, lines, fname)
