"""Click parameter types shared by the commands: durations read as in spec files."""

from __future__ import annotations

from typing import Any

import click

from ..units import parse_duration


class DurationType(click.ParamType[float, Any]):
    """A duration as a spec file writes it (``10s``, ``5m``, ``1h30m``, ``01:30:00``).

    A bare number is refused with the hint to add a unit, as in a spec file, unless
    ``bare_seconds`` (an option that has always taken seconds keeps doing so).
    """

    name = "duration"

    def __init__(self, *, bare_seconds: bool = False, minimum: float = 0.0) -> None:
        self.bare_seconds = bare_seconds
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(str(value), require_unit=not self.bare_seconds)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds < self.minimum:
            self.fail(f"{value} is too short: at least {self.minimum:g}s", param, ctx)
        return seconds


DURATION = DurationType()
"""A duration with a unit."""
INTERVAL = DurationType(minimum=0.1)
"""A duration with a unit, at least 0.1 s (how often something repeats)."""
