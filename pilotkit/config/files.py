"""The configuration files: a site file that a site's admins maintain and a user file,
each holding named profiles."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError, SpecProblem
from ..specfile.layers import PROFILE_SECTIONS
from ..specfile.lines import KeyLines
from ..specfile.parsing import read_text

SITE_FILE = "/etc/pilotkit/config.toml"
SITE_ENV = "PILOTKIT_SITE_CONFIG"
"""Names another site file (tests, a site that keeps it elsewhere)."""
PROFILE_ENV = "PILOTKIT_PROFILE"


def site_file() -> Path:
    return Path(os.environ.get(SITE_ENV) or SITE_FILE)


def user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pilotkit" / "config.toml"


@dataclass
class ConfigFile:
    """One configuration file, read and checked."""

    path: str
    profiles: dict[str, dict[str, Any]]
    """Each profile's tables, shaped as a spec's (``resources``, ``provider``...)."""
    lines: KeyLines


def read_config(path: Path) -> ConfigFile | None:
    """A configuration file; None when there is none. SpecError names every unknown
    key or misplaced value with its file and line."""
    fname = str(path)
    if not path.exists():
        return None
    text = read_text(path)  # SpecError: unreadable, or not UTF-8
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line.*\)$", "", str(exc))
        line = int(match.group(1)) if match else None
        raise SpecError([SpecProblem("", f"not valid TOML: {message}", file=fname, line=line)]) from None
    lines = KeyLines(text)
    problems: list[SpecProblem] = []

    def problem(key: str, message: str, known: tuple[str, ...] = ()) -> None:
        close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1, cutoff=0.6)
        line = lines.find(key)
        if line is None:  # only dotted headers below it: [profile.cpu]
            line = min((n for k, n in lines.lines.items() if k.startswith(key + ".")), default=None)
        problems.append(
            SpecProblem(key, message, file=fname, line=line, suggestion=close[0] if close else None)
        )

    profiles: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key != "profiles":
            problem(key, "unknown key", ("profiles",))
        elif not isinstance(value, dict):
            problem(key, "expected a table of profiles")
    for name, profile in (
        (data.get("profiles") or {}).items() if isinstance(data.get("profiles"), dict) else ()
    ):
        prefix = f"profiles.{name}"
        if not isinstance(profile, dict):
            problem(prefix, "expected a table")
            continue
        tables: dict[str, Any] = {}
        for section, value in profile.items():
            if section not in PROFILE_SECTIONS:
                problem(f"{prefix}.{section}", "unknown key", PROFILE_SECTIONS)
            elif not isinstance(value, dict):
                problem(f"{prefix}.{section}", "expected a table")
            else:
                tables[section] = value
        profiles[name] = tables
    if problems:
        raise SpecError(problems)
    return ConfigFile(fname, profiles, lines)


def read_configs() -> list[ConfigFile]:
    """The site file, then the user file (those that exist)."""
    return [c for c in (read_config(site_file()), read_config(user_file())) if c is not None]
