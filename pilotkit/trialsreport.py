"""``pilotkit results --html FILE``: a self-contained HTML report of a run's trials, the
table and the objective against trial and against each numeric parameter, drawn as
inline SVG (no script, nothing fetched)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from .trials import Trial, columns

_W, _H, _PAD = 420, 260, 44


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ticks(lo: float, hi: float) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / 4 for i in range(5)]


def scatter(xs: Sequence[float], ys: Sequence[float], xlabel: str, ylabel: str, best: int | None = None) -> str:
    """One scatter plot as an SVG element."""
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    sx = (_W - 2 * _PAD) / (x1 - x0 or 1)
    sy = (_H - 2 * _PAD) / (y1 - y0 or 1)

    def px(x: float) -> float:
        return _PAD + (x - x0) * sx

    def py(y: float) -> float:
        return _H - _PAD - (y - y0) * sy

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" role="img">',
             f'<title>{html.escape(ylabel)} against {html.escape(xlabel)}</title>',
             f'<rect x="{_PAD}" y="{_PAD}" width="{_W - 2 * _PAD}" height="{_H - 2 * _PAD}" class="frame"/>']  # fmt: skip
    for t in _ticks(x0, x1):
        parts.append(f'<text x="{px(t):.1f}" y="{_H - _PAD + 14}" class="tick" text-anchor="middle">{t:.3g}</text>')
    for t in _ticks(y0, y1):
        parts.append(f'<text x="{_PAD - 4}" y="{py(t) + 4:.1f}" class="tick" text-anchor="end">{t:.3g}</text>')
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        cls = "best" if i == best else "dot"
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{4 if cls == "best" else 2.5}" class="{cls}"/>')
    parts.append(f'<text x="{_W / 2}" y="{_H - 8}" class="label" text-anchor="middle">{html.escape(xlabel)}</text>')
    parts.append(f'<text x="12" y="{_PAD - 14}" class="label">{html.escape(ylabel)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}
.frame{fill:none;stroke:#999}.dot{fill:#2a6fb0}.best{fill:#d33}.tick{font-size:10px;fill:#555}
.label{font-size:12px}.plots svg{margin:0 1em 1em 0}"""


def report(
    trials: Sequence[Trial], key: str | None, title: str, descending: bool = False, plots: Sequence[str] = ()
) -> str:
    """The whole report: plots of ``key`` (when trials report it) and the table.
    ``plots``: a sampler's own plots (HTML fragments), drawn instead of the SVG ones."""
    params, metrics = columns(trials)
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]  # fmt: skip
    if key is not None:
        ordered = sorted(trials, key=_order)
        scored = [(t, float(t.get(key))) for t in ordered if _is_number(t.get(key))]
        if scored:
            values = [v for _, v in scored]
            ok = [i for i, (t, _) in enumerate(scored) if t.outcome == "ok"]  # not a pruned one's last report
            best = (max if descending else min)(ok, key=lambda i: values[i]) if ok else None
            if best is not None:
                top = scored[best][0]
                out.append(f"<p>best trial: <b>{html.escape(top.task)}</b> {html.escape(key)} = {values[best]:.6g}</p>")
            out.append("<div class='plots'>")
            if plots:
                out.extend(plots)
                out.append("</div>")
            else:
                out.append(scatter([float(i) for i in range(len(scored))], values, "trial", key, best))
                for name in params:
                    xs = [t.params.get(name) for t, _ in scored]
                    if all(_is_number(x) for x in xs):
                        out.append(scatter([float(x or 0) for x in xs], values, name, key, best))
                out.append("</div>")
    header = ["task", "outcome", "duration", *params, *metrics]
    out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for t in trials:
        cells = [t.task, t.outcome or "", "" if t.duration is None else f"{t.duration:.1f}s",
                 *(_cell(t.params.get(p)) for p in params), *(_cell(t.metrics.get(m)) for m in metrics)]  # fmt: skip
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</table></body></html>\n")
    return "\n".join(out)


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _order(t: Trial) -> tuple[int, str]:
    head, _, number = t.task.rpartition("-")
    return (int(number), head) if number.isdigit() else (0, t.task)
