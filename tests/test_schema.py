"""The published JSON schemas are current."""

from __future__ import annotations

import json
from typing import Any

from pilotkit.builtin.tasks import TasksApp
from pilotkit.spec import json_schema, options_schema

from .conftest import ROOT

SCHEMAS = ROOT / "share" / "schema"


def _meaning(schema: Any) -> Any:
    """What a schema says, without the layout of its text: msgspec releases differ in
    how they indent docstrings they copy into ``description`` (0.23 dedents them)."""
    if isinstance(schema, dict):
        return {k: " ".join(v.split()) if k == "description" and isinstance(v, str) else _meaning(v)
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_meaning(v) for v in schema]
    return schema


def test_spec_schema_is_current() -> None:
    published = json.loads((SCHEMAS / "pilot-spec.schema.json").read_text())
    assert _meaning(published) == _meaning(json_schema()), "run: pilotkit schema > share/schema/pilot-spec.schema.json"


def test_tasks_app_schema_is_current() -> None:
    published = json.loads((SCHEMAS / "app-tasks.schema.json").read_text())
    assert _meaning(published) == _meaning(options_schema(TasksApp)), (
        "run: pilotkit schema --plugin apps:tasks > share/schema/app-tasks.schema.json"
    )


def test_schema_matches_the_file_format() -> None:
    schema = json_schema()
    app = schema["$defs"]["AppSection"]
    assert "options" not in app["properties"] and app["additionalProperties"] is True
    assert schema["$defs"]["Resources"]["additionalProperties"] is False
