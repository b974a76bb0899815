"""The real ``pilotkit tui`` as people run it: in a terminal (tmux), and in a browser
(``--serve``, textual-serve, headless Chromium)."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pilotkit.testing import free_port, need, need_binary
from pilotkit.testing.chromium import find_chromium, screenshot

from .conftest import DEMO_LOG, ROOT, env_for, python_env, quick_spec, wait_for

ARTIFACTS = Path(os.environ.get("PILOTKIT_TEST_ARTIFACTS") or ROOT / "tests" / "tui" / "artifacts")
"""Where the browser view's screenshot is kept after the run (``$PILOTKIT_TEST_ARTIFACTS``)."""

PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]
TOTALS = re.compile(r"\btotal\s[ █]*\s(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\b")
"""The totals line of the task groups: total, queued, running, done, failed."""


@pytest.mark.tmux
def test_dashboard_in_tmux_follows_a_pilot_to_done(tui_daemon: Any, tmp_path: Path) -> None:
    tmux = need_binary("tmux")
    spec = quick_spec(tmp_path, tasks=20, seconds=0.5)
    server = str(tmp_path / "tmux.sock")
    command = shlex.join([*PILOTKIT, "tui", str(spec), "--socket", str(tui_daemon.socket), "--no-start"])
    env = env_for(tui_daemon)
    env["TERM"] = "xterm-256color"
    subprocess.run([tmux, "-S", server, "new-session", "-d", "-s", "tui", "-x", "160", "-y", "48", command],
                   env=env, check=True, timeout=30)

    def screen() -> str:
        out = subprocess.run([tmux, "-S", server, "capture-pane", "-p", "-t", "tui"], capture_output=True,
                             text=True, timeout=30)
        return out.stdout

    seen: list[int] = []

    def done_count() -> tuple[int, int] | None:
        match = TOTALS.search(screen())
        if match is None:
            return None
        total, _, _, done, _ = (int(g) for g in match.groups())
        seen.append(done)
        return (total, done)

    try:
        wait_for(lambda: (c := done_count()) is not None and c[0] == 20 and 0 < c[1] < 20, 60,
                 "the dashboard to show the pilot part done")
        wait_for(lambda: (c := done_count()) is not None and c[1] == 20, 60, "every task done")

        def finished() -> str | None:
            text = screen()
            return text if re.search(r"\bquick\b.*\bdone\b", text) else None

        final = wait_for(finished, 30, "the pilot's state to show done")
        assert "connected" in final and "LIVE" in final
        assert seen == sorted(seen), f"progress went backwards: {seen}"
        subprocess.run([tmux, "-S", server, "send-keys", "-t", "tui", "q"], timeout=30)
        wait_for(lambda: subprocess.run([tmux, "-S", server, "has-session", "-t", "tui"],
                                        capture_output=True).returncode != 0, 20, "the dashboard to quit on q")
    finally:
        subprocess.run([tmux, "-S", server, "kill-server"], capture_output=True, timeout=30)


def test_browser_view_through_textual_serve(tmp_path: Path) -> None:
    chromium = find_chromium()
    need("Chromium", chromium is not None, "apt-get install chromium: the browser view is not checked")
    assert chromium is not None
    pytest.importorskip("textual_serve", reason="textual-serve is not installed (pip install textual-serve)")
    aiohttp = pytest.importorskip("aiohttp", reason="aiohttp (a textual-serve dependency) is missing")
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([*PILOTKIT, "tui", "--serve", "--port", str(port), "--replay", str(DEMO_LOG),
                                   "--instant"], env=python_env(), stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        url = f"http://localhost:{port}/"

        def page() -> str | None:
            if server.poll() is not None:
                raise AssertionError(f"--serve exited {server.returncode}: {log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return str(response.read().decode())
            except OSError:
                return None

        html = wait_for(page, 30, "textual-serve to answer")
        assert "data-session-websocket-url" in html
        shot = tmp_path / "dashboard.png"
        asyncio.run(screenshot(
            aiohttp, chromium, url, shot, tmp_path / "chromium",
            ready_js="(document.body ? document.body.className : '').includes('-first-byte')", poll=0.2,
            not_ready="the dashboard never sent its first bytes to the page", settle=20,
        ))  # fmt: skip
        assert shot.stat().st_size > 20_000, "the page is the splash, not the dashboard"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        kept = ARTIFACTS / "browser-view.png"
        shutil.copyfile(shot, kept)
        print(f"browser screenshot: {kept}")
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
