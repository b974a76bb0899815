"""Reading a spec file into plain, typed data (:class:`ParsedSpec`), with every
problem named by file, dotted key and line. Needs no plugin: the options of the
pluggable sections are kept as written, for the resolve step (:mod:`pilotkit.spec`)."""

from __future__ import annotations

import re
import signal
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..errors import SpecError, SpecProblem
from ..units import parse_duration
from .check import Checker, tname
from .layers import Layer, lay
from .lines import KeyLines
from .model import PLUGGABLE, Bind, PilotSpec, core_keys


@dataclass
class ParsedSpec:
    """A spec file read and checked, its plugins not yet looked up."""

    spec: PilotSpec
    source: Path | None
    """The file it was read from (None for text)."""
    file: str
    """How problems name the file."""
    lines: KeyLines


def _seconds(value: str | float) -> float | None:
    try:
        return parse_duration(value)
    except ValueError:
        return None  # reported by the checker


def read_text(path: str | Path) -> str:
    """A spec file's text; SpecError when it cannot be read or is not UTF-8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError([SpecProblem("", "no such file", file=str(path))]) from None
    except OSError as exc:
        raise SpecError([SpecProblem("", f"cannot read: {exc.strerror}", file=str(path))]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded; save the file as UTF-8"
        raise SpecError([SpecProblem("", message, file=str(path), line=line)]) from None


def load(path: str | Path) -> ParsedSpec:
    """Read and check a spec file; raise SpecError listing every problem."""
    return parse(read_text(path), path)


def parse(text: str, path: str | Path | None = None) -> ParsedSpec:
    """Check a spec's text; raise SpecError listing every problem."""
    data, checker = start(text, path)
    parsed = finish(data, checker, path)
    if parsed is None or checker.problems:
        raise SpecError(checker.problems)
    return parsed


# ------------------------------------------------------------ the steps, for pilotkit.spec


LayersFor = Callable[[dict[str, Any], KeyLines, str], list[Layer]]
"""Given a spec's decoded data, its lines and file name: the layers to put under it
(a profile), or SpecError naming the problem."""


def start(
    text: str, path: str | Path | None, layers: LayersFor | None = None
) -> tuple[dict[str, Any], Checker]:
    """Decode the TOML, lay it over ``layers`` (a profile), and split each pluggable
    section into its core keys and its plugin's ``options``. Raises SpecError only when
    the text is not TOML or the layers cannot be read."""
    fname = str(path) if path is not None else "<spec>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line.*\)$", "", str(exc))
        raise SpecError([SpecProblem("", f"not valid TOML: {message}", file=fname, line=line)]) from None
    lines = KeyLines(text)
    if layers is not None:
        below = layers(data, lines, fname)
        if below:
            data = lay(data, lines, below)
    checker = Checker(fname, lines)
    for section in PLUGGABLE:
        table = data.get(section)
        if table is None:
            if section not in ("provider", "app"):
                continue
            table = {}
        if not isinstance(table, dict):
            checker.problem(section, f"expected a table, got {tname(table)}")
            data.pop(section)
            continue
        keys = core_keys(section)
        core = {k: v for k, v in table.items() if k in keys}
        core["options"] = {k: v for k, v in table.items() if k not in keys}
        data[section] = core
    return data, checker


def finish(data: dict[str, Any], checker: Checker, path: str | Path | None) -> ParsedSpec | None:
    """Check the core keys and build the typed spec; None when a fatal problem (a
    missing required key, an unknown plugin) stops it. Bad optional keys were dropped
    and reported: the spec is built without them, so later checks report theirs too."""
    checker.check_struct(PilotSpec, data, "")
    if checker.fatal:
        return None
    try:
        spec = msgspec.convert(data, PilotSpec)
    except msgspec.ValidationError:
        return None
    if spec.container is not None:
        for i, bind in enumerate(spec.container.binds):
            try:
                Bind.parse(bind)
            except ValueError as exc:
                checker.problem(f"container.binds[{i}]", str(exc))
    walltime = spec.resources.walltime
    if walltime is not None and _seconds(walltime) == 0:
        checker.problem("resources.walltime", "must be more than 0 (leave it out for no walltime)", fatal=False)
    if spec.campaign is not None:
        _check_campaign(spec, checker)
    if checker.fatal:
        return None
    return ParsedSpec(spec=spec, source=Path(path) if path is not None else None, file=checker.fname,
                      lines=checker.lines)


SEARCH_IN_CAMPAIGN = (
    "an adaptive search does not run in a campaign yet (its study would need one sampler for "
    "all the allocations): run it as one pilot, without [campaign]"
)


def _check_campaign(spec: PilotSpec, checker: Checker) -> None:
    """What the ``[campaign]`` table needs of the rest of the spec."""
    campaign = spec.campaign
    assert campaign is not None
    if spec.resources.walltime is None:
        checker.problem("campaign", "a campaign needs resources.walltime (the length of each allocation)",
                        fatal=False)  # fmt: skip
    if campaign.parallel > campaign.max_allocations:
        checker.problem("campaign.parallel", f"{campaign.parallel} allocations at once is more than "
                        f"max_allocations = {campaign.max_allocations}", fatal=False)  # fmt: skip
    if spec.app.type != "tasks":
        checker.problem("app.type", f"a campaign runs the tasks app, not '{spec.app.type}'", fatal=False)
    name = campaign.checkpoint_signal
    if not hasattr(signal.Signals, name) and not hasattr(signal.Signals, f"SIG{name}"):
        checker.problem("campaign.checkpoint_signal", f"'{name}' is not a signal name (SIGUSR1, SIGINT...)",
                        fatal=False)  # fmt: skip
    walltime = _seconds(spec.resources.walltime) if spec.resources.walltime is not None else None
    margin = _seconds(spec.pilot.drain_margin) or 0.0
    groups = spec.app.options.get("groups")
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        if isinstance(group, dict) and "search" in group:
            checker.problem(f"app.groups[{i}].search", SEARCH_IN_CAMPAIGN, fatal=False)
    if walltime is not None and isinstance(groups, list):
        for i, group in enumerate(groups):
            limit = group.get("time_limit") if isinstance(group, dict) else None
            seconds = _seconds(limit) if isinstance(limit, str | float | int) else None
            if seconds is not None and seconds > walltime - margin:
                checker.problem(f"app.groups[{i}].time_limit", "longer than an allocation's walltime less "
                                f"pilot.drain_margin ({walltime - margin:g}s): no allocation could run it",
                                fatal=False)  # fmt: skip
    for key in ("submit_backoff", "submit_backoff_max"):
        if _seconds(getattr(campaign, key)) == 0:
            checker.problem(f"campaign.{key}", "must be more than 0", fatal=False)
