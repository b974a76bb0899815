"""Rich rendering for the command line: progress, summaries, tables."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..units import format_size
from ..vocab import TASKS_DIR

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..pilot import PilotOutcome
    from ..plugins import Plugins
    from ..progress import Progress
    from ..types import GpuReport, NodeInfo, ProbeCheck
    from ..vocab import Counts

err_console = Console(stderr=True)
out_console = Console()


def bar(g: Counts, width: int = 30) -> Text:
    """A Dask-style bar: done, failed, running, then queued."""
    total = max(g.total, 1)
    text = Text()
    parts = (
        (g.done, "green"),
        (g.failed, "red"),
        (g.cancelled, "yellow"),
        (g.running, "cyan"),
    )
    used = 0
    for count, style in parts:
        n = round(width * count / total)
        n = min(n, width - used)
        text.append("█" * n, style=style)
        used += n
    text.append("░" * (width - used), style="grey37")
    return text


def progress_table(progress: Progress, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", expand=False, box=None, padding=(0, 1))
    for column, justify in (
        ("group", "left"),
        ("progress", "left"),
        ("total", "right"),
        ("queued", "right"),
        ("running", "right"),
        ("done", "right"),
        ("failed", "right"),
        ("cancelled", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]

    def row(name: str, g: Counts, style: str = "") -> None:
        table.add_row(
            Text(name, style=style),
            bar(g),
            str(g.total),
            str(g.queued),
            str(g.running),
            Text(str(g.done), style="green"),
            Text(str(g.failed), style="red" if g.failed else ""),
            str(g.cancelled),
        )

    for name, g in progress.groups.items():
        row(name, g)
    if len(progress.groups) > 1:
        row("total", progress.totals(), "bold")
    return table


class LiveProgress:
    """The live view of ``pilotkit run``, refreshed a few times a second."""

    def __init__(self, pilot_id: str, progress: Progress) -> None:
        self.pilot_id = pilot_id
        self.progress = progress
        self.started = time.monotonic()
        self.live = Live(self, console=err_console, refresh_per_second=4, transient=True)

    def log(self, source: str, message: str) -> None:
        """Print an app's or provider's message (a scheduler address, a lost node...)
        above the live view."""
        self.live.console.print(Text(f"{source}: {message}", style="dim"))

    def __rich__(self) -> RenderableType:
        elapsed = time.monotonic() - self.started
        head = Text.assemble(
            ("pilot ", "dim"),
            (self.pilot_id, "bold"),
            ("  state ", "dim"),
            (self.progress.state, "bold cyan"),
            ("  elapsed ", "dim"),
            (f"{elapsed:.1f}s", ""),
        )
        return Group(head, progress_table(self.progress))

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)


def print_summary(outcome: PilotOutcome, progress: Progress) -> None:
    """The end of ``pilotkit run`` on a terminal: :class:`~.summary.Summary` as a table and
    coloured lines (reads the tasks' stderr files: call it off the event loop)."""
    from .summary import Summary

    s = Summary.of(outcome, progress)
    style = {"done": "green", "failed": "red", "cancelled": "yellow", "walltime-expired": "yellow"}
    err_console.print(progress_table(progress, title=f"pilot {outcome.pilot_id}"))
    state_line = Text.assemble(
        ("state: ", "dim"),
        (s.state, f"bold {style.get(s.state, '')}"),
        (f"  ({outcome.reason})" if outcome.reason else "", "dim"),
        ("  time: ", "dim"),
        (s.elapsed, ""),
    )
    err_console.print(state_line)
    err_console.print(Text.assemble(("results: ", "dim"), str(outcome.results)), soft_wrap=True)
    err_console.print(Text.assemble(("task logs: ", "dim"), str(outcome.workdir / TASKS_DIR)), soft_wrap=True)
    if s.failed:
        err_console.print(Text(f"failed tasks: {s.failed}", style="bold red"))
        for text in s.failures:
            err_console.print(Text(f"  {text}"), soft_wrap=True)
        if s.more_line:
            err_console.print(Text(f"  {s.more_line}", style="dim"), soft_wrap=True)
    if s.best:
        err_console.print(Text(s.best, style="bold"), soft_wrap=True)


def print_probe(node: NodeInfo, report: GpuReport, checks: Sequence[tuple[str, ProbeCheck]] = ()) -> None:
    table = Table(title=f"node {node.name}", title_justify="left", show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("cores", f"{node.cores} usable of {node.total_cores}")
    table.add_row("memory", f"{format_size(node.memory)} usable of {format_size(node.total_memory)}")
    table.add_row("driver", report.driver_version or "N/A")
    table.add_row("CUDA", report.cuda_version or "N/A")
    table.add_row("GPUs", str(len(report.gpus)) + (f" ({report.reason})" if report.reason else ""))
    out_console.print(table)
    if report.gpus:
        gpus = Table(box=None)
        for column in ("index", "name", "uuid", "memory", "cc", "MIG"):
            gpus.add_column(column)
        for g in report.gpus:
            gpus.add_row(
                str(g.index),
                g.name,
                g.uuid,
                format_size(g.memory_total),
                g.compute_capability or "N/A",
                "instance"
                if g.mig_parent
                else ("on" if g.mig_mode else "off" if g.mig_mode is False else "N/A"),
            )
        out_console.print(gpus)
    if checks:  # one line each, like `pilotkit doctor`'s (the plugin's name is in --json)
        styles = {"ok": "green", "warning": "yellow", "error": "red"}
        out_console.print("plugin checks", style="italic")
        for _plugin, check in checks:
            line = Text(f"{check.level:<7}", style=styles[check.level])
            line.append(f" {check.name}: {check.message}")
            if check.hint and check.level != "ok":
                line.append(f"; {check.hint}")
            out_console.print(line, soft_wrap=True)


def print_plugins(plugins: Plugins) -> None:
    table = Table(box=None)
    for column in ("plugin", "source", "version", "registers", "status"):
        table.add_column(column)
    for info in plugins.info.values():
        registers = "; ".join(f"{kind}: {', '.join(ids)}" for kind, ids in info.registered.items())
        if not registers and info.hooks:
            registers = ", ".join(h.removeprefix("pilotkit_") for h in info.hooks)
        status = Text(f"error: {info.error}", style="red") if info.error else Text("ok", style="green")
        table.add_row(info.name, info.source, info.version or "", registers, status)
    out_console.print(table)
