"""Retrying a selection of failed tasks: ``pilotkit retry PILOT --task T`` and the
failures screen's marks (``space``) and ``r``, which asks first and says what it will
do; ``--readonly`` offers none of it. On a real daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pilotkit.client import Target
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.live import LiveSource
from pilotkit.tui.screens.failures import FailuresScreen
from pilotkit.tui.screens.modals import ConfirmScreen
from pilotkit.tui.screens.pilot import PilotScreen

from .conftest import SIZE

SPEC = """name = "triage"
[app]
type = "tasks"
[[app.groups]]
name = "bad"
shell = true
command = "echo 'no mass' >&2; test -f {flag} || exit {code}"
[app.groups.grid]
i = [0, 1]
code = [3, 4]
flag = ["FLAG"]
[[app.groups]]
name = "good"
command = "true"
"""


def attempts(daemon: Any, pilot: str) -> dict[str, tuple[str, int]]:
    page = json.loads(daemon.cli("tasks", pilot, "--json").stdout)
    return {t["task"]: (t["status"], t.get("attempts", 0)) for t in page["tasks"]}


async def test_retry_a_selection(tui_daemon: Any, tmp_path: Path) -> None:
    spec = tmp_path / "triage.toml"
    flag = tmp_path / "flag"
    spec.write_text(SPEC.replace("FLAG", str(flag)))
    pilot = tui_daemon.submit(spec)
    tui_daemon.wait_state(pilot, {"failed"})
    before = attempts(tui_daemon, pilot)
    failed = sorted(t for t, (status, _) in before.items() if status == "failed")
    assert len(failed) == 4 and before["good-0"] == ("done", 1)

    # a task that did not fail cannot be picked: one line, exit 2
    bad = tui_daemon.cli("retry", pilot, "--task", "good-0", check=False)
    assert bad.returncode == 2 and "not failed tasks" in bad.stderr and "good-0" in bad.stderr
    assert "Traceback" not in bad.stderr

    # the CLI: one task; the others keep their results
    flag.write_text("")
    first = failed[0]
    out = tui_daemon.cli("retry", pilot, "--task", first).stdout
    assert "1 task(s) queued again" in out
    tui_daemon.wait_state(pilot, {"failed"})
    after = attempts(tui_daemon, pilot)
    assert after[first] == ("done", 2)
    assert all(after[t] == before[t] for t in failed[1:]) and after["good-0"] == ("done", 1)

    # the dashboard: mark the exit-3 group, r, read what it will do, confirm
    app = PilotkitApp(LiveSource(Target(socket=str(tui_daemon.socket)), poll=0.3), pilot=pilot)
    async with app.run_test(size=SIZE) as ui:
        await app.until(lambda: isinstance(app.screen, PilotScreen))
        await ui.press("F")
        await app.until(lambda: isinstance(app.screen, FailuresScreen))
        screen = app.screen
        assert isinstance(screen, FailuresScreen)
        await app.until(lambda: screen.result is not None and len(screen.result.groups) == 2)
        assert screen.result is not None
        codes = [g.exit_code for g in screen.result.groups]
        await ui.press(*["down"] * codes.index(3), "space")
        assert screen.lines()[codes.index(3)].startswith("[x]")
        chosen = screen.selection()
        assert len(chosen) == 1 and chosen[0] != first and after[chosen[0]][0] == "failed"
        await ui.press("r")
        await app.until(lambda: isinstance(app.screen, ConfirmScreen))
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.question == f"Retry 1 failed task(s) of {pilot}?"
        assert chosen[0] in confirm.detail and "The other 2 failed task(s) keep their results" in confirm.detail
        await ui.press("n")  # not done: nothing changes
        await ui.pause()
        assert attempts(tui_daemon, pilot) == after
        await ui.press("r")
        await app.until(lambda: isinstance(app.screen, ConfirmScreen))
        await ui.press("y")
        await app.until(lambda: attempts(tui_daemon, pilot)[chosen[0]] == ("done", 2), 30)
    tui_daemon.wait_state(pilot, {"failed"})
    final = attempts(tui_daemon, pilot)
    left = [t for t in failed if t not in (first, chosen[0])]
    assert all(final[t] == before[t] for t in left) and final["good-0"] == ("done", 1)

    # --readonly: no mark, no retry, and their keys are not in the footer
    app = PilotkitApp(LiveSource(Target(socket=str(tui_daemon.socket)), poll=0.3), pilot=pilot, readonly=True)
    async with app.run_test(size=SIZE) as ui:
        await app.until(lambda: isinstance(app.screen, PilotScreen))
        await ui.press("F")
        await app.until(lambda: isinstance(app.screen, FailuresScreen))
        screen = app.screen
        assert isinstance(screen, FailuresScreen)
        await app.until(lambda: screen.result is not None and bool(screen.result.groups))
        shown = {b.binding.description for b in screen.active_bindings.values() if b.binding.show}
        assert "Back" in shown and not shown & {"Mark", "Retry marked", "Retry all failed"}
        await ui.press("r", "a")
        await ui.pause()
        assert not isinstance(app.screen, ConfirmScreen)
    assert attempts(tui_daemon, pilot) == final
