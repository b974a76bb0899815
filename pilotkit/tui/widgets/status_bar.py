"""The header: where the data comes from, the connection, live or replay, the clock."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from ..format import clock
from ..model import Connection
from . import palette_of

SYMBOLS = {
    "connected": "●",
    "replay": "▶",
    "replayed": "■",
    "paused": "❚❚",
    "connecting": "◌",
    "reconnecting": "◌",
    "lost": "✕",
}


class StatusBar(Static):
    """One line: ``pilotkit │ ● connected: daemon pid 1 on host │ LIVE │ 12:00:00``."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self._last: tuple[object, ...] = ()

    def show(self, connection: Connection, where: str, mode: str, now: float | None, readonly: bool,
             title: str = "") -> None:
        key = (connection, where, mode, int(now or 0), readonly, title, palette_of(self))
        if key == self._last:
            return
        self._last = key
        p = palette_of(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" pilotkit ", Style(bold=True))
        if title:
            text.append("> ", p.muted)
            text.append(title, Style(bold=True))
            text.append(" ")
        text.append("│ ", p.muted)
        color = p.done if connection.state in ("connected", "replay", "replayed") else (
            p.failed if connection.state == "lost" else p.running)
        text.append(f"{SYMBOLS.get(connection.state, '?')} {connection.state}", Style(color=color, bold=True))
        detail = connection.detail or where
        if connection.state == "reconnecting":
            detail = f"{connection.detail}; retry {connection.attempt}"
            if connection.retry_in is not None:
                detail += f" in {connection.retry_in:.1f}s"
        if detail:
            text.append(f": {detail}")
        text.append(" │ ", p.muted)
        text.append(mode.upper(), Style(color=p.accent, bold=True))
        if readonly:
            text.append(" │ ", p.muted)
            text.append("read-only", Style(color=p.running))
        if now:
            text.append(" │ ", p.muted)
            text.append(clock(now))
        self.update(text, layout=False)
