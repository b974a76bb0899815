"""The dashboard's data: pilots, their nodes and tasks, folded from what a source sends.

Plain Python, no Textual: a data source applies events, summaries and metric samples
here as they arrive (cheap, in place), and the widgets read the model at most ten times
a second. Every object carries a ``version`` that moves when it changes, so a widget
repaints only what changed since it last looked.

Time: :meth:`DashboardModel.now` is the wall clock for a live daemon, and the time of the
latest event in a replay, so a replayed dashboard always looks the same.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .. import vocab
from ..events import (
    AllocationClaimed,
    AppProgress,
    Event,
    GroupAdded,
    Metrics,
    NodeLost,
    NodeReady,
    PilotStateChanged,
    TaskCancelled,
    TaskFinished,
    TaskStarted,
)
from ..progress import Progress
from ..protocol import (
    CampaignSummary,
    Counts,
    DaemonInfo,
    GpuMetric,
    HelloResult,
    MetricSample,
    PilotDetail,
    PilotSummary,
    TaskInfo,
)
from ..types import NodeInfo, Service
from ..vocab import TERMINAL_STATES

TERMINAL = TERMINAL_STATES
ACTIVE = frozenset({"claiming", "probing", "staging", "deploying", "running", "draining", "evicting"})
HISTORY = 60
"""Metric samples kept per node and GPU (a minute at the daemon's 1 Hz)."""
EVENT_LOG = 1000
"""Events kept per pilot for the event log."""

_ID = re.compile(r"^(?P<name>.+)-\d{8}-\d{6}-[0-9a-f]{4}$")


def name_of(pilot_id: str) -> str:
    """The spec's name from a pilot id (``scan-20250101-120000-ab12`` -> ``scan``)."""
    m = _ID.match(pilot_id)
    return m.group("name") if m else pilot_id


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task as it is now (a copy: the model keeps tasks in :class:`Tasks`)."""

    task: str
    group: str
    index: int
    """Order of first appearance (the "recent" sort)."""
    status: str
    attempt: int
    node: str | None
    exit_code: int | None
    outcome: str | None
    start: float | None
    end: float | None
    version: int

    @property
    def duration(self) -> float | None:
        if self.start is None:
            return None
        return (self.end if self.end is not None else self.start) - self.start


class Tasks:
    """Every task of a pilot, column by column.

    100,000 tasks are a dozen lists of strings and numbers here, not 100,000 objects: the
    garbage collector, which walks every object it tracks, does not see them one by one.
    Row ``i`` is the ``i``-th task seen; the model writes the columns directly."""

    __slots__ = ("attempt", "end", "exit_code", "group", "ids", "metric_keys", "metrics", "node", "outcome", "param_keys",
                 "params", "start", "static", "status", "task", "values_version", "version")

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.task: list[str] = []
        self.group: list[str] = []
        self.static: list[str] = []
        """Task and group, lower case (what the filter matches besides status, node, outcome)."""
        self.status: list[str] = []
        self.attempt: list[int] = []
        self.node: list[str | None] = []
        self.exit_code: list[int | None] = []
        self.outcome: list[str | None] = []
        self.start: list[float | None] = []
        self.end: list[float | None] = []
        self.version: list[int] = []
        self.params: dict[int, Mapping[str, Any]] = {}
        """A scan's parameters, by row (only tasks that have some)."""
        self.metrics: dict[int, Mapping[str, Any]] = {}
        """What a task reported (``metrics`` of its result), by row (only tasks that have some)."""
        self.param_keys: dict[str, None] = {}
        """Every parameter name seen, in the order first seen."""
        self.metric_keys: dict[str, None] = {}
        self.values_version = 0
        """Moves when a parameter or metric name appears."""

    def __len__(self) -> int:
        return len(self.task)

    def __contains__(self, name: object) -> bool:
        return name in self.ids

    def add(self, name: str, group: str) -> int:
        i = self.ids[name] = len(self.task)
        self.task.append(name)
        self.group.append(group)
        self.static.append(f"{name} {group}".lower())
        self.status.append("queued")
        self.attempt.append(0)
        self.node.append(None)
        self.exit_code.append(None)
        self.outcome.append(None)
        self.start.append(None)
        self.end.append(None)
        self.version.append(0)
        return i

    def find(self, name: str) -> int | None:
        return self.ids.get(name)

    def set_values(self, i: int, params: object, metrics: object) -> bool:
        """Row ``i``'s parameters and metrics (each a mapping, or anything else for none);
        True when they changed."""
        changed = False
        for values, store, keys in ((params, self.params, self.param_keys),
                                    (metrics, self.metrics, self.metric_keys)):
            if not isinstance(values, Mapping) or not values or store.get(i) == values:
                continue
            store[i] = dict(values)
            changed = True
            for key in values:
                if isinstance(key, str) and key not in keys:
                    keys[key] = None
                    self.values_version += 1
        if changed:
            self.version[i] += 1
        return changed

    def value(self, kind: str, i: int, key: str) -> Any:
        """Row ``i``'s parameter (``kind`` "param") or metric ("metric") ``key``; None if it has none."""
        values = (self.params if kind == "param" else self.metrics).get(i)
        return None if values is None else values.get(key)

    def row(self, i: int) -> TaskRow:
        return TaskRow(self.task[i], self.group[i], i, self.status[i], self.attempt[i], self.node[i],
                       self.exit_code[i], self.outcome[i], self.start[i], self.end[i], self.version[i])

    def __getitem__(self, name: str) -> TaskRow:
        return self.row(self.ids[name])

    def get(self, name: str) -> TaskRow | None:
        i = self.ids.get(name)
        return None if i is None else self.row(i)

    def rows(self) -> Iterator[TaskRow]:
        return (self.row(i) for i in range(len(self.task)))

    def duration(self, i: int) -> float | None:
        start = self.start[i]
        if start is None:
            return None
        end = self.end[i]
        return (end if end is not None else start) - start

    def haystack(self, i: int) -> str:
        """What the task filter searches (lower case)."""
        return f"{self.static[i]} {self.status[i]} {self.node[i] or ''} {self.outcome[i] or ''}".lower()


def final_status(outcome: str, pilot_state: str) -> str:
    """A task's status after its last attempt ended with ``outcome``."""
    return vocab.final_status(outcome, pilot_state in vocab.WINDING_DOWN_STATES).value


# --------------------------------------------------------------------------- nodes


@dataclass
class GpuView:
    uuid: str
    name: str = ""
    memory_total: int | None = None
    utilization: collections.deque[float | None] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    memory: collections.deque[float | None] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    """Memory used, in percent of the total."""
    memory_used: int | None = None

    @property
    def util_now(self) -> float | None:
        return self.utilization[-1] if self.utilization else None


@dataclass
class NodeView:
    name: str
    cores: int | None = None
    memory: int | None = None
    """Bytes the pilot may use (from the node's probe)."""
    ready: bool = False
    lost: str | None = None
    gpu_reason: str | None = None
    gpus: dict[str, GpuView] = field(default_factory=dict)
    cpu: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    mem: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    """Memory used, in percent of the total."""
    memory_used: int | None = None
    memory_total: int | None = None
    last_seen: float | None = None
    core_percent: list[float] = field(default_factory=list)
    """The load of each logical CPU, in percent (the latest sample; empty: not sampled)."""
    version: int = 0

    def set_info(self, info: NodeInfo) -> None:
        self.cores = info.cores
        self.memory = info.memory
        self.memory_total = self.memory_total or info.total_memory or info.memory
        self.gpu_reason = info.gpu_reason
        self.ready = True
        for g in info.gpus:
            view = self.gpus.get(g.uuid)
            if view is None:
                view = self.gpus[g.uuid] = GpuView(g.uuid)
            view.name = g.name
            view.memory_total = g.memory_total
        self.version += 1

    def add_sample(self, t: float, cpu: float, used: int, total: int | None, gpus: Iterable[GpuMetric],
                   cores: list[float] | None = None) -> None:
        self.last_seen = t
        self.cpu.append(cpu)
        if cores:
            self.core_percent = cores
        self.memory_used = used
        if total:
            self.memory_total = total
        mt = self.memory_total
        self.mem.append(100.0 * used / mt if mt else 0.0)
        for g in gpus:
            view = self.gpus.get(g.uuid)
            if view is None:
                view = self.gpus[g.uuid] = GpuView(g.uuid)
            view.utilization.append(None if g.utilization is None else float(g.utilization))
            view.memory_used = g.memory_used
            if g.memory_total:
                view.memory_total = g.memory_total
            gt = view.memory_total
            view.memory.append(None if g.memory_used is None or not gt else 100.0 * g.memory_used / gt)
        self.version += 1

    @property
    def cpu_now(self) -> float | None:
        return self.cpu[-1] if self.cpu else None

    def gpu_util(self) -> float | None:
        """Mean utilisation of the node's GPUs now (None: no GPU, or unsupported)."""
        values = [u for g in self.gpus.values() if (u := g.util_now) is not None]
        return sum(values) / len(values) if values else None

    def gpu_util_history(self) -> list[float | None]:
        """Mean GPU utilisation per sample, oldest first."""
        rings = [g.utilization for g in self.gpus.values() if g.utilization]
        if not rings:
            return []
        n = min(len(r) for r in rings)
        out: list[float | None] = []
        for i in range(-n, 0):
            values = [v for r in rings if (v := r[i]) is not None]
            out.append(sum(values) / len(values) if values else None)
        return out

    def gpu_memory(self) -> tuple[int | None, int | None]:
        used = [g.memory_used for g in self.gpus.values() if g.memory_used is not None]
        total = [g.memory_total for g in self.gpus.values() if g.memory_total]
        return (sum(used) if used else None, sum(total) if total else None)


# --------------------------------------------------------------------------- pilots


class PilotView:
    """One pilot: its summary (live) and what its events (when followed) add."""

    def __init__(self, pilot_id: str) -> None:
        self.id = pilot_id
        self.name = name_of(pilot_id)
        self.provider = "-"
        self.state = "new"
        self.reason: str | None = None
        self.job_id: str | None = None
        self.created: float | None = None
        self.ended: float | None = None
        self.walltime_start: float | None = None
        self.walltime_end: float | None = None
        self.workdir: str | None = None
        self.spec_path: str | None = None
        self.services: list[Service] = []
        """What the pilot's app serves now (URLs, addresses), from the daemon's detail."""
        self.summary: PilotSummary | None = None
        self.fold = Progress()
        self.app_progress: dict[str, dict[str, Counts]] = {}
        """Per app (``dask``, ``ray``...), the latest counts of each kind of work inside its
        cluster (from ``app-progress`` events), in the order they first appeared."""
        self.hydrated = False
        """Its events have been followed from the start: the fold is complete."""
        self.nodes: dict[str, NodeView] = {}
        self.tasks = Tasks()
        self.log: collections.deque[tuple[float, Event | Mapping[str, Any]]] = collections.deque(maxlen=EVENT_LOG)
        self.log_total = 0
        """Events ever added to the log (the log widget writes those it has not shown)."""
        self.last_seq = 0
        self.run = 1
        self.version = 0
        self.tasks_version = 0
        self.nodes_version = 0
        self._ended_run = False

    # -------------------------------------------------------------- reading

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def groups(self) -> dict[str, Counts]:
        """Counts per task group: the event fold when it is complete, else the summary's."""
        if self.summary is not None and (not self.hydrated or self.summary.run > 1):
            return {name: _progress(c) for name, c in self.summary.groups.items()}
        return self.fold.groups

    def totals(self) -> Counts:
        if self.summary is not None and (not self.hydrated or self.summary.run > 1):
            return _progress(self.summary.progress)
        return self.fold.totals()

    @property
    def cores(self) -> int:
        if self.summary is not None and self.summary.cores:
            return self.summary.cores
        return sum(n.cores or 0 for n in self.nodes.values() if not n.lost)

    @property
    def gpus(self) -> int:
        if self.summary is not None and self.summary.gpus:
            return self.summary.gpus
        return sum(len(n.gpus) for n in self.nodes.values() if not n.lost)

    @property
    def node_count(self) -> int:
        if self.summary is not None and self.summary.nodes:
            return self.summary.nodes
        return sum(1 for n in self.nodes.values() if n.ready and not n.lost)

    def walltime_left(self, now: float) -> float | None:
        if self.walltime_end is None or self.terminal:
            return None
        return self.walltime_end - now

    def walltime_span(self) -> float | None:
        if self.walltime_end is None:
            return None
        start = self.walltime_start or self.created
        return None if start is None else max(1.0, self.walltime_end - start)

    def node(self, name: str) -> NodeView:
        view = self.nodes.get(name)
        if view is None:
            view = self.nodes[name] = NodeView(name)
            self.nodes_version += 1
        return view

    # -------------------------------------------------------------- folding

    def apply(self, event: Event | Mapping[str, Any]) -> None:
        """Fold one event into the pilot (it belongs to this pilot)."""
        self.version += 1
        handler = _HANDLERS.get(type(event))
        if handler is None:  # a type this version does not know: log it only
            t = event.get("t") if isinstance(event, Mapping) else getattr(event, "t", None)
            self._log(float(t) if isinstance(t, (int, float)) else 0.0, event)
            return
        if handler(self, event):
            self._log(event.t, event)  # type: ignore[union-attr]

    def _task_started(self, event: TaskStarted) -> bool:
        fold = self.fold
        if event.group not in fold.groups:
            fold.groups[event.group] = Counts()
        fold.apply(event)
        t = self.tasks
        i = t.ids.get(event.task)
        if i is None:
            i = t.add(event.task, event.group)
        t.status[i] = "running"
        t.attempt[i] = event.attempt
        t.node[i] = event.node
        t.start[i] = event.t
        t.end[i] = None
        t.exit_code[i] = None
        t.version[i] += 1
        self.tasks_version += 1
        return True

    def _task_finished(self, event: TaskFinished) -> bool:
        fold = self.fold
        group = fold.groups.get(event.group)
        if group is None:
            group = fold.groups[event.group] = Counts()
        if group.running <= 0:
            group.running = 1  # a start this view missed (a dropped event)
        state = fold.state
        fold.apply(event)
        t = self.tasks
        i = t.ids.get(event.task)
        if i is None:
            i = t.add(event.task, event.group)
        t.status[i] = final_status(event.status, state) if event.final else "queued"
        t.outcome[i] = event.status
        t.attempt[i] = event.attempt
        t.node[i] = event.node
        t.exit_code[i] = event.exit_code
        t.end[i] = event.t
        if t.start[i] is None:
            t.start[i] = event.t - event.duration
        t.set_values(i, getattr(event, "params", None), getattr(event, "metrics", None))
        t.version[i] += 1
        self.tasks_version += 1
        return True

    def _metrics(self, event: Metrics) -> bool:
        node = self.node(event.node)
        gpus = [g for g in (_gpu_metric(d, node) for d in event.gpus) if g is not None]
        node.add_sample(event.t, event.cpu_percent, event.memory_used, None, gpus, event.core_percent)
        self.nodes_version += 1
        return False  # too many for the event log

    def _app_progress(self, event: AppProgress) -> bool:
        counts = Counts(total=event.total, queued=event.pending, running=event.running,
                        done=event.done, failed=event.failed)  # fmt: skip
        self.app_progress.setdefault(event.app, {})[event.name] = counts
        return False  # one per change of counts: too many for the event log

    def _group_added(self, event: GroupAdded) -> bool:
        if self._ended_run:  # a retry or resume: counts start again
            self._new_run()
        self.fold.apply(event)
        return True

    def _task_cancelled(self, event: TaskCancelled) -> bool:
        self.fold.groups.setdefault(event.group, Counts())
        self.fold.apply(event)
        t = self.tasks
        for i, (group, status) in enumerate(zip(t.group, t.status, strict=True)):
            if group == event.group and status == "queued":
                t.status[i] = "cancelled"
                t.version[i] += 1
        self.tasks_version += 1
        return True

    def _pilot_state(self, event: PilotStateChanged) -> bool:
        if event.state in TERMINAL:
            self._ended_run = True
            self.ended = event.t
        elif self._ended_run:
            self._new_run()
        self.fold.apply(event)
        self.state = event.state
        self.reason = event.reason or self.reason
        if self.created is None:
            self.created = event.t
        return True

    def _allocation(self, event: AllocationClaimed) -> bool:
        a = event.allocation
        self.provider = a.provider
        self.job_id = a.job_id
        self.walltime_end = a.walltime_end
        self.walltime_start = event.t
        for name in a.nodes:
            self.node(name)
        return True

    def _node_ready(self, event: NodeReady) -> bool:
        self.node(event.node.name).set_info(event.node)
        self.nodes_version += 1
        return True

    def _node_lost(self, event: NodeLost) -> bool:
        node = self.node(event.node)
        node.lost = event.reason
        node.version += 1
        self.nodes_version += 1
        return True

    def _new_run(self) -> None:
        self._ended_run = False
        self.run += 1
        t = self.tasks
        done = collections.Counter(g for g, status in zip(t.group, t.status, strict=True) if status == "done")
        self.fold.groups = {name: Counts(done=done.get(name, 0)) for name in self.fold.groups}
        self.app_progress = {}  # the app's cluster starts again: its counts too

    def _log(self, t: float, event: Event | Mapping[str, Any]) -> None:
        self.log.append((t, event))
        self.log_total += 1

    def apply_summary(self, s: PilotSummary) -> None:
        changed = self.summary is None or self.summary != s
        self.summary = s
        if not changed:
            return
        self.version += 1
        self.name = s.name
        self.provider = s.provider
        self.reason = s.reason
        self.job_id = s.job_id
        self.created = s.created
        self.ended = s.ended
        self.workdir = s.workdir
        if s.walltime_end is not None:
            self.walltime_end = s.walltime_end
        if not self.hydrated or s.state in TERMINAL:
            self.state = s.state

    def apply_detail(self, d: PilotDetail, *, tasks: bool = True) -> None:
        """A pilot's details; ``tasks=False``: leave out its latest attempts (when its
        events, which tell every task in order, are about to be followed)."""
        self.apply_summary(d.summary)
        self.spec_path = d.spec_path
        self.services = list(d.services)
        for status in d.nodes:
            node = self.node(status.info.name)
            node.set_info(status.info)
            if status.latest is not None and not node.cpu:
                _sample_into(node, status.latest)
        if tasks:
            self.apply_tasks(d.recent_tasks)
        self.nodes_version += 1
        self.version += 1

    def apply_tasks(self, tasks: Sequence[TaskInfo]) -> None:
        """Rows from the daemon's task list (fills in tasks the events did not show)."""
        t = self.tasks
        for info in reversed(tasks):
            i = t.ids.get(info.task)
            if i is not None and t.attempt[i] > info.attempts:
                continue
            if i is None:
                i = t.add(info.task, info.group)
            t.status[i] = "cancelled" if info.status == "lost" and self.terminal else info.status
            t.attempt[i] = info.attempts
            t.node[i] = info.node
            t.exit_code[i] = info.exit_code
            t.outcome[i] = info.outcome
            t.start[i] = info.start
            t.end[i] = info.end
            t.version[i] += 1
            t.set_values(i, getattr(info, "params", None), getattr(info, "metrics", None))
        if tasks:
            self.tasks_version += 1

    def apply_values(self, tasks: Iterable[TaskInfo]) -> None:
        """Parameters and metrics of the tasks the daemon lists (``metrics`` read where the
        daemon sends it); other columns are the events' to tell. Tasks not seen yet wait for
        their events."""
        t = self.tasks
        changed = False
        for info in tasks:
            i = t.ids.get(info.task)
            if i is not None and t.set_values(i, getattr(info, "params", None), getattr(info, "metrics", None)):
                changed = True
        if changed:
            self.tasks_version += 1


_HANDLERS: dict[type, Callable[[PilotView, Any], bool]] = {
    TaskStarted: PilotView._task_started,
    TaskFinished: PilotView._task_finished,
    Metrics: PilotView._metrics,
    AppProgress: PilotView._app_progress,
    GroupAdded: PilotView._group_added,
    TaskCancelled: PilotView._task_cancelled,
    PilotStateChanged: PilotView._pilot_state,
    AllocationClaimed: PilotView._allocation,
    NodeReady: PilotView._node_ready,
    NodeLost: PilotView._node_lost,
}
"""What each event type does to a pilot; True: it goes in the event log too."""


def _progress(c: Counts) -> Counts:
    return msgspec.structs.replace(c)


def _gpu_metric(data: Mapping[str, Any], node: NodeView) -> GpuMetric | None:
    """A GPU reading of a ``metrics`` event: ``index`` (the node's n-th GPU) or ``uuid``,
    ``utilization`` (percent), ``memory_used`` and ``memory_total`` (bytes)."""
    uuid = data.get("uuid")
    if not isinstance(uuid, str):
        index = data.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            return None
        known = list(node.gpus)
        uuid = known[index] if 0 <= index < len(known) else f"GPU{index}"

    def integer(key: str) -> int | None:
        value = data.get(key)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return GpuMetric(uuid=uuid, utilization=integer("utilization"), memory_used=integer("memory_used"),
                     memory_total=integer("memory_total"))


def _sample_into(node: NodeView, s: MetricSample) -> None:
    node.add_sample(s.t, s.cpu_percent, s.memory_used, s.memory_total, s.gpus, s.core_percent)


# --------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class Connection:
    """How the dashboard is connected to its data."""

    state: str
    """``connecting``, ``connected``, ``reconnecting``, ``lost`` (gave up), ``replay``,
    ``replayed`` (the whole log is in), ``paused``."""
    detail: str = ""
    attempt: int = 0
    retry_in: float | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("connected", "replay", "replayed", "paused")


# --------------------------------------------------------------------------- the model


class DashboardModel:
    """Every pilot the dashboard knows, and where the data comes from."""

    def __init__(self, *, frozen_clock: bool = False) -> None:
        self.pilots: dict[str, PilotView] = {}
        self.campaigns: list[CampaignSummary] = []
        """The campaigns the daemon runs (its ``status``)."""
        self.daemon: DaemonInfo | None = None
        self.server: HelloResult | None = None
        self.where = ""
        self.connection = Connection("connecting")
        self.frozen_clock = frozen_clock
        """Replay: time is that of the latest event."""
        self.latest_t = 0.0
        self.events = 0
        self.version = 0

    def now(self) -> float:
        return self.latest_t if self.frozen_clock else time.time()

    def pilot(self, pilot_id: str) -> PilotView:
        view = self.pilots.get(pilot_id)
        if view is None:
            view = self.pilots[pilot_id] = PilotView(pilot_id)
            self.version += 1
        return view

    def apply_event(self, event: Event | Mapping[str, Any], seq: int = 0) -> None:
        """One event, with the daemon's sequence number (0: none; never skipped)."""
        if type(event) is dict:
            pilot_id = event.get("pilot")
            if not isinstance(pilot_id, str):
                return
            t = event.get("t")
            t = float(t) if isinstance(t, (int, float)) else 0.0
        else:
            pilot_id = event.pilot  # type: ignore[union-attr]
            t = event.t  # type: ignore[union-attr]
        view = self.pilots.get(pilot_id) or self.pilot(pilot_id)
        if seq:
            if seq <= view.last_seq:
                return
            view.last_seq = seq
        view.apply(event)
        if t > self.latest_t:
            self.latest_t = t
        self.events += 1
        self.version += 1

    def apply_events(self, events: Iterable[Event | Mapping[str, Any]]) -> None:
        for event in events:
            self.apply_event(event)

    def apply_status(self, pilots: Sequence[PilotSummary], daemon: DaemonInfo | None = None) -> None:
        if daemon is not None:
            self.daemon = daemon
        for s in pilots:
            self.pilot(s.id).apply_summary(s)
        self.version += 1

    def apply_metric(self, sample: MetricSample) -> None:
        view = self.pilots.get(sample.pilot)
        if view is None:
            return
        _sample_into(view.node(sample.node), sample)
        view.nodes_version += 1
        self.version += 1

    def apply_detail(self, detail: PilotDetail, *, tasks: bool = True) -> None:
        self.pilot(detail.summary.id).apply_detail(detail, tasks=tasks)
        self.version += 1

    def ordered(self) -> list[PilotView]:
        """Pilots, running ones first, newest first within each."""
        return sorted(
            self.pilots.values(),
            key=lambda p: (p.terminal, -(p.created or 0.0), p.id),
        )
