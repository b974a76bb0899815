"""The daemon's log stream carries the time each line of a task's output was written."""

from __future__ import annotations

import time
from pathlib import Path

from pilotkit.client import connect

from .conftest import DaemonProcess, write_spec

SPEC = """
name = "stamped"
[resources]
cores = 1
[[app.groups]]
name = "t"
shell = true
commands = ["echo one; sleep 1.5; echo two"]
"""


async def test_log_lines_carry_their_write_time_not_the_read_time(daemon: DaemonProcess, tmp_path: Path) -> None:
    pilot = daemon.submit(write_spec(tmp_path, SPEC))
    daemon.wait_state(pilot, {"done"})
    time.sleep(1.2)  # the agent's last look at the ended attempt
    async with connect(socket=str(daemon.socket)) as client:
        items = [item async for item in client.log_items(pilot, "t-0", tail=-1)]
    assert "".join(i.data for i in items) == "one\ntwo\n"
    times = [t for i in items for t in (i.times or [])]
    assert len(times) == 2 and None not in times
    one, two = times
    assert one is not None and two is not None
    assert 1.2 <= two - one <= 3.0 and time.time() - two > 1.0
    lines = daemon.cli("logs", pilot, "t-0", "--tail", "-1", "--timestamps").stdout.splitlines()
    assert [line[13:] for line in lines] == ["one", "two"]
    assert lines[1][:12] == time.strftime("%H:%M:%S", time.localtime(two)) + f".{int(two % 1 * 1000):03d}"
