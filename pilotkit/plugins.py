"""Loading plugins and the typed facade over the plugin manager.

Nothing outside this module touches ``pm.hook``. Loading is forgiving: a plugin that
fails to import or to register is recorded (by name, with its error) and skipped; the
rest keep working. ``PILOTKIT_LOAD_PLUGINS`` (comma-separated entry-point names) loads
only those third-party plugins; ``PILOTKIT_DISABLE_PLUGINS`` skips the ones named.

A plugin's distribution says which pilotkit releases it was written for in its
requirement on ``pilotkit`` (``pilotkit>=0.2,<0.3``). A plugin whose requirement this
pilotkit does not meet is not imported; it is recorded with an error that names both
sides (see :func:`incompatibility`).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .interfaces import App, ContainerRuntime, Launcher, Provider, SearchSampler, Stager
from .registry import Register as Register  # re-exported: plugins written for 0.1 import it here
from .registry import Registered
from .types import ProbeCheck

if TYPE_CHECKING:
    import click

    from .events import Event

log = logging.getLogger("pilotkit.plugins")

ENTRY_POINT_GROUP = "pilotkit"
BUILTIN_MODULES = ("pilotkit.builtin.local", "pilotkit.builtin.tasks")

@dataclass
class PluginInfo:
    """One plugin as ``pilotkit plugins`` reports it."""

    name: str
    source: str
    """``builtin`` or the distribution that provides it."""
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "hooks": self.hooks,
            "registered": self.registered,
            "error": self.error,
        }


_KINDS: dict[str, tuple[str, type]] = {
    "providers": ("pilotkit_register_providers", Provider),
    "launchers": ("pilotkit_register_launchers", Launcher),
    "runtimes": ("pilotkit_register_runtimes", ContainerRuntime),
    "stagers": ("pilotkit_register_stagers", Stager),
    "apps": ("pilotkit_register_apps", App),
    "samplers": ("pilotkit_register_samplers", SearchSampler),
}


def _csv_env(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def list_entry_points() -> list[metadata.EntryPoint]:
    """Installed third-party plugins, without importing them."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _api_of(version: str) -> str:
    """The plugin API a pilotkit release (or a requirement's bound) stands for: its
    ``major.minor``."""
    return ".".join(version.split(".")[:2])


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*\(?([^;()]*)\)?\s*(?:;(.*))?$")
"""``name [extras] specifiers ; marker`` of a requirement line (PEP 508 without URLs)."""


def incompatibility(name: str, version: str | None, requires: Iterable[str]) -> str | None:
    """Why the distribution ``name`` (its ``Requires-Dist`` lines ``requires``) cannot be
    loaded by this pilotkit (its requirement on ``pilotkit`` excludes this version), or
    None when it can (or states no requirement).

    Only ``packaging.specifiers`` is imported for a plain line (``pilotkit>=0.2,<0.3``):
    this runs for every plugin at every start of every command."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    from . import __version__

    for line in requires:
        match = _REQUIREMENT.match(line)
        if match is None or match.group(1).lower().replace("_", "-").replace(".", "-") != "pilotkit":
            continue
        if match.group(3) and match.group(3).strip():
            from packaging.markers import Marker

            if not Marker(match.group(3).strip()).evaluate({"extra": ""}):
                continue
        try:
            specifier = SpecifierSet(match.group(2).strip())
        except InvalidSpecifier:
            continue
        if specifier.contains(__version__, prereleases=True):
            return None
        clauses = sorted(specifier, key=lambda c: (c.operator in ("<", "<=", "!="), c.version))
        lower = [c.version for c in clauses if c.operator in (">=", "==", "~=", "===", ">")]
        wanted = "pilotkit" + ",".join(map(str, clauses))
        wanted += f" (plugin API {_api_of(lower[0])})" if lower else ""
        return (
            f"{name} {version} requires {wanted}; "
            f"this is pilotkit {__version__} (plugin API {_api_of(__version__)})"
        )
    return None


class Plugins:
    """The typed facade: one method per hook, and the registries the hooks filled."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("pilotkit")
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.tables: dict[str, dict[str, Registered[Any]]] = {kind: {} for kind in _KINDS}
        self._observers: list[tuple[str, Callable[..., object]]] | None = None

    # ------------------------------------------------------------------ loading

    def load(self, *, builtins: bool = True, entry_points: bool = True) -> Plugins:
        if builtins:
            for modname in BUILTIN_MODULES:
                name = "builtin:" + modname.rsplit(".", 1)[1]
                self._import_and_register(
                    name, "builtin", None, functools.partial(importlib.import_module, modname)
                )
        if entry_points:
            only = _csv_env("PILOTKIT_LOAD_PLUGINS")
            disabled = _csv_env("PILOTKIT_DISABLE_PLUGINS") or set()
            for ep in list_entry_points():
                if (only is not None and ep.name not in only) or ep.name in disabled:
                    continue
                # Each reading of a distribution's metadata parses its METADATA file again:
                # read it once (this runs at every start of every command).
                md = ep.dist.metadata if ep.dist is not None else None
                dist = (md["Name"] if md is not None else None) or "?"
                version = md["Version"] if md is not None else None
                problem = incompatibility(dist, version, md.get_all("Requires-Dist") or []) if md is not None else None
                if problem is not None:
                    self.info[ep.name] = PluginInfo(name=ep.name, source=dist, version=version, error=problem)
                    log.warning("plugin %s not loaded: %s", ep.name, problem)
                    continue
                self._import_and_register(ep.name, dist, version, ep.load)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:  # a misspelt hook
            name = self.pm.get_name(exc.plugin) or str(exc.plugin)
            self._fail(name, f"unknown hook: {exc}")
        self._collect()
        return self

    def register_module(self, name: str, module: object, source: str = "local") -> None:
        """Register an already-imported plugin object (tests, embedding)."""
        self._import_and_register(name, source, None, lambda: module)
        self._collect()

    def _import_and_register(
        self, name: str, source: str, version: str | None, load: Callable[[], Any]
    ) -> None:
        info = PluginInfo(name=name, source=source, version=version)
        self.info[name] = info
        try:
            module = load()
            self.pm.register(module, name=name)
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s failed to load: %s", name, info.error)
            return
        info.hooks = sorted(impl.name for impl in _hookimpls_of(self.pm, module))

    def _fail(self, name: str, error: str) -> None:
        info = self.info.setdefault(name, PluginInfo(name=name, source="?"))
        info.error = error
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)

    def _collect(self) -> None:
        """Run every registration hook, one plugin at a time, so a failure is attributed."""
        for table in self.tables.values():
            table.clear()
        for info in self.info.values():
            info.registered = {}
        for kind, (hookname, base) in _KINDS.items():
            caller = getattr(self.pm.hook, hookname)
            for impl in reversed(caller.get_hookimpls()):
                name = impl.plugin_name
                found = self.info.get(name)
                if found is None or found.error:
                    continue
                info = found
                register: Register[Any] = Register(kind, base, self.tables[kind], name)
                try:
                    impl.function(register=register)
                except Exception as exc:
                    info.error = f"{hookname} raised {type(exc).__name__}: {exc}"
                    log.warning("plugin %s: %s", name, info.error)
                    continue
                if register.added:
                    info.registered[kind] = register.added
        self._observers = None

    # ------------------------------------------------------------------ lookups

    def get(self, kind: str, ident: str) -> type[Any]:
        table = self.tables[kind]
        entry = table.get(ident)
        if entry is None:
            raise PluginError(unknown_message(kind[:-1], ident, table))
        return self.resolve(kind, entry)

    def resolve(self, kind: str, entry: Registered[Any]) -> type[Any]:
        """The class of a registration, importing it if it was registered lazily."""
        if entry.cls is not None:
            return entry.cls
        assert entry.target is not None
        module_name, _, attr = entry.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:
            message = f"cannot import {entry.target}: {type(exc).__name__}: {exc}"
            if entry.plugin in self.info:
                self.info[entry.plugin].error = message
            raise PluginError(f"plugin {entry.plugin}: {message}") from None
        base = _KINDS[kind][1]
        ident = entry.attrs.get("id")
        if not (isinstance(cls, type) and issubclass(cls, base)) or getattr(cls, "id", None) != ident:
            raise PluginError(f"plugin {entry.plugin}: {entry.target} is not a {base.__name__} with id '{ident}'")
        entry.cls = cls
        return cls

    def provider(self, ident: str) -> type[Provider]:
        return self.get("providers", ident)

    def launcher(self, ident: str) -> type[Launcher]:
        return self.get("launchers", ident)

    def runtime(self, ident: str) -> type[ContainerRuntime]:
        return self.get("runtimes", ident)

    def stager(self, ident: str) -> type[Stager]:
        return self.get("stagers", ident)

    def app(self, ident: str) -> type[App]:
        return self.get("apps", ident)

    def sampler(self, ident: str) -> type[SearchSampler]:
        return self.get("samplers", ident)

    def stager_for(self, ref: str) -> type[Stager] | None:
        scheme = ref.split("://", 1)[0] if "://" in ref else "file"
        for entry in self.tables["stagers"].values():
            if scheme in (entry.attr("schemes") or ()):
                return self.resolve("stagers", entry)
        return None

    @property
    def errors(self) -> dict[str, str]:
        return {name: info.error for name, info in self.info.items() if info.error}

    # ------------------------------------------------------------------ other hooks

    def add_commands(self, cli: click.Group) -> None:
        for impl in self.pm.hook.pilotkit_add_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self._fail(impl.plugin_name, f"pilotkit_add_commands raised {type(exc).__name__}: {exc}")

    def probe_checks(self) -> list[tuple[str, ProbeCheck]]:
        """Every plugin's ``pilotkit_probe_checks`` lines, with the plugin's name; one
        that raises or returns something else gives one ``error`` line instead."""
        lines: list[tuple[str, ProbeCheck]] = []
        for impl in self.pm.hook.pilotkit_probe_checks.get_hookimpls():
            try:
                answer: Any = impl.function()
                checks = list(answer)
                if not all(isinstance(c, ProbeCheck) for c in checks):
                    raise TypeError("it returned something other than ProbeCheck lines")
            except Exception as exc:
                message = f"pilotkit_probe_checks raised {type(exc).__name__}: {exc}"
                checks = [ProbeCheck(impl.plugin_name, "error", message)]
            lines += [(impl.plugin_name, c) for c in checks]
        return lines

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every ``pilotkit_event`` implementation; one that raises is
        reported on stderr and disabled."""
        observers = self._observers
        if observers is None:
            observers = self._observers = [
                (impl.plugin_name, impl.function) for impl in self.pm.hook.pilotkit_event.get_hookimpls()
            ]
        if not observers:
            return
        for entry in tuple(observers):
            try:
                entry[1](event=event)
            except Exception as exc:
                observers.remove(entry)
                message = f"pilotkit_event raised {type(exc).__name__}: {exc}; observer disabled"
                if entry[0] in self.info:
                    self.info[entry[0]].error = message
                print(f"pilotkit: plugin {entry[0]}: {message}", file=sys.stderr)


def _hookimpls_of(pm: pluggy.PluginManager, module: object) -> Iterable[Any]:
    return pm.get_hookcallers(module) or []


def unknown_message(kind: str, ident: str, table: dict[str, Any]) -> str:
    known = sorted(table)
    text = f"unknown {kind} '{ident}'"
    close = difflib.get_close_matches(ident, known, n=1)
    if close:
        text += f" (did you mean '{close[0]}'?)"
    text += f"; installed: {', '.join(known) if known else 'none'}"
    return text


_plugins: Plugins | None = None


def get_plugins() -> Plugins:
    """The process's plugin manager, loaded on first use."""
    global _plugins
    if _plugins is None:
        _plugins = Plugins().load()
    return _plugins


def set_plugins(plugins: Plugins | None) -> None:
    """Replace the process's plugin manager (tests, embedding)."""
    global _plugins
    _plugins = plugins


def builtin_module(name: str) -> ModuleType:
    return importlib.import_module(f"pilotkit.builtin.{name}")
