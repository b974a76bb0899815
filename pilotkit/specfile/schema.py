"""The JSON schemas of spec files and of a plugin's options."""

from __future__ import annotations

from typing import Any

import msgspec

from .model import PilotSpec


def json_schema() -> dict[str, Any]:
    """The JSON schema of spec files. Plugin sections (provider, image, container, app)
    take the selected plugin's options inline, so they allow extra keys; each plugin's
    own options have a schema of their own (:func:`options_schema`)."""
    schema = msgspec.json.schema(PilotSpec)
    for name, defn in schema.get("$defs", {}).items():
        if name in ("ProviderSection", "ImageSection", "ContainerSection", "AppSection"):
            defn["properties"].pop("options", None)
            defn["additionalProperties"] = True
            defn["description"] = (defn.get("description", "") + " Other keys: the plugin's options.").strip()
    schema["title"] = "pilotkit pilot spec"
    return schema


def options_schema(cls: type[Any]) -> dict[str, Any]:
    """The JSON schema of one plugin's inline options."""
    schema = msgspec.json.schema(cls.Options)
    schema["title"] = f"{cls.id} options"
    return schema
