"""A pilot's timeline: which task ran on which node and when, laid out in rows per node
(attempts that overlap in time get rows of their own), with each node's idle gaps and
the fraction of the time it was busy.

Plain data in, :class:`~pilotkit.protocol.TimelineNode` out: the daemon's ``timeline``
method, ``pilotkit timeline`` and the dashboard's timeline screen (which also lays out a
replay's tasks) use the same layout."""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .protocol import NodesResult, TimelineNode, TimelineResult, TimelineSpan


@dataclass(frozen=True, slots=True)
class Attempt:
    """An attempt as recorded: where it ran and when (``end`` None: it still runs)."""

    task: str
    group: str
    attempt: int
    node: str | None
    start: float
    end: float | None
    outcome: str | None = None


def lay_out(pilot: str, state: str, attempts: Iterable[Attempt], *, end: float, start: float | None = None,
            cores: dict[str, int] | None = None, min_gap: float = 1.0, total: int | None = None) -> TimelineResult:
    """Every node's attempts in rows, from ``start`` (default: the first attempt's) to ``end``.

    ``cores`` names the nodes known to have run nothing too (each with its cores); a node
    with no attempt is one gap from start to end."""
    per_node: dict[str, list[Attempt]] = {name: [] for name in cores or {}}
    n = 0
    for a in attempts:
        n += 1
        if a.node is not None:
            per_node.setdefault(a.node, []).append(a)
    first = min((a.start for spans in per_node.values() for a in spans), default=None)
    t0 = start if start is not None else (first if first is not None else end)
    if first is not None:
        t0 = min(t0, first)
    t1 = max(end, t0)
    nodes = [_node(name, spans, t0, t1, (cores or {}).get(name, 0), min_gap) for name, spans in sorted(per_node.items())]
    return TimelineResult(pilot=pilot, state=state, start=t0, end=t1, attempts=total if total is not None else n,
                          nodes=nodes)


def _node(name: str, attempts: Sequence[Attempt], t0: float, t1: float, cores: int, min_gap: float) -> TimelineNode:
    ordered = sorted(attempts, key=lambda a: (a.start, a.task, a.attempt))
    lanes: list[tuple[float, int]] = []
    """(when its last span ends, lane): a heap of the rows in use."""
    free: list[int] = []
    """Rows whose last span has ended, least first."""
    spans: list[TimelineSpan] = []
    busy = 0.0
    gaps: list[tuple[float, float]] = []
    covered = t0
    """The end of the union of the spans so far."""
    for a in ordered:
        stop = a.end if a.end is not None else t1
        while lanes and lanes[0][0] <= a.start:
            heapq.heappush(free, heapq.heappop(lanes)[1])
        lane = heapq.heappop(free) if free else len(lanes) + len(free)
        heapq.heappush(lanes, (max(stop, a.start), lane))
        spans.append(TimelineSpan(task=a.task, group=a.group, attempt=a.attempt, start=a.start, end=a.end,
                                  outcome=a.outcome, lane=lane))
        if a.start > covered:
            if a.start - covered >= min_gap:
                gaps.append((covered, a.start))
            covered = a.start
        if stop > covered:
            busy += stop - max(covered, a.start)
            covered = stop
    if t1 - covered >= min_gap:
        gaps.append((covered, t1))
    count = max((s.lane for s in spans), default=-1) + 1
    span = t1 - t0
    return TimelineNode(name=name, cores=cores, lanes=count, busy=min(1.0, busy / span) if span > 0 else 0.0,
                        gaps=gaps, spans=spans)


def occupancy(node: TimelineNode, t0: float, t1: float, width: int) -> list[int]:
    """How many of the node's attempts ran in each of ``width`` equal slices of [t0, t1]
    (an attempt counts in every slice it overlaps)."""
    out = [0] * max(0, width)
    if width <= 0 or t1 <= t0:
        return out
    scale = width / (t1 - t0)
    for s in node.spans:
        end = s.end if s.end is not None else t1
        a = math.floor((s.start - t0) * scale)
        b = max(a, math.ceil((end - t0) * scale) - 1)
        for i in range(max(0, a), min(width - 1, b) + 1):
            out[i] += 1
    return out


BLOCKS = " ▁▂▃▄▅▆▇█"


def bar(node: TimelineNode, t0: float, t1: float, width: int) -> str:
    """The node's occupancy as one line of block characters: blank where it ran nothing,
    a full block where it ran as many attempts as it has cores (or its most at once)."""
    counts = occupancy(node, t0, t1, width)
    top = max(node.cores, node.lanes, 1)
    return "".join(BLOCKS[0] if c == 0 else BLOCKS[max(1, min(8, round(8 * c / top)))] for c in counts)


# --------------------------------------------------------------------------- in words


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 or seconds == 0 else f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f}"


def timeline_lines(r: TimelineResult, width: int = 60, *, tasks: bool = False) -> list[str]:
    """The timeline in words and one bar per node (``pilotkit timeline``)."""
    lines = [f"{r.pilot}  {r.state}  {_clock(r.start)} to {_clock(r.end)} ({_span(r.end - r.start)}), "
             f"{r.attempts} attempt(s) on {len(r.nodes)} node(s)"]
    name_width = max((len(n.name) for n in r.nodes), default=4)
    for n in r.nodes:
        gaps = ", ".join(f"{_clock(a)}-{_clock(b)} ({_span(b - a)})" for a, b in n.gaps[:3])
        more = f" and {len(n.gaps) - 3} more" if len(n.gaps) > 3 else ""
        lines.append(f"{n.name:<{name_width}} |{bar(n, r.start, r.end, width)}| busy {100 * n.busy:3.0f}%  "
                     f"{len(n.spans)} attempt(s), at most {n.lanes} at once"
                     + (f"; idle {gaps}{more}" if gaps else ""))
        if tasks:
            for s in n.spans:
                end = _clock(s.end) if s.end is not None else "running"
                lines.append(f"  row {s.lane:<3} {s.task:<24} #{s.attempt:<2} {_clock(s.start)} to {end:<8} "
                             f"{s.outcome or ''}".rstrip())
    return lines


LOAD_BLOCKS = "·▁▂▃▄▅▆▇█"
"""A CPU's load in one character: idle (under 1%), then an eighth of 100% a step."""
CPUS_PER_ROW = 64


def load_block(percent: float) -> str:
    """``percent`` (0-100) as one of :data:`LOAD_BLOCKS`."""
    if percent < 1.0:
        return LOAD_BLOCKS[0]
    return LOAD_BLOCKS[max(1, min(8, math.ceil(percent / 12.5)))]


def core_load_lines(values: list[float], width: int | None = None) -> list[str]:
    """A node's load per logical CPU: a summary, then a character a CPU, 64 to a row (or
    as many eights as fit in ``width`` columns)."""
    per_row = CPUS_PER_ROW if width is None else max(8, min(CPUS_PER_ROW, (width - 15) // 8 * 8))
    busy = sum(1 for v in values if v >= 50.0)
    lines = [f"  load per CPU: {len(values)} CPU(s), {busy} at 50% or more, busiest {max(values):.0f}%"]
    for i in range(0, len(values), per_row):
        row = values[i:i + per_row]
        lines.append(f"  cpus {f'{i}-{i + len(row) - 1}':<7} " + "".join(load_block(v) for v in row))
    return lines


def nodes_lines(r: NodesResult, width: int | None = None) -> list[str]:
    """Each node now (``pilotkit nodes``), its load per CPU in ``width`` columns."""
    lines = [f"{r.pilot}  {r.state}  {len(r.nodes)} node(s)"]
    for n in r.nodes:
        free = f" ({n.free_cores} free)" if n.free_cores is not None else ""
        cpu = f"  cpu {n.cpu_percent:.0f}%" if n.cpu_percent is not None else ""
        seen = f"  seen {max(0.0, r.t - n.last_seen):.0f}s ago" if n.last_seen is not None else ""
        lost = f"  LOST: {n.lost}" if n.lost else ""
        lines.append(f"{n.name}  cores {n.cores}{free}  memory {_gib(n.memory_used)}/{_gib(n.memory)} GiB"
                     f"{cpu}{seen}{lost}")
        if n.core_percent:
            lines.extend(core_load_lines(n.core_percent, width))
        if not n.gpus:
            lines.append(f"  no GPU{f' ({n.gpu_reason})' if n.gpu_reason else ''}")
        for i, g in enumerate(n.gpus):
            util = f" {g.utilization}%" if g.utilization is not None else ""
            mem = f" {_gib(g.memory_used)}/{_gib(g.memory_total)} GiB" if g.memory_total else ""
            held = f": {', '.join(g.tasks) or 'idle'}" if r.gpu_tasks else ""
            lines.append(f"  GPU{i} {g.name or g.uuid}{util}{mem}{held}")
        for t in n.tasks:
            gpus = f", GPU(s) {', '.join(t.gpus)}" if t.gpus else ""
            since = f", running {_span(r.t - t.start)}" if t.start is not None else ""
            pid = f", pid {t.pid}" if t.pid is not None else ""
            lines.append(f"  {t.task} ({t.group}): {t.cores} core(s){gpus}{pid}{since}")
    return lines
