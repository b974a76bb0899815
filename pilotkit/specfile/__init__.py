"""The spec file as plain data: its typed model, parsing with file:line problems, the
line map and the JSON schema. Nothing here imports a plugin; :mod:`pilotkit.spec`
resolves a parsed spec's plugins."""

from __future__ import annotations

from .lines import KeyLines
from .model import (
    AppSection,
    Bind,
    CampaignSection,
    ContainerSection,
    Duration,
    ImageSection,
    PilotSection,
    PilotSpec,
    ProviderSection,
    Resources,
    Size,
)
from .parsing import ParsedSpec, load, parse
from .schema import json_schema, options_schema

__all__ = [
    "AppSection",
    "Bind",
    "CampaignSection",
    "ContainerSection",
    "Duration",
    "ImageSection",
    "KeyLines",
    "ParsedSpec",
    "PilotSection",
    "PilotSpec",
    "ProviderSection",
    "Resources",
    "Size",
    "json_schema",
    "load",
    "options_schema",
    "parse",
]
