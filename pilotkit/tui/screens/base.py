"""What every dashboard screen shares: the header, the footer, repainting from the model."""

from __future__ import annotations

from typing import Any, Protocol, cast

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from ..model import DashboardModel
from ..source import DataSource
from ..widgets.status_bar import StatusBar


class Dashboard(Protocol):
    """What the screens use of the app (:class:`pilotkit.tui.app.PilotkitApp`)."""

    model: DashboardModel
    source: DataSource
    readonly: bool

    def refuse(self, what: str) -> bool:
        """True (and says why) when ``what`` is not allowed (a read-only dashboard)."""
        ...


class DashboardScreen(Screen[Any]):
    """A screen painted from the model; subclasses compose :meth:`body`."""

    TITLE = ""

    @property
    def dashboard(self) -> Dashboard:
        return cast("Dashboard", self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def heading(self) -> str:
        return self.TITLE

    def on_screen_resume(self) -> None:
        self.repaint()

    def repaint(self) -> None:
        """Paint from the model now (the app calls this at most ten times a second)."""
        app = self.dashboard
        model = app.model
        now = model.now() if model.frozen_clock else None
        try:
            self.query_one(StatusBar).show(model.connection, app.source.describe(), app.source.mode,
                                           now or None, app.readonly, self.heading())
            self.refresh_view(model)
        except NoMatches:  # composing or closing: the next repaint will do
            return

    def refresh_view(self, model: DashboardModel) -> None:
        """Update the widgets from ``model`` (only what changed)."""
