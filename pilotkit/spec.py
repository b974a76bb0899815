"""A pilot spec, resolved: its plugins looked up and their options typed.

Two steps. :mod:`pilotkit.specfile` reads a spec into plain, typed data and needs no
plugin. :func:`resolve` then asks the plugins: it finds the class each pluggable
section names, checks that section's remaining keys against the class's ``Options``
struct (file, key and line, like the rest) and runs each class's ``check``.

:func:`load_spec` and :func:`parse_spec` do both steps and report *every* problem of
both at once, each naming the file, the dotted key, the line where known, and the
nearest valid key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from .config import layers_for
from .errors import PluginError, SpecError
from .interfaces import App, ContainerRuntime, Provider, Stager
from .plugins import Plugins
from .specfile import parsing as _parse
from .specfile.check import Checker, tname
from .specfile.lines import KeyLines
from .specfile.model import (
    PLUGGABLE,
    AppSection,
    ContainerSection,
    Duration,
    ImageSection,
    PilotSection,
    PilotSpec,
    ProviderSection,
    Resources,
    Size,
    core_keys,
)
from .specfile.parsing import ParsedSpec
from .specfile.schema import json_schema, options_schema
from .units import parse_duration, parse_size

__all__ = [
    "AppSection",
    "ContainerSection",
    "Duration",
    "ImageSection",
    "KeyLines",
    "ParsedSpec",
    "PilotSection",
    "PilotSpec",
    "ProviderSection",
    "ResolvedSpec",
    "Resources",
    "Size",
    "json_schema",
    "load_spec",
    "options_schema",
    "parse_spec",
    "resolve",
]


@dataclass
class ResolvedSpec:
    """A valid spec with its plugins looked up and their options typed."""

    spec: PilotSpec
    source: Path | None
    provider_cls: type[Provider]
    provider_options: Any
    app_cls: type[App]
    app_options: Any
    runtime_cls: type[ContainerRuntime] | None = None
    runtime_options: Any = None
    stager_cls: type[Stager] | None = None
    stager_options: Any = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def base_dir(self) -> Path:
        return self.source.parent.resolve() if self.source else Path.cwd()

    def seconds(self, value: str | float | None) -> float | None:
        return None if value is None else parse_duration(value)

    @property
    def walltime(self) -> float | None:
        return self.seconds(self.spec.resources.walltime)

    @property
    def memory(self) -> int | None:
        m = self.spec.resources.memory
        return None if m is None else parse_size(m)


# ---------------------------------------------------------------------- both steps


def load_spec(path: str | Path, plugins: Plugins | None = None, *, profile: str | None = None) -> ResolvedSpec:
    """Read, check and resolve a spec file; raise SpecError listing every problem.

    The spec is laid over a profile of the site and user configuration files
    (:mod:`pilotkit.config`): ``profile`` if given, else the spec's own ``profile``."""
    return parse_spec(_parse.read_text(path), path, plugins, profile=profile)


def parse_spec(
    text: str, path: str | Path | None = None, plugins: Plugins | None = None, *, profile: str | None = None
) -> ResolvedSpec:
    """Check and resolve a spec's text; raise SpecError listing every problem."""
    if plugins is None:
        from .plugins import get_plugins

        plugins = get_plugins()
    data, checker = _parse.start(text, path, layers_for(profile))
    classes = _lookup({s: data.get(s) for s in PLUGGABLE}, plugins, checker)
    parsed = _parse.finish(data, checker, path)
    if parsed is None:
        raise SpecError(checker.problems)
    return _resolved(parsed, classes, checker)


# ---------------------------------------------------------------------- the resolve step


def resolve(parsed: ParsedSpec, plugins: Plugins | None = None) -> ResolvedSpec:
    """Look up the plugins of a parsed spec and type their options; raise SpecError
    listing every problem."""
    if plugins is None:
        from .plugins import get_plugins

        plugins = get_plugins()
    checker = Checker(parsed.file, parsed.lines)
    spec = parsed.spec
    tables: dict[str, dict[str, Any] | None] = {
        "provider": {"type": spec.provider.type, "options": spec.provider.options},
        "image": None if spec.image is None else
        {"ref": spec.image.ref, "stager": spec.image.stager, "options": spec.image.options},
        "container": None if spec.container is None else
        {"runtime": spec.container.runtime, "options": spec.container.options},
        "app": {"type": spec.app.type, "options": spec.app.options},
    }
    classes = _lookup(tables, plugins, checker)
    if checker.fatal:
        raise SpecError(checker.problems)
    return _resolved(parsed, classes, checker)


_KINDS = {"provider": "providers", "image": "stagers", "container": "runtimes", "app": "apps"}
_DEFAULTS = {"provider": "local", "app": "tasks"}


def _lookup(tables: dict[str, Any], plugins: Plugins, checker: Checker) -> dict[str, Any]:
    """The plugin class each pluggable section names (None where unknown), its options
    checked against the class's ``Options`` (bad optional keys reported and dropped)."""
    classes: dict[str, Any] = {}
    for section, selector in PLUGGABLE.items():
        table = tables.get(section)
        if not isinstance(table, dict):
            continue
        ident = table.get(selector)
        cls: Any = None
        if section == "image" and ident is None and isinstance(table.get("ref"), str):
            cls = plugins.stager_for(table["ref"])
            if cls is None:
                checker.problem(f"{section}.ref", f"no stager handles '{table['ref']}'; set image.stager")
        elif ident is None:
            ident = _DEFAULTS.get(section)
        if ident is not None:
            if not isinstance(ident, str):
                checker.problem(f"{section}.{selector}", f"expected a string, got {tname(ident)}")
            else:
                try:
                    cls = plugins.get(_KINDS[section], ident)
                except PluginError as exc:
                    checker.problem(f"{section}.{selector}", str(exc))
        classes[section] = cls
        if cls is None:
            table["options"] = {}  # the plugin is unknown: its keys cannot be judged
        else:
            _drop_foreign(section, cls, table["options"], plugins, checker)
            checker.check_struct(cls.Options, table["options"], section, extra_known=core_keys(section))
    return classes


def _drop_foreign(section: str, cls: Any, options: dict[str, Any], plugins: Plugins, checker: Checker) -> None:
    """Leave out the options set by a ``PILOTKIT__...`` variable that ``cls`` does not
    take but another plugin of its kind does: a variable exported for one provider's runs
    (``PILOTKIT__PROVIDER__CALLBACK_HOST`` for Slurm) does not break a spec of another
    (a local one). A key no plugin takes is still refused, naming the variable."""
    own = _option_keys(cls)
    for key in [k for k in options if k not in own]:
        origin = checker.lines.origins.get(f"{section}.{key}")
        if origin is None or not origin.file.startswith("$"):
            continue
        for entry in plugins.tables[_KINDS[section]].values():
            try:
                other = plugins.resolve(_KINDS[section], entry)
            except PluginError:
                continue
            if other is not cls and key in _option_keys(other):
                del options[key]
                break


def _option_keys(cls: Any) -> set[str]:
    """The keys a plugin class's ``Options`` take (as :meth:`Checker.check_struct` knows them)."""
    return {f.name for f in msgspec.structs.fields(cls.Options)}


def _resolved(parsed: ParsedSpec, classes: dict[str, Any], checker: Checker) -> ResolvedSpec:
    """The resolved spec, after each plugin class's own ``check``; SpecError if any
    step found a problem."""
    if checker.fatal:
        raise SpecError(checker.problems)
    spec = parsed.spec
    resolved = ResolvedSpec(
        spec=spec,
        source=parsed.source,
        provider_cls=classes["provider"],
        provider_options=msgspec.convert(spec.provider.options, classes["provider"].Options),
        app_cls=classes["app"],
        app_options=msgspec.convert(spec.app.options, classes["app"].Options),
    )
    if spec.container is not None and classes.get("container") is not None:
        resolved.runtime_cls = classes["container"]
        resolved.runtime_options = msgspec.convert(spec.container.options, resolved.runtime_cls.Options)
    if spec.image is not None and classes.get("image") is not None:
        resolved.stager_cls = classes["image"]
        resolved.stager_options = msgspec.convert(spec.image.options, resolved.stager_cls.Options)
    if spec.image is not None and spec.container is None and not resolved.app_cls.runs_images:
        checker.problem("container", "an image is set but no [container] runtime to run it with")
    problems = list(checker.problems)
    named = {problem.key for problem in problems}
    for cls in (resolved.provider_cls, resolved.app_cls, resolved.runtime_cls, resolved.stager_cls):
        if cls is not None:
            for problem in cls.check(resolved):
                if problem.file is None and problem.line is None:
                    file, problem.key, problem.line = parsed.lines.where(problem.key)
                    problem.file = file
                problem.file = problem.file or parsed.file
                if problem.key not in named:  # a value already refused is not refused twice
                    problems.append(problem)
    if problems:
        raise SpecError(problems)
    return resolved
