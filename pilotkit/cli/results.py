"""``pilotkit results``: a run's trials (parameters, metrics, outcome, duration) as a
table sorted by the objective, or as JSON / CSV; from a run directory, or from a pilot
the daemon runs."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import PilotkitError
from .daemon_commands import connection_options, with_client

if TYPE_CHECKING:
    from ..client import Client
    from ..trials import Objective, Trial


def _latest_run(root: Path) -> Path:
    runs = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    if not runs:
        raise PilotkitError(f"no run directory under ./{root}: name a PILOT or a WORKDIR")
    return max(runs, key=lambda p: p.stat().st_mtime)


@click.command()
@click.argument("target", required=False, metavar="[PILOT|WORKDIR]")
@click.option("--sort", "sort_key", metavar="KEY", help="Sort by this metric, parameter or field "
              "(default: the spec's search objective).")
@click.option("--desc", is_flag=True, help="Largest first (default: as the objective's direction, else smallest).")
@click.option("--top", type=click.IntRange(min=1), metavar="N", help="Only the first N trials.")
@click.option("--where", "wheres", multiple=True, metavar="'KEY<VALUE'",
              help="Only trials where KEY compares so (<, <=, >, >=, =, !=; repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the trials as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the trials as CSV.")
@click.option("--parquet", "parquet_file", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write the trials to a Parquet file (needs pyarrow: pilotkit[parquet]).")
@click.option("--plot", "as_plot", is_flag=True,
              help="Draw the objective against trial and against each parameter (needs plotext).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write a self-contained HTML report (the table and the objective's plots) to FILE.")
@connection_options
def results(target: str | None, sort_key: str | None, desc: bool, top: int | None, wheres: tuple[str, ...],
            as_json: bool, as_csv: bool, parquet_file: str | None, as_plot: bool, html_file: str | None,
            **connection: str | None) -> None:  # fmt: skip
    """The trials of a run: parameters, metrics, outcome and duration, best first.

    TARGET is a run directory (default: the newest under ./pilotkit-runs) or the id of
    a pilot the daemon runs or ran."""
    from .. import trials as t

    workdir: Path | None = None
    if target is None or Path(target).is_dir():
        workdir = Path(target) if target is not None else _latest_run(Path("pilotkit-runs"))
        rows, objective = t.read_trials(workdir), t.objective_of(workdir)
    else:
        rows, objective = _from_daemon(pilot=target, **connection)
    if parquet_file is not None:
        tests = [t.parse_where(w) for w in wheres]
        chosen = [r for r in rows if all(test(r) for test in tests)]
        key = sort_key or (objective.key if objective else None)
        if key is not None:
            descending = desc or (sort_key is None and objective is not None and objective.descending)
            chosen = t.sort_trials(chosen, key, descending=descending)
        t.to_parquet(chosen[:top] if top else chosen, Path(parquet_file))
        click.echo(f"wrote {parquet_file} ({len(chosen[:top] if top else chosen)} trials)", err=True)
        return
    if html_file is not None:
        from ..trialsreport import report

        tests = [t.parse_where(w) for w in wheres]
        chosen = [r for r in rows if all(test(r) for test in tests)]
        key = sort_key or (objective.key if objective else None)
        descending = desc or (sort_key is None and objective is not None and objective.descending)
        if key is not None:
            chosen = t.sort_trials(chosen, key, descending=descending)
        title = f"pilotkit results: {target or 'newest run'}"
        try:
            plots = _sampler_plots(workdir) if workdir is not None else []
            Path(html_file).write_text(report(chosen[:top] if top else chosen, key, title, descending, plots))
        except OSError as exc:
            raise PilotkitError(f"--html: cannot write {html_file}: {exc.strerror or exc}") from None
        click.echo(f"wrote {html_file}", err=True)
        return
    if as_plot:
        key = sort_key or (objective.key if objective else None)
        if key is None:
            raise PilotkitError("--plot: the spec has no search objective; name a metric with --sort KEY")
        tests = [t.parse_where(w) for w in wheres]
        chosen = [r for r in rows if all(test(r) for test in tests)]
        click.echo(plot(chosen, key, color=sys.stdout.isatty()), nl=False)
        return
    show(rows, objective, sort_key=sort_key, desc=desc, top=top, wheres=wheres, as_json=as_json, as_csv=as_csv)


def _sampler_plots(workdir: Path) -> list[str]:
    """The search samplers' own plots of the run's studies (Optuna's, with plotly), or []."""
    from .. import trials as t
    from ..errors import PluginError
    from ..plugins import get_plugins
    from ..vocab import SEARCH_DIR

    plots: list[str] = []
    for study, name in t.searches_of(workdir):
        try:
            sampler = get_plugins().sampler(name)
        except PluginError:
            continue
        plots += sampler.html_plots(workdir / SEARCH_DIR, study)
    return plots


@with_client
async def _from_daemon(client: Client, pilot: str) -> tuple[list[Trial], Objective | None]:
    from .. import trials as t

    described = await client.describe(pilot)
    objective = None
    try:
        objective = t.objective_in(tomllib.loads(described.spec))
    except tomllib.TOMLDecodeError:
        pass
    rows: list[Trial] = []
    offset = 0
    while True:
        page = await client.tasks(described.summary.id, offset=offset, limit=1000)
        for info in page.tasks:
            duration = info.end - info.start if info.end is not None and info.start is not None else None
            rows.append(t.Trial(task=info.task, group=info.group, outcome=info.outcome or info.status,
                                duration=duration if info.outcome is not None else None,
                                params=dict(info.params or {}), metrics=dict(info.metrics or {}),
                                attempts=info.attempts, node=info.node))  # fmt: skip
        offset += len(page.tasks)
        if not page.tasks or offset >= page.total:
            return rows, objective


def show(rows: list[Trial], objective: Objective | None, *, sort_key: str | None, desc: bool, top: int | None,
         wheres: tuple[str, ...], as_json: bool, as_csv: bool) -> None:  # fmt: skip
    from .. import trials as t

    tests = [t.parse_where(w) for w in wheres]
    rows = [row for row in rows if all(test(row) for test in tests)]
    key = sort_key or (objective.key if objective else None)
    if key is not None:
        descending = desc or (sort_key is None and objective is not None and objective.descending)
        rows = t.sort_trials(rows, key, descending=descending)
    else:
        rows.sort(key=lambda r: r.task)
    if top is not None:
        rows = rows[:top]
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2, default=str))
    elif as_csv:
        sys.stdout.write(t.to_csv(rows))
    else:
        for line in t.table(rows):
            click.echo(line)


def plot(rows: list[Trial], key: str, *, color: bool, width: int = 78, height: int = 16) -> str:
    """``key`` against trial (in task order) and against each numeric parameter, drawn
    for the terminal (plotext)."""
    try:
        import plotext
    except ImportError:
        raise PilotkitError("--plot needs plotext 6: pip install 'pilotkit[plot]'") from None
    from .. import trials as t

    scored = [(r, v) for r in sorted(rows, key=_trial_order) if _is_number(v := r.get(key))]
    if not scored:
        raise PilotkitError(f"--plot: no trial reported a number for '{key}'")
    params, _ = t.columns([r for r, _ in scored])
    panels: list[tuple[str, list[float]]] = [("trial", [float(i) for i in range(len(scored))])]
    for name in params:
        values = [r.params.get(name) for r, _ in scored]
        if all(_is_number(x) for x in values):
            panels.append((name, [float(x or 0) for x in values]))
    ys = [float(v) for _, v in scored]
    out = []
    figure = plotext.figure
    for name, xs in panels:
        figure.clear()
        figure.plot_size(width, height)
        figure.title(f"{key} against {name}")
        figure.label(name, axis="x")
        figure.draw(figure.signal(xs, ys, marker="dot"))
        text = str(figure.build())
        out.append(text if color else plotext.uncolorize(text))
    return "\n".join(out) + "\n"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _trial_order(row: Trial) -> tuple[int, str]:
    """Trials in the order they were made: by the number at the end of the task id."""
    head, _, number = row.task.rpartition("-")
    return (int(number), head) if number.isdigit() else (0, row.task)
