"""Values under a spec: a profile's tables (from a site file, then a user file) laid
under the spec's own, each value remembering the file and line it came from."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .lines import KeyLines, Origin
from .model import PLUGGABLE, core_keys

PROFILE_SECTIONS = ("provider", "resources", "image", "container", "pilot", "env")
"""The spec's tables a profile may set."""


@dataclass
class Layer:
    """One file's tables for a spec, e.g. ``[profiles.NAME.resources]`` of a user file."""

    data: dict[str, Any]
    """Spec-shaped: ``{"resources": {...}, "provider": {...}}``."""
    file: str
    lines: KeyLines
    """The lines of that file."""
    prefix: str
    """The key prefix of these tables in that file (``profiles.NAME.``)."""

    def origin(self, key: str) -> Origin:
        return Origin(self.file, self.lines.find(self.prefix + key), self.prefix)


def lay(data: dict[str, Any], lines: KeyLines, layers: list[Layer]) -> dict[str, Any]:
    """The spec's ``data`` on top of ``layers`` (lowest first). Values from a layer are
    recorded in ``lines.origins``.

    A pluggable section's plugin is the one the highest of the spec and the layers picks
    (``provider.type``, ``container.runtime``...). A lower layer that picks another one
    keeps only the section's own keys (``binds``, ``ref``): its options belong to the
    other plugin."""
    chosen: dict[str, Any] = {}
    for section, selector in PLUGGABLE.items():
        for tables in [data, *(layer.data for layer in reversed(layers))]:
            table = tables.get(section)
            if isinstance(table, dict) and selector in table:
                chosen[section] = table[selector]
                break
    merged: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for layer in layers:
        tables = dict(layer.data)
        for section, selector in PLUGGABLE.items():
            theirs = tables.get(section)
            if isinstance(theirs, dict) and selector in theirs and theirs[selector] != chosen[section]:
                own = {k: v for k, v in theirs.items() if k in core_keys(section) and k != selector}
                if own:
                    tables[section] = own
                else:
                    del tables[section]
        _overlay(merged, tables, "", layer, origins)
    _overlay(merged, data, "", None, origins)
    lines.origins.update(origins)
    return merged


def _overlay(
    dst: dict[str, Any], src: dict[str, Any], prefix: str, layer: Layer | None, origins: dict[str, Origin]
) -> None:
    for k, value in src.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(value, dict) and isinstance(dst.get(k), dict):
            if layer is not None:
                origins.setdefault(key, layer.origin(key))
            _overlay(dst[k], value, key, layer, origins)
            continue
        dst[k] = copy.deepcopy(value)
        for old in [o for o in origins if o == key or o.startswith((key + ".", key + "["))]:
            del origins[old]
        if layer is not None:
            _record(value, key, layer, origins)


def _record(value: Any, key: str, layer: Layer, origins: dict[str, Origin]) -> None:
    origins[key] = layer.origin(key)
    if isinstance(value, dict):
        for k, v in value.items():
            _record(v, f"{key}.{k}", layer, origins)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, dict):
                _record(v, f"{key}[{i}]", layer, origins)
