"""The dashboard's campaign page on a campaign a real daemon runs: it is offered in the
command palette, and its page shows what ``pilotkit status CAMPAIGN --json`` shows (the
allocations and why each ended, the backlog); a name that is no campaign says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pilotkit.client import Target
from pilotkit.tui.app import PilotkitApp
from pilotkit.tui.live import LiveSource
from pilotkit.tui.screens.campaign import CampaignScreen

SPEC = """name = "tui-scan"
[resources]
cores = 2
walltime = "3s"
[pilot]
drain_margin = "1s"
grace = "1s"
[campaign]
max_allocations = 10
parallel = 1
idle_timeout = "1s"
[[app.groups]]
name = "t"
command = "sleep 0.5"
[app.groups.grid]
i = [0, 1, 2, 3, 4, 5, 6, 7]
"""


async def test_campaign_page_shows_what_status_shows(tui_daemon: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("XDG_STATE_HOME", str(tui_daemon.state_home))  # the daemon's machine and user
    spec = tmp_path / "tui-scan.toml"
    spec.write_text(SPEC)
    campaign_id = tui_daemon.submit(spec)
    app = PilotkitApp(LiveSource(Target(socket=str(tui_daemon.socket)), poll=0.3))
    async with app.run_test(size=(160, 48)):
        await app.until(lambda: any(c.id == campaign_id for c in app.model.campaigns), 30)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert f"Open campaign {campaign_id}" in titles
        app.open_campaign(campaign_id)
        await app.until(lambda: isinstance(app.screen, CampaignScreen))
        screen = app.screen
        assert isinstance(screen, CampaignScreen)
        await app.until(lambda: screen.status is not None and screen.status.state == "done", 60)
        text = screen.text(156)
        status = json.loads(tui_daemon.cli("status", campaign_id, "--json").stdout)
        assert status["state"] == "done" and status["done"] == 8
        assert "tui-scan  done" in text and "tasks 8/8 done, 0 failed" in text
        for allocation in status["allocations"]:
            short = allocation["name"].removeprefix(f"{campaign_id}-")
            row = next(line for line in text.splitlines() if line.startswith(f"{short} "))
            assert allocation["job_id"] in row and "ended" in row and allocation["why"] in row
        assert "queued" in text and "running" in text  # the timeline's legend
        app.source.remote = True  # as over --host: from the daemon's `campaign`, not the file here
        assert await app.source.campaign(campaign_id[:-2]) == screen.status
        await app.pop_screen()
        app.open_campaign("no-such-campaign")
        await app.until(lambda: isinstance(app.screen, CampaignScreen) and app.screen.problem is not None)
        assert app.screen.text().startswith("no campaign 'no-such-campaign' in this daemon"), app.screen.text()
