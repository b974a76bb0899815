"""Modal screens: a yes/no confirmation and the key help."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """``question``: y (or enter) confirms, n (or esc) does not."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "", *, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(Text(self.question, style=Style(bold=True)), id="confirm-question")
            if self.detail:
                yield Static(self.detail, id="confirm-detail", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="confirm-yes")
                yield Button("No (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


KEYS = """\
Everywhere
  q            quit                   ?          this help
  ctrl+p       command palette: actions, pilots, themes
  esc          back                   R          reconnect now
  + - space    replay: faster, slower, pause

Pilots (overview)
  arrows j k   move (g G: first, last) enter      open the pilot
  s            submit a spec          l          the pilot's log
  d            drain                  c          cancel (asks first)
  r            retry failed tasks (asks first for a cancelled pilot)
  i            describe: spec, resources, job, nodes, files

Pilot
  tab          next panel             /          filter tasks (! inverts)
  s  S         sort tasks, reverse    l  enter   task output (L: stderr)
  d c r        drain, cancel, retry   w          the queue: what waits, why; rate, ETA
  i            describe the pilot     !          a shell on the selected node
  F            failures, grouped by exit code and last stderr line (enter: the log)
  t            timeline: which task ran on which node, and when
  n            the nodes now: cores, memory, GPUs and their tasks

Failures
  enter        the first task's stderr   space      mark a group
  r            retry the marked groups' tasks (asks first)
  a            retry every failed task

Logs
  w            wrap                   t          timestamps
  e            stdout or stderr       f          follow the end
  /            search                 n N        next, previous match
  a            the whole file         arrows j k scroll (g G: top, end)

Submit
  ctrl+o       files                  ctrl+r     validate now
  ctrl+s       submit                 enter      (on a problem) go to it
  f2           save                   esc        close (edits kept as a draft)

--readonly and replays leave out the keys that change something.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(Text("Keys (arrows scroll)", style=Style(bold=True)), id="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(KEYS, id="help-keys", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
