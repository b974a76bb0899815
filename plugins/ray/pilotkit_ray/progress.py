"""Turns the summary of Ray's state API (``/api/v0/tasks/summarize``) into
``app-progress`` events (:class:`pilotkit.api.AppProgress`, ``app = "ray"``), and reads
it over HTTP without blocking the event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from pilotkit.api import AppProgress

SUMMARY_PATH = "/api/v0/tasks/summarize"
RUNNING = frozenset({"RUNNING", "RUNNING_IN_RAY_GET", "RUNNING_IN_RAY_WAIT"})
Counts = tuple[str, int, int, int, int, int]
"""kind, total, pending, running, finished, failed"""


def parse_summary(data: Mapping[str, Any]) -> dict[str, Counts]:
    """Per function or class name, from the state API's answer (empty when it has none)."""
    try:
        summary = data["data"]["result"]["result"]["node_id_to_summary"]["cluster"]["summary"]
    except (KeyError, TypeError):
        return {}
    out: dict[str, Counts] = {}
    for name, entry in summary.items():
        states: dict[str, int] = {k: int(v) for k, v in (entry.get("state_counts") or {}).items()}
        total = sum(states.values())
        running = sum(n for state, n in states.items() if state in RUNNING)
        finished = states.get("FINISHED", 0)
        failed = states.get("FAILED", 0)
        out[str(name)] = (
            str(entry.get("type", "")),
            total,
            total - running - finished - failed,
            running,
            finished,
            failed,
        )
    return out


class ProgressTracker:
    """Remembers the last counts per name; yields an event for each name that changed."""

    def __init__(self, pilot: str) -> None:
        self.pilot = pilot
        self.last: dict[str, Counts] = {}

    def changes(self, snapshot: Mapping[str, Counts]) -> list[AppProgress]:
        events = []
        for name in sorted(snapshot):
            counts = snapshot[name]
            if self.last.get(name) == counts:
                continue
            self.last[name] = counts
            kind, total, pending, running, finished, failed = counts
            events.append(
                AppProgress(
                    pilot=self.pilot,
                    app="ray",
                    name=name,
                    kind=kind,
                    total=total,
                    pending=pending,
                    running=running,
                    done=finished,
                    failed=failed,
                )
            )
        return events


async def get_json(host: str, port: int, path: str, timeout: float = 5.0) -> Any:
    """``GET http://host:port/path`` and decode its JSON body (HTTP/1.0: the server closes)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode()
            )
            await writer.drain()
            response = await reader.read()
        finally:
            writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        raise OSError(f"HTTP {b' '.join(status).decode() or '?'} from {host}:{port}{path}")
    return json.loads(body)
