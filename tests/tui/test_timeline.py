"""``pilotkit timeline PILOT`` and ``pilotkit nodes PILOT`` from a real daemon, the
dashboard's timeline (``t``) and node (``n``) screens showing the same, and the layout
itself (rows for overlapping attempts, gaps, busy fraction)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil

from pilotkit.client import Target
from pilotkit.protocol import TimelineNode, TimelineSpan
from pilotkit.timeline import Attempt, bar, lay_out
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.live import LiveSource
from pilotkit.tui.screens.nodes import NodesScreen, TimelineScreen
from pilotkit.tui.screens.pilot import PilotScreen

from .conftest import SIZE, wait_for

SPEC = """name = "gaps"
[resources]
cores = 2
[app]
type = "tasks"
[[app.groups]]
name = "pair"
shell = true
command = "sleep 0.4"
[app.groups.grid]
i = [0, 1]
[[app.groups]]
name = "flaky"
shell = true
retries = 1
command = "test -f {marker} || {{ touch {marker}; exit 3; }}"
[app.groups.grid]
marker = ["MARKER"]
"""

LONG = """name = "long"
[resources]
cores = 2
[app]
type = "tasks"
[[app.groups]]
name = "long"
shell = true
command = "sleep 30"
"""


def test_layout_rows_gaps_and_busy() -> None:
    attempts = [
        Attempt("a", "g", 1, "n1", 0.0, 4.0, "ok"),
        Attempt("b", "g", 1, "n1", 1.0, 2.0, "failed"),
        Attempt("c", "g", 1, "n1", 2.0, 3.0, "ok"),  # fits in b's row once b ended
        Attempt("d", "g", 1, "n1", 6.0, None),  # runs
    ]
    r = lay_out("p", "running", attempts, end=10.0, cores={"n1": 2, "n2": 4})
    n1, n2 = r.nodes
    assert (r.start, r.end, r.attempts) == (0.0, 10.0, 4)
    assert [(s.task, s.lane) for s in n1.spans] == [("a", 0), ("b", 1), ("c", 1), ("d", 0)]
    assert n1.lanes == 2 and n1.gaps == [(4.0, 6.0)] and n1.busy == 0.8
    assert n2.spans == [] and n2.gaps == [(0.0, 10.0)] and n2.busy == 0.0 and n2.cores == 4
    assert bar(n1, 0.0, 10.0, 10) == "▄██▄  ▄▄▄▄"  # full: both cores busy
    assert bar(n2, 0.0, 10.0, 5) == "     "
    empty = lay_out("p", "done", [], end=5.0, start=5.0)
    assert empty.nodes == [] and empty.start == empty.end == 5.0


def test_bar_is_blank_exactly_where_nothing_ran() -> None:
    node = TimelineNode(name="n", cores=1, lanes=1, spans=[TimelineSpan(task="t", group="g", start=0.0, end=1.0),
                                                         TimelineSpan(task="u", group="g", start=3.0, end=4.0)])
    assert bar(node, 0.0, 4.0, 8) == "██    ██"


def test_many_nodes_draw_their_load_line_only() -> None:
    from pilotkit.tui.format import DEFAULT_PALETTE
    from pilotkit.tui.screens.nodes import MAX_DETAILED, draw_timeline

    attempts = [Attempt(f"t{i}", "g", 1, f"n{i:03d}", float(i % 7), float(i % 7) + 2.0, "ok")
                for i in range(MAX_DETAILED + 1)]
    text = draw_timeline(lay_out("p", "done", attempts, end=10.0), 100, DEFAULT_PALETTE).plain
    assert text.count(f"({MAX_DETAILED + 1} nodes: the load line only)") == MAX_DETAILED + 1
    assert "row 0" not in text
    few = draw_timeline(lay_out("p", "done", attempts[:3], end=10.0), 100, DEFAULT_PALETTE).plain
    assert few.count("row 0") == 3 and "load line only" not in few
    assert "t0" in few and "t2" in few  # each attempt (2 s of 10, about 17 columns) carries its name
    narrow = draw_timeline(lay_out("p", "done", attempts[:3], end=10.0), 20, DEFAULT_PALETTE).plain
    rows = [line for line in narrow.splitlines() if "row 0" in line]
    assert len(rows) == 3 and not any("t0" in line or "t1" in line for line in rows)  # 2 columns: no room


def test_load_per_cpu_one_character_each_64_to_a_row() -> None:
    from pilotkit.timeline import core_load_lines

    head, first, second = core_load_lines([0.0, 0.5, 12.5, 13.0, 100.0] + [50.0] * 65)
    assert head == "  load per CPU: 70 CPU(s), 66 at 50% or more, busiest 100%"
    assert first.startswith("  cpus 0-63    ··▁▂█▄") and len(first) == 15 + 64
    assert second == "  cpus 64-69   " + "▄" * 6
    narrow = core_load_lines([50.0] * 70, width=76)  # 56 a row: eights that fit
    assert [len(line) - 15 for line in narrow[1:]] == [56, 14]


async def test_timeline_and_nodes_from_a_daemon(tui_daemon: Any, tmp_path: Path) -> None:
    spec = tmp_path / "gaps.toml"
    spec.write_text(SPEC.replace("MARKER", str(tmp_path / "marker")))
    pilot = tui_daemon.submit(spec)
    tui_daemon.wait_state(pilot, {"done"})
    t = json.loads(tui_daemon.cli("timeline", pilot, "--json", "--min-gap", "0.3", "--limit", "100").stdout)
    (node,) = t["nodes"]
    spans = {(s["task"], s.get("attempt", 1)): s for s in node["spans"]}
    pair = [s for (task, _), s in spans.items() if task.startswith("pair")]
    assert len(pair) == 2 and {s.get("lane", 0) for s in pair} == {0, 1}  # side by side
    assert all(s["outcome"] == "ok" for s in pair)
    flaky = sorted((s for (task, _), s in spans.items() if task.startswith("flaky")), key=lambda s: s["start"])
    assert [s.get("attempt", 1) for s in flaky] == [1, 2] and flaky[0]["outcome"] == "failed"
    # the retry waited at least half a second after the failure, with nothing else to run: a gap
    assert any(a >= flaky[0]["end"] - 0.01 and b <= flaky[1]["start"] + 0.01 for a, b in node["gaps"])
    assert t["attempts"] == 4 and 0 < node["busy"] < 1 and node["cores"] == 2
    assert all("end" in s for s in node["spans"])
    text = tui_daemon.cli("timeline", pilot, "--tasks").stdout
    assert "busy" in text and "4 attempt(s), at most 2 at once" in text and "failed" in text

    long_spec = tmp_path / "long.toml"
    long_spec.write_text(LONG)
    long = tui_daemon.submit(long_spec)
    n = wait_for(lambda: (n := json.loads(tui_daemon.cli("nodes", long, "--json").stdout))["nodes"]
                 and n["nodes"][0].get("tasks") and n, 30, "the long task running")
    (info,) = n["nodes"]
    assert [task["task"] for task in info["tasks"]] == ["long-0"] and info["tasks"][0]["cores"] == 1
    assert info["free_cores"] == info["cores"] - 1 and info["memory"] > 0
    pid = info["tasks"][0]["pid"]  # the local pilot's task: a process of this machine
    assert "sleep" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    words = tui_daemon.cli("nodes", long).stdout
    assert "(1 free)" in words and "long" in words and f"pid {pid}" in words
    loaded = wait_for(lambda: json.loads(tui_daemon.cli("nodes", long, "--json").stdout)["nodes"][0]
                      .get("core_percent"), 10, "a load sample per CPU")
    assert len(loaded) == psutil.cpu_count() and all(0.0 <= v <= 100.0 for v in loaded)
    assert f"load per CPU: {len(loaded)} CPU(s)" in tui_daemon.cli("nodes", long).stdout
    bad = tui_daemon.cli("timeline", "no-such-pilot", check=False)
    assert bad.returncode == 2 and "no-such-pilot" in bad.stderr and "Traceback" not in bad.stderr

    app = PilotkitApp(LiveSource(Target(socket=str(tui_daemon.socket)), poll=0.3), pilot=long)
    async with app.run_test(size=SIZE) as ui:
        await app.until(lambda: isinstance(app.screen, PilotScreen))
        await ui.press("t")
        await app.until(lambda: isinstance(app.screen, TimelineScreen))
        screen = app.screen
        assert isinstance(screen, TimelineScreen)
        await app.until(lambda: screen.result is not None)
        text = screen.text()
        assert info["name"] in text and "1 attempt(s) on 1 node(s)" in text and "busy" in text
        await ui.press("escape", "n")
        await app.until(lambda: isinstance(app.screen, NodesScreen))
        nodes = app.screen
        assert isinstance(nodes, NodesScreen)
        await app.until(lambda: nodes.result is not None)
        assert "(1 free)" in nodes.text()
        await app.until(lambda: "load per CPU" in nodes.text())
    tui_daemon.cli("cancel", long)
    tui_daemon.wait_state(long, {"cancelled"})
    done = json.loads(tui_daemon.cli("timeline", long, "--json").stdout)
    assert all("end" in s for s in done["nodes"][0]["spans"])  # the cancelled task ended
