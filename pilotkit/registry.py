"""What a registration hook receives: ``register(cls)``, and what it records.

Below the plugin manager and the hook specifications, so both can name it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import PluginError

T = TypeVar("T")


@dataclass
class Registered(Generic[T]):
    """A class a plugin registered, and which plugin it came from. A lazy registration
    names the class (``module:Class``) and is imported on first use."""

    cls: type[T] | None
    plugin: str
    target: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def attr(self, name: str, default: Any = None) -> Any:
        """A class attribute, without importing a lazy class."""
        if self.cls is not None:
            return getattr(self.cls, name, default)
        return self.attrs.get(name, default)


class Register(Generic[T]):
    """The callable a registration hook receives: ``register(cls)``."""

    def __init__(self, kind: str, base: type[T], table: dict[str, Registered[T]], plugin: str) -> None:
        self.kind = kind
        self.base = base
        self.table = table
        self.plugin = plugin
        self.added: list[str] = []

    def __call__(self, cls: type[T]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise PluginError(f"{self.plugin}: {cls!r} is not a {self.base.__name__} subclass")
        ident = getattr(cls, "id", None)
        if not isinstance(ident, str) or not ident:
            raise PluginError(f"{self.plugin}: {cls.__name__} has no 'id'")
        other = self.table.get(ident)
        if other is not None and other.cls is not cls:
            raise PluginError(f"{self.plugin}: {self.kind} '{ident}' is already registered by {other.plugin}")
        self.table[ident] = Registered(cls, self.plugin)
        self.added.append(ident)

    def lazy(self, ident: str, target: str, **attrs: Any) -> None:
        """Register the class at ``target`` (``module:Class``) under ``ident`` without
        importing it: it is imported when a spec first uses it. Give here the class
        attributes pilotkit reads before that (a stager's ``schemes``, a runtime's
        ``binaries``). Keeps ``pilotkit`` start-up fast when a plugin's module is heavy."""
        if ":" not in target:
            raise PluginError(f"{self.plugin}: lazy target '{target}' is not 'module:Class'")
        other = self.table.get(ident)
        if other is not None and other.target != target:
            raise PluginError(f"{self.plugin}: {self.kind} '{ident}' is already registered by {other.plugin}")
        self.table[ident] = Registered(None, self.plugin, target, dict(attrs, id=ident))
        self.added.append(ident)


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a plugin package that re-exports ``names`` (name ->
    submodule) without importing them: ``__getattr__ = lazy_exports(__name__, {...})``.
    With :meth:`Register.lazy`, loading the plugin imports only its ``__init__``, so
    every ``pilotkit`` command starts as fast with the plugin installed as without."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{module}", package), name)

    return __getattr__
