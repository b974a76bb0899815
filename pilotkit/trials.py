"""A run's trials as a table: parameters, metrics, outcome and duration of each task,
filtered and sorted (``pilotkit results``, the best trial in ``pilotkit run``'s summary).
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .errors import PilotkitError
from .results import TaskResult, read_results
from .vocab import RESULTS_FILE, SPEC_RECORD

FIELDS = ("task", "group", "outcome", "duration", "attempts", "node")


@dataclass
class Trial:
    task: str
    group: str
    outcome: str | None
    duration: float | None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    node: str | None = None

    def get(self, key: str) -> Any:
        """A field, a metric or a parameter, in that order (``metrics.KEY`` and
        ``params.KEY`` say which)."""
        if key.startswith("metrics."):
            return self.metrics.get(key[8:])
        if key.startswith("params."):
            return self.params.get(key[7:])
        if key in FIELDS:
            return getattr(self, key)
        if key in self.metrics:
            return self.metrics[key]
        return self.params.get(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "group": self.group, "outcome": self.outcome, "duration": self.duration,
            "attempts": self.attempts, "node": self.node, "params": self.params, "metrics": self.metrics,
        }  # fmt: skip


@dataclass
class Objective:
    key: str
    direction: str = "minimize"

    @property
    def descending(self) -> bool:
        return self.direction == "maximize"


def from_result(r: TaskResult) -> Trial:
    return Trial(task=r.task, group=r.group, outcome=r.outcome, duration=r.duration, params=dict(r.params),
                 metrics=dict(r.metrics or {}), attempts=r.attempts, node=r.node)  # fmt: skip


def read_trials(workdir: Path) -> list[Trial]:
    """The trials of the run in ``workdir`` (the last line of each task)."""
    path = workdir / RESULTS_FILE
    try:
        results = read_results(path)
    except FileNotFoundError:
        raise PilotkitError(f"{workdir}: no {RESULTS_FILE} (not a pilotkit run directory?)") from None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PilotkitError(f"{path}: cannot read: {exc}") from None
    latest: dict[str, TaskResult] = {}
    for r in results:
        latest[r.task] = r
    return [from_result(r) for r in latest.values()]


def objective_of(workdir: Path) -> Objective | None:
    """The first search objective of the spec the run in ``workdir`` recorded."""
    try:
        spec = json.loads((workdir / SPEC_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return objective_in(spec)


def _searches(app: dict[str, Any]) -> list[tuple[str, Any]]:
    """(study name, search table) of the tasks app's groups and of the mpi app."""
    found_options = app.get("options")
    options: dict[str, Any] = found_options if isinstance(found_options, dict) else {}  # spec.json
    groups = app.get("groups") or options.get("groups")
    found = [(str(g.get("name")), g.get("search")) for g in groups or [] if isinstance(g, dict)]
    single = app.get("search") or options.get("search")
    if single is not None:
        found.append((str(app.get("name") or options.get("name") or "mpi"), single))
    return found


def searches_in(spec: Any) -> list[tuple[str, str]]:
    """(study name, sampler) of each search of a spec (TOML or the run's spec.json)."""
    app = spec.get("app") if isinstance(spec, dict) else None
    if not isinstance(app, dict):
        return []
    return [(name, str(s.get("sampler", "tpe"))) for name, s in _searches(app) if isinstance(s, dict)]


def searches_of(workdir: Path) -> list[tuple[str, str]]:
    try:
        return searches_in(json.loads((workdir / SPEC_RECORD).read_text()))
    except (OSError, ValueError):
        return []


def objective_in(spec: Any) -> Objective | None:
    app = spec.get("app") if isinstance(spec, dict) else None
    if not isinstance(app, dict):
        return None
    for _, search in _searches(app):
        if not isinstance(search, dict) or not search.get("objective"):
            continue
        key, direction = search["objective"], search.get("direction", "minimize")
        key = key[0] if isinstance(key, list) else key
        direction = direction[0] if isinstance(direction, list) else direction
        return Objective(str(key), str(direction))
    return None


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "!=": operator.ne, "==": operator.eq,
    "=": operator.eq, "<": operator.lt, ">": operator.gt,
}  # fmt: skip
_WHERE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$")


def parse_where(text: str) -> Callable[[Trial], bool]:
    """``KEY<VALUE`` (also ``<=``, ``>``, ``>=``, ``=``, ``==``, ``!=``): numbers compare
    as numbers, anything else as text; a trial without the key never matches."""
    m = _WHERE.match(text)
    if m is None:
        raise PilotkitError(f"--where {text!r}: expected KEY<VALUE (<, <=, >, >=, =, !=)")
    key, op, raw = m.group(1), _OPS[m.group(2)], m.group(3)
    value: Any = _number(raw)

    def test(trial: Trial) -> bool:
        have = trial.get(key)
        if have is None:
            return False
        if isinstance(value, float) and isinstance(have, int | float) and not isinstance(have, bool):
            return bool(op(float(have), value))
        return bool(op(str(have), raw))

    return test


def _number(raw: str) -> float | str:
    try:
        return float(raw)
    except ValueError:
        return raw


def sort_trials(trials: Sequence[Trial], key: str, *, descending: bool = False) -> list[Trial]:
    """Trials with a number for ``key`` first, best first; then the others in task order."""
    def number(t: Trial) -> float | None:
        v = t.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
            return None
        return float(v)

    have = [t for t in trials if number(t) is not None]
    rest = sorted((t for t in trials if number(t) is None), key=lambda t: t.task)
    have.sort(key=lambda t: (number(t) or 0.0) * (-1 if descending else 1))
    return have + rest


def best(trials: Iterable[Trial], objective: Objective) -> Trial | None:
    ranked = sort_trials([t for t in trials if t.outcome == "ok"], objective.key, descending=objective.descending)
    return ranked[0] if ranked and ranked[0].get(objective.key) is not None else None


def best_line(workdir: Path) -> str | None:
    """One line on the best trial of the run in ``workdir``, when its spec has an
    objective and a trial reported it (blocking: reads files)."""
    objective = objective_of(workdir)
    if objective is None:
        return None
    try:
        trials = read_trials(workdir)
    except PilotkitError:
        return None
    top = best(trials, objective)
    if top is None:
        return f"best trial: none reported {objective.key}"
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in top.params.items())
    return f"best trial: {top.task} {objective.key}={_fmt(top.get(objective.key))} ({params})"


def columns(trials: Sequence[Trial]) -> tuple[list[str], list[str]]:
    """The parameter and metric names, in first-seen order (``step`` left out)."""
    params: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for t in trials:
        params.update(dict.fromkeys(t.params))
        metrics.update(dict.fromkeys(k for k in t.metrics if k != "step"))
    return list(params), list(metrics)


def _metric_headers(params: list[str], metrics: list[str]) -> list[str]:
    """Metric names, as ``metrics.NAME`` where a parameter has the same name."""
    return [f"metrics.{m}" if m in params else m for m in metrics]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def table(trials: Sequence[Trial]) -> list[str]:
    """Aligned text lines: task, outcome, duration, each parameter, each metric."""
    params, metrics = columns(trials)
    header = ["task", "outcome", "duration", *params, *_metric_headers(params, metrics)]
    rows = [
        [t.task, t.outcome or "-", "-" if t.duration is None else f"{t.duration:.1f}s",
         *(_fmt(t.params.get(p)) for p in params), *(_fmt(t.metrics.get(m)) for m in metrics)]
        for t in trials
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]


def to_csv(trials: Sequence[Trial]) -> str:
    params, metrics = columns(trials)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["task", "group", "outcome", "duration", "attempts", *params, *_metric_headers(params, metrics)])
    for t in trials:
        writer.writerow([t.task, t.group, t.outcome or "", "" if t.duration is None else t.duration, t.attempts,
                         *(_cell(t.params.get(p)) for p in params), *(_cell(t.metrics.get(m)) for m in metrics)])  # fmt: skip
    return out.getvalue()


def to_parquet(trials: Sequence[Trial], path: Path) -> None:
    """Write the trials to a Parquet file, the columns of :func:`to_csv` with their types
    (a column whose values have no common type is written as text). Needs pyarrow."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise PilotkitError("--parquet needs pyarrow: pip install 'pilotkit[parquet]'") from None
    params, metrics = columns(trials)
    data: dict[str, list[Any]] = {
        "task": [t.task for t in trials],
        "group": [t.group for t in trials],
        "outcome": [t.outcome for t in trials],
        "duration": [t.duration for t in trials],
        "attempts": [t.attempts for t in trials],
        "node": [t.node for t in trials],
    }
    for p in params:
        data[p] = [t.params.get(p) for t in trials]
    for m, header in zip(metrics, _metric_headers(params, metrics), strict=True):
        data[header] = [t.metrics.get(m) for t in trials]
    arrays = {}
    for name, values in data.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            arrays[name] = pa.array([None if v is None else _cell(v) for v in values], pa.string())
    try:
        pq.write_table(pa.table(arrays), str(path))
    except OSError as exc:
        raise PilotkitError(f"--parquet: cannot write {path}: {exc.strerror or exc}") from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
