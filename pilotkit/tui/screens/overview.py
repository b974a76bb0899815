"""The overview: every pilot the daemon (or the replayed log) knows."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from ..messages import OpenLogs, OpenPilot, OpenSubmit, RequestAction
from ..model import DashboardModel
from ..widgets.pilot_table import PilotTable
from .base import DashboardScreen


class OverviewScreen(DashboardScreen):
    TITLE = "pilots"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", show=True),
        Binding("s", "submit", "Submit"),
        Binding("l", "logs", "Log"),
        Binding("i", "describe", "Describe"),
        Binding("d", "act('drain')", "Drain"),
        Binding("c", "act('cancel')", "Cancel"),
        Binding("r", "act('retry')", "Retry failed"),
    ]

    def body(self) -> ComposeResult:
        yield PilotTable(id="pilots")
        yield Static("", id="overview-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(PilotTable).focus()

    def fit(self, width: int, height: int) -> None:
        super().fit(width, height)
        for table in self.query(PilotTable):
            if table.narrow is not None and table.narrow != (width < 120):
                table.fit(width)
                self.repaint()

    def refresh_view(self, model: DashboardModel) -> None:
        table = self.query_one(PilotTable)
        table.sync(model)
        hint = self.query_one("#overview-hint", Static)
        if not model.pilots:
            if model.connection.ok:
                hint.update("No pilots yet: press s to submit a spec.")
            else:
                hint.update(f"No data: {model.connection.state} {model.connection.detail}".strip())
            hint.display = True
        else:
            hint.display = False

    def _selected(self) -> str | None:
        pilot = self.query_one(PilotTable).selected
        if pilot is None:
            self.notify("no pilot selected", severity="warning", timeout=3)
        return pilot

    def action_open(self) -> None:
        pilot = self._selected()
        if pilot is not None:
            self.post_message(OpenPilot(pilot))

    def action_submit(self) -> None:
        self.post_message(OpenSubmit())

    def action_logs(self) -> None:
        pilot = self._selected()
        if pilot is not None:
            self.post_message(OpenLogs(pilot))

    def action_describe(self) -> None:
        from .describe import DescribeScreen

        pilot = self._selected()
        if pilot is not None:
            self.app.push_screen(DescribeScreen(pilot))

    def action_act(self, action: str) -> None:
        pilot = self._selected()
        if pilot is not None:
            self.post_message(RequestAction(action, pilot))
