"""Submit a spec: pick the file, see it validated as you edit (problems marked on their
lines), save it, submit it to the daemon.

What is typed survives the screen: leaving it with unsaved edits keeps them as a draft
(in the dashboard, per file), which the screen shows again when it opens; ``f2`` writes
the text to the file named in the path box."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DirectoryTree, Input, OptionList, TextArea
from textual.widgets.option_list import Option

from ...errors import PilotkitError, SpecError
from ..messages import OpenPilot
from ..source import Problem, SubmitRefused
from ..widgets import Caption, palette_of
from .base import DashboardScreen

DEBOUNCE = 0.4
_checking = threading.Lock()


def check_spec(text: str, path: Path | None) -> list[Problem]:
    """Every problem of a spec's text (blocking: plugins load, files are read).

    One check at a time: a check a newer one replaced still runs to its end in its
    thread, and the spec's types must not be built by two threads at once."""
    from ...spec import parse_spec

    with _checking:
        try:
            parse_spec(text, path)
        except SpecError as exc:
            return [Problem.from_spec(p) for p in exc.problems]
        except PilotkitError as exc:
            return [Problem(exc.message)]
    return []


class SpecTree(DirectoryTree):
    """Directories and ``.toml`` files, hidden ones left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".toml")]


class SpecEditor(TextArea):
    """The spec's text; lines with a problem are marked."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, show_line_numbers=True, soft_wrap=False, tab_behavior="indent")
        self.cursor_blink = False
        self.problem_lines: set[int] = set()
        """0-based lines with a problem."""

    def mark(self, lines: set[int]) -> None:
        if lines != self.problem_lines:
            self.problem_lines = lines
            self.notify_style_update()
            self.refresh()

    def get_line(self, line_index: int) -> Text:
        line = super().get_line(line_index)
        if line_index in self.problem_lines:
            p = palette_of(self)
            line.stylize(Style(bgcolor=p.failed, color="white"))
        return line


class SubmitScreen(DashboardScreen):
    TITLE = "submit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "submit", "Submit", priority=True),
        Binding("ctrl+o", "focus_files", "Files"),
        Binding("ctrl+r", "validate", "Validate"),
        Binding("f2", "save", "Save"),
    ]

    def __init__(self, path: Path | None = None, *, start: Path | None = None,
                 problems: list[Problem] | None = None) -> None:
        super().__init__()
        self.path = path.resolve() if path is not None else None
        self.shown = path
        """The path as the user gave it (shown; ``path`` is resolved, for the daemon)."""
        self.start = start or (path.parent if path is not None else Path("."))
        self.problems: list[Problem] = problems or []
        self.checked: str | None = None
        """The text the problems are about."""
        self._checking: str | None = None
        self._initial_problems = problems
        self.original: str | None = None
        """The file's text as read or last saved (edits beyond it are a draft)."""

    def body(self) -> ComposeResult:
        with Horizontal(id="submit-main"):
            yield SpecTree(self.start, id="spec-files")
            with Vertical(id="submit-right"):
                yield Input(placeholder="spec file (enter to open)", id="spec-path")
                yield SpecEditor(id="spec-text")
                yield Caption(id="spec-verdict")
                yield OptionList(id="spec-problems")

    def on_mount(self) -> None:
        self.query_one("#spec-files").border_title = "Spec files"
        self.query_one("#spec-text").border_title = "Spec"
        drafts = self.dashboard.drafts
        if self.shown is None and drafts.last is not None:  # back to the draft left last
            self.shown = drafts.last
            self.path = drafts.last.resolve()
        if self.shown is not None:
            self.query_one("#spec-path", Input).value = str(self.shown)
            self.open_spec(self.shown)
        else:
            self.query_one(SpecTree).focus()
            self._verdict()

    # -------------------------------------------------------------- files

    @on(DirectoryTree.FileSelected)
    def _file_chosen(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#spec-path", Input).value = str(event.path)
        self.open_spec(event.path)

    @on(Input.Submitted, "#spec-path")
    def _path_entered(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.open_spec(Path(event.value.strip()).expanduser())

    @work(exclusive=True, group="spec-file")
    async def open_spec(self, path: Path) -> None:
        try:
            text = await asyncio.to_thread(path.read_text)
        except OSError as exc:
            self.notify(f"cannot read {path}: {exc.strerror or exc}", severity="error")
            return
        self.path = path.resolve()
        self.shown = path
        self.original = text
        draft = self.dashboard.drafts.get(self.path)
        if draft is not None and draft != text:
            text = draft
            self._initial_problems = None  # about the file, not the draft
            self.notify(f"your unsaved edits of {path} are back (f2 saves them)", timeout=4)
        editor = self.query_one(SpecEditor)
        editor.load_text(text)
        editor.focus()
        if self._initial_problems is not None:  # the daemon's verdict on this very file
            self._show(text, self._initial_problems)
            self._initial_problems = None
            self._to_first_problem()
        else:
            self.validate(text, debounce=False, first=True)

    def _to_first_problem(self) -> None:
        lines = [p.line for p in self.problems if p.line is not None and p.line > 0]
        if lines:
            self.query_one(SpecEditor).move_cursor((lines[0] - 1, 0), center=True)

    def action_focus_files(self) -> None:
        self.query_one(SpecTree).focus()

    # -------------------------------------------------------------- checking

    @on(TextArea.Changed, "#spec-text")
    def _edited(self, event: TextArea.Changed) -> None:
        text = event.text_area.text
        if text != self.checked and text != self._checking:
            self.validate(text)

    def action_validate(self) -> None:
        self.validate(self.query_one(SpecEditor).text, debounce=False)

    @work(exclusive=True, group="validate")
    async def validate(self, text: str, debounce: bool = True, first: bool = False) -> None:
        """Check the text (after a pause in typing) in a thread; ``first``: a file just
        opened, put the cursor on its first problem."""
        self._checking = text
        if debounce:
            await asyncio.sleep(DEBOUNCE)
        problems = await asyncio.to_thread(check_spec, text, self.path)
        self._show(text, problems)
        if first:
            self._to_first_problem()

    def _show(self, text: str, problems: list[Problem]) -> None:
        self.checked = text
        problems = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        self.problems = problems
        self.query_one(SpecEditor).mark({p.line - 1 for p in problems if p.line is not None and p.line > 0})
        options = self.query_one("#spec-problems", OptionList)
        options.clear_options()
        options.add_options([Option(p.format(), id=str(i)) for i, p in enumerate(problems)])
        options.display = bool(problems)
        self._verdict()

    def _verdict(self) -> None:
        p = palette_of(self)
        verdict = self.query_one("#spec-verdict", Caption)
        if self.path is None:
            verdict.show(Text("pick a spec file (ctrl+o: files)", style=p.muted))
        elif self.checked is None:
            verdict.show(Text("checking…", style=p.muted))
        elif self.problems:
            verdict.show(Text(f"✕ {len(self.problems)} problem(s): fix them, then ctrl+s", style=p.failed))
        else:
            verdict.show(Text("✓ valid: ctrl+s submits it", style=p.done))

    @on(OptionList.OptionSelected, "#spec-problems")
    def _problem_chosen(self, event: OptionList.OptionSelected) -> None:
        index = int(event.option.id or 0)
        problem = self.problems[index] if index < len(self.problems) else None
        if problem is not None and problem.line is not None:
            editor = self.query_one(SpecEditor)
            editor.focus()
            editor.move_cursor((problem.line - 1, 0), center=True)

    # -------------------------------------------------------------- submitting

    def action_submit(self) -> None:
        if self.dashboard.refuse("submit"):
            return
        if self.path is None:
            self.notify("pick a spec file first", severity="warning")
            return
        text = self.query_one(SpecEditor).text
        if self.checked == text and self.problems:
            self.notify(f"the spec has {len(self.problems)} problem(s)", severity="error")
            return
        self.send(text)

    @work(exclusive=True, group="submit")
    async def send(self, text: str) -> None:
        try:
            pilot = await self.dashboard.source.submit(text, str(self.path) if self.path else None)
        except SubmitRefused as exc:
            self._show(text, exc.problems)
            self.notify("the daemon refused the spec", severity="error")
            return
        except PilotkitError as exc:
            self.notify(f"submit: {exc.message}", severity="error")
            return
        self.notify(f"submitted {pilot}")
        if self.path is not None:
            self.dashboard.drafts.drop(self.path)
        self.dismiss()
        self.app.post_message(OpenPilot(pilot))

    def action_save(self) -> None:
        box = self.query_one("#spec-path", Input).value.strip()
        if not box:
            self.notify("name the file in the path box first", severity="warning")
            return
        self.save(Path(box).expanduser(), self.query_one(SpecEditor).text)

    @work(exclusive=True, group="spec-save")
    async def save(self, path: Path, text: str) -> None:
        try:
            await asyncio.to_thread(path.write_text, text)
        except OSError as exc:
            self.notify(f"cannot save {path}: {exc.strerror or exc}", severity="error")
            return
        if self.path is not None:
            self.dashboard.drafts.drop(self.path)
        self.path = path.resolve()
        self.shown = path
        self.original = text
        self.dashboard.drafts.drop(self.path)
        self.notify(f"saved {path}")

    def action_back(self) -> None:
        text = self.query_one(SpecEditor).text
        if self.path is not None and self.shown is not None and self.original is not None:
            if text != self.original:
                self.dashboard.drafts.keep(self.shown, text)
                self.notify(f"unsaved edits of {self.shown} kept: s opens them again, f2 there saves them",
                            timeout=4)
            else:
                self.dashboard.drafts.drop(self.path)
        self.dismiss()
