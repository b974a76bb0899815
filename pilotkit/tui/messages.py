"""Messages that travel up: from the data source to the app, from widgets to screens.

Dataclasses, as Textual allows. :class:`ModelChanged` replaces one already queued, so a
burst of thousands of events costs one repaint.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from .model import Connection


@dataclass
class ModelChanged(Message):
    """The source changed the model; repaint (coalesced)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ModelChanged)


@dataclass
class ConnectionChanged(Message):
    """The source's connection changed (connected, reconnecting in N s...)."""

    connection: Connection

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ConnectionChanged)


@dataclass
class OpenPilot(Message):
    """Show this pilot's page."""

    pilot: str


@dataclass
class OpenLogs(Message):
    """Follow a task's output (or, without a task, the pilot's log)."""

    pilot: str
    task: str | None = None
    stderr: bool = False


@dataclass
class RequestAction(Message):
    """Drain, cancel or retry a pilot (the app checks and confirms)."""

    action: str
    pilot: str


@dataclass
class OpenSubmit(Message):
    """Open the submit screen."""
