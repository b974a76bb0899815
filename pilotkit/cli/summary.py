"""What ``pilotkit run`` says at the end, and its plain form (lines for a log file).

Kept apart from :mod:`.render` so that a run whose output is not a terminal (a batch
script, a pipe) never imports rich.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..vocab import TASKS_DIR

if TYPE_CHECKING:
    from ..pilot import PilotOutcome
    from ..progress import Progress

SUMMARY_FAILURES = 20
"""Failed tasks the summary names; the rest are counted."""


@dataclass(frozen=True)
class Summary:
    """The end of a run: its state and time, the failed tasks (id, exit code, last stderr
    line, log) and the best trial's line."""

    state: str
    elapsed: str
    failed: int
    failures: list[str]
    more_line: str | None
    best: str | None

    @classmethod
    def of(cls, outcome: PilotOutcome, progress: Progress) -> Summary:
        """Reads the failed tasks' stderr files: call it off the event loop."""
        from ..trials import best_line
        from .logview import describe_failure

        failed = progress.totals().failed
        shown = progress.failures[:SUMMARY_FAILURES]
        more = failed - len(shown)
        return cls(
            state=outcome.state.value,
            elapsed=f"{outcome.ended - outcome.started:.1f}s",
            failed=failed,
            failures=[describe_failure(f, outcome.workdir) for f in shown],
            more_line=f"... and {more} more failed tasks: see {outcome.results}" if more > 0 else None,
            best=best_line(outcome.workdir),
        )


def print_plain_summary(outcome: PilotOutcome, progress: Progress) -> None:
    """The summary as lines on stderr: counts per group, the state, where results and
    logs are, the failed tasks. Reads the tasks' stderr files (call it off the event loop)."""
    s = Summary.of(outcome, progress)
    lines = [f"pilot {outcome.pilot_id}"]
    lines += [
        f"  group {name}: {g.total} tasks, {g.done} done, {g.failed} failed, {g.cancelled} cancelled, "
        f"{g.queued} queued, {g.running} running"
        for name, g in progress.groups.items()
    ]
    lines.append(f"state: {s.state}" + (f" ({outcome.reason})" if outcome.reason else "") + f"  time: {s.elapsed}")
    lines.append(f"results: {outcome.results}")
    lines.append(f"task logs: {outcome.workdir / TASKS_DIR}")
    if s.failed:
        lines.append(f"failed tasks: {s.failed}")
        lines += [f"  {line}" for line in s.failures]
        if s.more_line:
            lines.append(f"  {s.more_line}")
    if s.best:
        lines.append(s.best)
    for line in lines:
        print(line, file=sys.stderr, flush=True)
