"""Pilot and task states: defined in :mod:`pilotkit.vocab`, with the rest of the words."""

from __future__ import annotations

from .vocab import TERMINAL_STATES, Outcome, PilotState, TaskStatus

__all__ = ["TERMINAL_STATES", "Outcome", "PilotState", "TaskStatus"]
