"""Failure triage: a pilot's failed tasks grouped by outcome, exit code and the last line
of their stderr, most first (the daemon's ``failures``, what ``pilotkit failures PILOT``
prints). Enter on a group opens the stderr of its first task at its end, where the error
is. ``space`` marks groups; ``r`` retries the marked groups' tasks (the highlighted
group's when none is marked), after a confirmation that says what it will do; ``a``
retries every failed task (asks first where the pilot was cancelled). None of them in
``--readonly`` or a replay."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...errors import PilotkitError
from ...protocol import FailureGroup, FailuresResult
from ..messages import OpenLogs, RequestAction
from ..model import PilotView
from ..source import ActionRefused
from ..widgets import Caption, palette_of
from .base import DashboardScreen
from .modals import ConfirmScreen


def _key(g: FailureGroup) -> tuple[str, int | None, str]:
    return (g.outcome, g.exit_code, g.last_line)


def retry_selection_question(pilot: str, tasks: list[str], failed: int, view: PilotView | None) -> tuple[str, str]:
    """What ``r`` asks before retrying ``tasks`` of ``pilot`` (``failed`` of its tasks failed)."""
    names = ", ".join(tasks[:6]) + (f" and {len(tasks) - 6} more" if len(tasks) > 6 else "")
    keep = failed - len(tasks)
    detail = (f"The pilot runs again in its workdir, with a new allocation (a new walltime), and these "
              f"{len(tasks)} task(s) run again with new attempt numbers: {names}. ")
    if keep > 0:
        detail += f"The other {keep} failed task(s) keep their results. "
    if view is not None:
        totals = view.totals()
        unfinished = totals.cancelled + totals.queued
        if unfinished:
            detail += f"Its {unfinished} unfinished task(s) run again too. "
        detail += f"Done tasks ({totals.done}) are kept."
    return f"Retry {len(tasks)} failed task(s) of {pilot}?", detail.strip()


class FailuresScreen(DashboardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("space", "mark", "Mark"),
        Binding("r", "retry_selection", "Retry marked"),
        Binding("a", "act('retry')", "Retry all failed"),
        Binding("g", "reload", "Again"),
    ]

    def __init__(self, pilot: str) -> None:
        super().__init__()
        self.pilot_id = pilot
        self.result: FailuresResult | None = None
        self.problem: str | None = None
        self.marked: set[tuple[str, int | None, str]] = set()
        """The marked groups, by (outcome, exit code, last line): they stay marked when the list is asked again."""

    def heading(self) -> str:
        return f"{self.pilot_id} > failures"

    def body(self) -> ComposeResult:
        yield Caption(id="failures-caption")
        yield OptionList(id="failures")

    def on_mount(self) -> None:
        self.query_one("#failures").border_title = "Failed tasks, grouped"
        self.query_one("#failures-caption", Caption).show("asking the daemon…")
        self.query_one(OptionList).focus()
        self.load()

    @work(exclusive=True, group="failures")
    async def load(self) -> None:
        try:
            self.result = await self.dashboard.source.failures(self.pilot_id)
            self.problem = None
        except PilotkitError as exc:
            self.problem = exc.message
        self.show()

    def show(self) -> None:
        p = palette_of(self)
        caption = self.query_one("#failures-caption", Caption)
        options = self.query_one(OptionList)
        options.clear_options()
        r = self.result
        if r is None:
            caption.show(Text(self.problem or "asking the daemon…", style=p.failed if self.problem else p.muted))
            return
        marked = sum(g.count for g in r.groups if _key(g) in self.marked)
        acts = self.dashboard.can_act
        what = "" if not acts else f"; {marked} task(s) marked (r: retry them)" if marked else "; space: mark, r: retry"
        caption.show(Text(f"{r.failed} failed task(s) in {len(r.groups)} group(s); enter: the first one's stderr"
                          + what, style=p.muted))
        at = options.highlighted
        for i, g in enumerate(r.groups):
            text = Text(no_wrap=True, overflow="ellipsis")
            if acts:
                text.append("[x] " if _key(g) in self.marked else "[ ] ", Style(bold=True))
            text.append(f"{g.count:>6} ", Style(bold=True))
            code = f"exit {g.exit_code}" if g.exit_code is not None else "no exit code"
            text.append(f"{g.outcome} ({code}) ", Style(color=p.failed))
            text.append(g.last_line or "(no stderr)")
            more = f" and {g.count - 3} more" if g.count > 3 else ""
            text.append(f"  {', '.join(g.tasks[:3])}{more}", p.muted)
            options.add_option(Option(text, id=str(i)))
        if r.groups:
            options.highlighted = min(at or 0, len(r.groups) - 1)

    def lines(self) -> list[str]:
        """The groups as the screen lists them (plain text)."""
        options = self.query_one(OptionList)
        return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

    @on(OptionList.OptionSelected, "#failures")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if self.result is None:
            return
        group = self.result.groups[int(event.option.id or 0)]
        if group.tasks:
            self.post_message(OpenLogs(self.pilot_id, group.tasks[0], stderr=True))

    def action_reload(self) -> None:
        self.load()

    def _highlighted(self) -> FailureGroup | None:
        i = self.query_one(OptionList).highlighted
        if self.result is None or i is None or not 0 <= i < len(self.result.groups):
            return None
        return self.result.groups[i]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No marks where nothing can be retried (``space`` then pauses a replay)."""
        if action == "mark" and not self.dashboard.can_act:
            return False
        return True

    def action_mark(self) -> None:
        group = self._highlighted()
        if group is None:
            return
        self.marked ^= {_key(group)}
        self.show()

    def selection(self) -> list[str]:
        """The tasks ``r`` retries: the marked groups', else the highlighted group's."""
        if self.result is None:
            return []
        groups = [g for g in self.result.groups if _key(g) in self.marked]
        if not groups:
            group = self._highlighted()
            groups = [group] if group is not None else []
        return sorted({t for g in groups for t in g.tasks})

    def action_retry_selection(self) -> None:
        if self.dashboard.refuse("retry"):
            return
        tasks = self.selection()
        if not tasks or self.result is None:
            self.notify("retry: no failed task selected", severity="warning")
            return
        view = self.dashboard.model.pilots.get(self.pilot_id)
        if view is not None and not view.terminal:
            self.notify(f"retry: {self.pilot_id} is still {view.state}: retry once it ends", severity="warning")
            return
        question, detail = retry_selection_question(self.pilot_id, tasks, self.result.failed, view)

        def answered(ok: bool | None) -> None:
            if ok:
                self.retry(tasks)
            else:
                self.notify("retry: not done", timeout=2)

        self.app.push_screen(ConfirmScreen(question, detail, yes=f"Retry {len(tasks)}"), answered)

    @work(exclusive=True, group="retry")
    async def retry(self, tasks: list[str]) -> None:
        try:
            said = await self.dashboard.source.retry_tasks(self.pilot_id, tasks)
        except ActionRefused as exc:
            self.notify(exc.message, severity="warning")
        except PilotkitError as exc:
            self.notify(f"retry {self.pilot_id}: {exc.message}", severity="error")
        else:
            self.notify(said)
            self.marked.clear()
            self.load()

    def action_act(self, action: str) -> None:
        self.post_message(RequestAction(action, self.pilot_id))

    def action_back(self) -> None:
        self.dismiss()
