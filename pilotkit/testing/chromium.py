"""Headless Chromium for tests of web pages (a dashboard, a notebook server): load a URL,
wait until the page says it is ready and its picture is still, keep a PNG of it.

Chromium is driven over its DevTools protocol with aiohttp (passed in, so that importing
this module needs neither)."""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) on PATH; None when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


async def screenshot(
    aiohttp: Any,
    browser: str,
    url: str,
    out: Path,
    profile: Path,
    *,
    ready_js: str,
    ready_timeout: float = 30.0,
    poll: float = 0.3,
    not_ready: str | None = None,
    settle: float = 15.0,
) -> str:
    """Load ``url`` in headless Chromium (``browser``; its profile in ``profile``, removed
    after), wait until the JavaScript ``ready_js`` is true (an ``AssertionError``, saying
    ``not_ready``, after ``ready_timeout`` seconds) and the picture is still (two the same
    in a row, at most ``settle`` seconds), save it as a PNG in ``out``; returns the page's
    title."""
    proc = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1400,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = await asyncio.to_thread(proc.stderr.readline)
            if not line and proc.poll() is not None:
                raise AssertionError(f"chromium exited {proc.returncode}")
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = int(match.group(1)) if match else None
        assert port is not None, "chromium did not open its DevTools port"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            target = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                calls = 0

                async def call(method: str, **params: Any) -> dict[str, Any]:
                    nonlocal calls
                    calls += 1
                    await ws.send_json({"id": calls, "method": method, "params": params})
                    while True:
                        message = await ws.receive_json(timeout=30)
                        if message.get("id") == calls:
                            assert "error" not in message, message
                            return dict(message.get("result", {}))

                async def evaluate(expression: str) -> Any:
                    result = await call("Runtime.evaluate", expression=expression, returnByValue=True)
                    return result.get("result", {}).get("value")

                await call("Page.enable")
                await call("Page.navigate", url=url)
                deadline = time.monotonic() + ready_timeout
                while not await evaluate(ready_js):
                    assert time.monotonic() < deadline, not_ready or f"the page never became ready ({ready_js})"
                    await asyncio.sleep(poll)
                previous = b""
                deadline = time.monotonic() + settle
                while True:  # until two pictures in a row are the same: it has drawn
                    picture = base64.b64decode((await call("Page.captureScreenshot", format="png"))["data"])
                    if picture == previous or time.monotonic() > deadline:
                        break
                    previous = picture
                    await asyncio.sleep(0.5)
                out.write_bytes(picture)
                return str(await evaluate("document.title"))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
