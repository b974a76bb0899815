"""What every dashboard screen shares: the header, the footer, repainting from the model."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol, cast

from textual import events
from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from ..model import DashboardModel
from ..source import DataSource
from ..widgets.status_bar import StatusBar


class Drafts:
    """Spec text typed in the submit screen and not saved, per file, for the life of the
    dashboard."""

    def __init__(self) -> None:
        self.texts: dict[Path, str] = {}
        self.last: Path | None = None
        """The file of the latest draft, as the user named it (the submit screen opens it)."""

    def keep(self, path: Path, text: str) -> None:
        self.texts[path.resolve()] = text
        self.last = path

    def get(self, path: Path) -> str | None:
        return self.texts.get(path.resolve())

    def drop(self, path: Path) -> None:
        self.texts.pop(path.resolve(), None)
        if self.last is not None and self.last.resolve() == path.resolve():
            self.last = None


class Dashboard(Protocol):
    """What the screens use of the app (:class:`pilotkit.tui.app.PilotkitApp`)."""

    model: DashboardModel
    source: DataSource
    readonly: bool
    drafts: Drafts

    @property
    def can_act(self) -> bool:
        """Whether actions are offered (not ``--readonly``, not a replay)."""
        ...

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
        if not self.dashboard.can_act:
            self.hide_actions()
        self.fit(self.app.size.width, self.app.size.height)
        yield StatusBar(id="status")
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    ACTING: frozenset[str] = frozenset({"act", "submit", "shell", "retry_selection", "mark"})
    """Actions that change something: left out of the footer where the dashboard may not
    act (``--readonly``, a replay); their keys still say why they are refused."""

    def hide_actions(self) -> None:
        """Keep the keys of :attr:`ACTING` actions out of the footer."""
        keys = self._bindings.key_to_bindings
        for key, bindings in keys.items():
            keys[key] = [dataclasses.replace(b, show=False) if b.action.split("(")[0] in self.ACTING else b
                         for b in bindings]
        self.refresh_bindings()

    def heading(self) -> str:
        return self.TITLE

    SHORT = 40
    """Fewer lines than this: the screen has the class ``-short`` (compact panels)."""
    NARROW = 120
    """Fewer columns than this: the class ``-narrow``."""

    def on_resize(self, event: events.Resize) -> None:
        self.fit(event.size.width, event.size.height)

    def fit(self, width: int, height: int) -> None:
        """Set the layout classes for a terminal of ``width`` x ``height``."""
        self.set_class(height < self.SHORT, "-short")
        self.set_class(width < self.NARROW, "-narrow")

    def on_screen_resume(self) -> None:
        self.fit(self.app.size.width, self.app.size.height)
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
