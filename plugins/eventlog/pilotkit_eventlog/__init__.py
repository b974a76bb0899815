"""Record pilot events to a JSON-lines file (``PILOTKIT_EVENTLOG``) and summarise one."""

from __future__ import annotations

import collections
import json
import os
from typing import IO, Any

import click

from pilotkit.api import Event, hookimpl
from pilotkit.api import encode_event as encode

ENV = "PILOTKIT_EVENTLOG"


class Recorder:
    """Appends events to the file named by ``PILOTKIT_EVENTLOG`` (opened on first event)."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._path: str | None = None

    def record(self, event: Event) -> None:
        path = os.environ.get(ENV)
        if not path:
            return
        if self._file is None or path != self._path:
            if self._file is not None:
                self._file.close()
            self._file = open(path, "ab")
            self._path = path
        self._file.write(encode(event) + b"\n")
        if event.__struct_config__.tag in ("pilot-state", "group-added"):
            self._file.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()


_recorder = Recorder()


@hookimpl
def pilotkit_event(event: Event) -> None:
    _recorder.record(event)
    if event.__struct_config__.tag == "pilot-state" and getattr(event, "state", "") in (
        "done",
        "failed",
        "cancelled",
        "walltime-expired",
    ):
        _recorder.flush()


def summarise(lines: list[bytes]) -> dict[str, Any]:
    by_type: collections.Counter[str] = collections.Counter()
    pilots: dict[str, dict[str, Any]] = {}
    for line in lines:
        if not line.strip():
            continue
        data = json.loads(line)
        by_type[data["type"]] += 1
        pilot = pilots.setdefault(data["pilot"], {"state": None, "tasks_ok": 0, "tasks_failed": 0})
        if data["type"] == "pilot-state":
            pilot["state"] = data["state"]
        elif data["type"] == "task-finished" and data.get("final", True):
            pilot["tasks_ok" if data["status"] == "ok" else "tasks_failed"] += 1
    return {"events": dict(by_type), "pilots": pilots}


@click.command("eventlog")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eventlog_command(path: str, as_json: bool) -> None:
    """Summarise a recorded event log (see PILOTKIT_EVENTLOG)."""
    with open(path, "rb") as f:
        summary = summarise(f.readlines())
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for kind, count in sorted(summary["events"].items()):
        click.echo(f"{kind:16} {count}")
    for pilot, info in summary["pilots"].items():
        click.echo(f"{pilot}: {info['state']}, {info['tasks_ok']} ok, {info['tasks_failed']} failed")


@hookimpl
def pilotkit_add_commands(cli: click.Group) -> None:
    cli.add_command(eventlog_command)
