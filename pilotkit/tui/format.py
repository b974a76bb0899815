"""Text for the dashboard: bars, sparklines, durations, event lines (Rich only, no Textual).

Every function here is pure: the colours come in a :class:`Palette`, built from the
current Textual theme by the widgets, so a theme change repaints everything.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.style import Style
from rich.text import Text

from ..events import (
    AllocationClaimed,
    AppProgress,
    Event,
    GroupAdded,
    Log,
    Metrics,
    NodeLost,
    NodeReady,
    PilotStateChanged,
    StageProgress,
    TaskCancelled,
    TaskFinished,
    TaskStarted,
)
from ..units import format_duration, format_size
from ..vocab import Counts

BLOCKS = " ▏▎▍▌▋▊▉█"
SPARKS = "▁▂▃▄▅▆▇█"
NA = "N/A"
_serials = itertools.count(1)


@dataclass(frozen=True)
class Palette:
    """Colours of states and bars (Rich colour strings)."""

    done: str = "#4EBF71"
    failed: str = "#B93C5B"
    running: str = "#FEA62B"
    queued: str = "#707070"
    cancelled: str = "#9A72D8"
    """A violet of mid lightness: readable on dark and light themes, unlike a grey."""
    empty: str = "#303030"
    muted: str = "#909090"
    accent: str = "#0178D4"
    serial: int = field(default=0, compare=False)
    """Different for every palette made from a theme: caches of rendered lines key on it."""

    @classmethod
    def from_theme(cls, variables: Mapping[str, str]) -> Palette:
        """From ``App.theme_variables``: the theme's success, error, warning and primary
        colours, and shades between its foreground and background (so light themes work)."""

        def pick(name: str, default: str) -> str:
            value = variables.get(name)
            if not value or not value.startswith("#") or len(value) < 7:
                return default
            return value[:7]

        base = cls()
        fg = pick("foreground", "#E0E0E0")
        bg = pick("background", "#121212")
        return cls(
            done=pick("success", base.done),
            failed=pick("error", base.failed),
            running=pick("warning", base.running),
            queued=blend(fg, bg, 0.6),
            cancelled=base.cancelled,
            empty=blend(fg, bg, 0.85),
            muted=blend(fg, bg, 0.4),
            accent=pick("primary", base.accent),
            serial=next(_serials),
        )

    def state(self, state: str) -> str:
        """The colour of a pilot or task state."""
        if state in ("done", "ok"):
            return self.done
        if state in ("failed", "timeout", "spawn-error", "lost"):
            return self.failed
        if state in ("cancelled", "walltime-expired", "killed"):
            return self.cancelled
        if state in ("queued", "new", "claiming"):
            return self.muted
        return self.running


DEFAULT_PALETTE = Palette()


def blend(a: str, b: str, toward_b: float) -> str:
    """The colour ``toward_b`` of the way from ``#rrggbb`` ``a`` to ``b``."""
    ca = [int(a[i:i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * toward_b):02X}" for x, y in zip(ca, cb, strict=True))


# --------------------------------------------------------------------------- bars


def bar(fraction: float | None, width: int, color: str, palette: Palette = DEFAULT_PALETTE) -> Text:
    """A horizontal bar ``width`` cells wide, filled to ``fraction`` (eighths of a cell)."""
    text = Text(no_wrap=True, overflow="crop")
    if width <= 0:
        return text
    if fraction is None or math.isnan(fraction):
        return Text(NA.center(width), style=palette.muted, no_wrap=True)
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text.append("█" * full, Style(color=color, bgcolor=palette.empty))
    if part and full < width:
        text.append(BLOCKS[part], Style(color=color, bgcolor=palette.empty))
        full += 1
    if full < width:
        text.append(" " * (width - full), Style(bgcolor=palette.empty))
    return text


def stacked_bar(parts: Sequence[tuple[int, str]], total: int, width: int, palette: Palette = DEFAULT_PALETTE) -> Text:
    """A bar of several coloured parts (``(count, colour)``) of ``total``; the rest empty.

    Every non-zero part gets at least one cell, so a single failure stays visible."""
    text = Text(no_wrap=True, overflow="crop")
    if width <= 0:
        return text
    if total <= 0:
        return Text(" " * width, style=Style(bgcolor=palette.empty), no_wrap=True)
    cells: list[int] = []
    used = 0
    for count, _ in parts:
        n = 0 if count <= 0 else max(1, round(count / total * width))
        cells.append(n)
        used += n
    while used > width:  # rounding and minimums overshot: take from the largest part
        i = max(range(len(cells)), key=lambda k: cells[k])
        cells[i] -= 1
        used -= 1
    filled = sum(count for count, _ in parts)
    if filled >= total and used < width and cells:  # complete: no empty gap from rounding
        i = max(range(len(cells)), key=lambda k: cells[k])
        cells[i] += width - used
        used = width
    for n, (_, color) in zip(cells, parts, strict=True):
        if n:
            text.append("█" * n, Style(color=color, bgcolor=palette.empty))
    if used < width:
        text.append(" " * (width - used), Style(bgcolor=palette.empty))
    return text


def progress_bar(counts: Counts, width: int, palette: Palette = DEFAULT_PALETTE) -> Text:
    """Done, failed, cancelled and running tasks of ``counts.total``; queued is empty."""
    parts = [
        (counts.done, palette.done),
        (counts.failed, palette.failed),
        (counts.cancelled, palette.cancelled),
        (counts.running, palette.running),
    ]
    return stacked_bar(parts, counts.total, width, palette)


def spark(values: Iterable[float | None], width: int, high: float = 100.0) -> str:
    """The last ``width`` values as a sparkline on a 0..``high`` scale (blank for None)."""
    items = list(values)[-width:] if width > 0 else []
    out = []
    for v in items:
        if v is None:
            out.append(" ")
        else:
            level = min(len(SPARKS) - 1, max(0, int(v / high * (len(SPARKS) - 1) + 0.5))) if high > 0 else 0
            out.append(SPARKS[level])
    return "".join(out).rjust(width)


def percent(value: float | None) -> str:
    return NA if value is None else f"{value:3.0f}%"


def size_pair(used: int | None, total: int | None) -> str:
    """``12.0/64.0 GiB``, or N/A for an unsupported reading."""
    if used is None:
        return NA
    if total is None:
        return format_size(used)
    u, t = _gib(used), _gib(total)
    return f"{u}/{t} GiB"


def _gib(n: int) -> str:
    g = n / 2**30
    return f"{g:.0f}" if g >= 100 else f"{g:.1f}"


# --------------------------------------------------------------------------- time


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def seconds(value: float | None) -> str:
    """A task's run time: ``0.3s``, ``42s``, ``1:02:03``."""
    if value is None:
        return ""
    if value < 10:
        return f"{value:.1f}s"
    if value < 60:
        return f"{value:.0f}s"
    return format_duration(value)


def clock(t: float | None) -> str:
    """Local ``HH:MM:SS`` of an epoch time."""
    return "--:--:--" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def walltime_cell(left: float | None, span: float | None, width: int, palette: Palette = DEFAULT_PALETTE) -> Text:
    """Time left as a bar of the allocation's walltime, and as text."""
    if left is None:
        return Text("no limit".ljust(width + 9), style=palette.muted, no_wrap=True)
    left = max(0.0, left)
    fraction = left / span if span else None
    color = palette.failed if fraction is not None and fraction < 0.1 else palette.accent
    out = bar(fraction, width, color, palette)
    out.append(f" {duration(left):>8}")
    return out


# --------------------------------------------------------------------------- events


def describe(event: Event | Mapping[str, Any]) -> tuple[str, str]:
    """The type and a one-line description of an event, for the event log."""
    if isinstance(event, Mapping):
        kind = str(event.get("type", "?"))
        rest = {k: v for k, v in event.items() if k not in ("type", "pilot", "t", "seq")}
        return kind, " ".join(f"{k}={v}" for k, v in rest.items())
    kind = str(event.__struct_config__.tag)
    if isinstance(event, PilotStateChanged):
        return kind, f"{event.previous or '?'} → {event.state}" + (f" ({event.reason})" if event.reason else "")
    if isinstance(event, AllocationClaimed):
        a = event.allocation
        nodes = ",".join(a.nodes[:3]) + (f",… ({len(a.nodes)})" if len(a.nodes) > 3 else "")
        job = f" job {a.job_id}" if a.job_id else ""
        return kind, f"{a.provider}{job}: {nodes}"
    if isinstance(event, NodeReady):
        n = event.node
        gpus = f", {len(n.gpus)} GPU(s)" if n.gpus else ""
        return kind, f"{n.name}: {n.cores} cores, {format_size(n.memory)}{gpus}"
    if isinstance(event, NodeLost):
        return kind, f"{event.node}: {event.reason}"
    if isinstance(event, GroupAdded):
        return kind, f"{event.group}: {event.total} task(s)"
    if isinstance(event, TaskStarted):
        return kind, f"{event.task} #{event.attempt} on {event.node}"
    if isinstance(event, TaskFinished):
        code = f" exit {event.exit_code}" if event.exit_code is not None else ""
        again = "" if event.final else ", will retry"
        return kind, f"{event.task} #{event.attempt} {event.status}{code} in {event.duration:.1f}s{again}"
    if isinstance(event, TaskCancelled):
        return kind, f"{event.group}: {event.count} queued task(s) cancelled"
    if isinstance(event, StageProgress):
        total = f"/{event.total}" if event.total is not None else ""
        return kind, f"{event.image}: {event.done}{total}" + (f" {event.message}" if event.message else "")
    if isinstance(event, AppProgress):
        return kind, (f"{event.app} {event.name}: {event.done}/{event.total} done, {event.running} running, "
                      f"{event.failed} failed")
    if isinstance(event, Log):
        return kind, f"{event.level}: {event.message}"
    if isinstance(event, Metrics):
        return kind, f"{event.node}: cpu {event.cpu_percent:.0f}%"
    return kind, ""


def event_line(t: float | None, event: Event | Mapping[str, Any], palette: Palette = DEFAULT_PALETTE) -> Text:
    kind, detail = describe(event)
    color = palette.muted
    if isinstance(event, TaskFinished):
        color = palette.state(event.status)
    elif isinstance(event, PilotStateChanged):
        color = palette.state(event.state)
    elif isinstance(event, (NodeLost,)):
        color = palette.failed
    elif isinstance(event, Log) and event.level in ("warning", "error"):
        color = palette.failed if event.level == "error" else palette.running
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(clock(t), palette.muted)
    text.append(f" {kind:<14} ", Style(color=color))
    text.append(detail)
    return text
