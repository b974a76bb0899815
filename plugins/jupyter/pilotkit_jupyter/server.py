"""The Jupyter server as a pilot task pinned to the first node: start it, learn its port
from the file it writes once it listens, watch it, stop it."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pilotkit.api import AppContext, PilotkitError, Task, TaskStatus, task_dir, task_exit_report

from .commands import SERVER_TASK, SERVICE_GROUP

ACTIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)
POLL = 0.05


class JupyterServer:
    """One ``jupyter lab``/``jupyter server`` process of a pilot."""

    def __init__(self, ctx: AppContext, argv: list[str], env: dict[str, str], node: str, runtime_dir: Path):
        self.ctx = ctx
        self.argv = argv
        self.env = env
        self.node = node
        self.runtime_dir = runtime_dir

    @property
    def task(self) -> Task | None:
        return self.ctx.pool.tasks.get(SERVER_TASK)

    def running(self) -> bool:
        task = self.task
        return task is not None and task.status in ACTIVE

    async def start(self, timeout: float) -> dict[str, Any]:
        """Start the server; return its ``jpserver-PID.json`` once it listens."""
        await asyncio.to_thread(shutil.rmtree, self.runtime_dir, True)
        await asyncio.to_thread(self.runtime_dir.mkdir, 0o700, True, True)
        task = Task(id=SERVER_TASK, group=SERVICE_GROUP, argv=self.argv, cores=0, pin=self.node, env=self.env)
        self.ctx.pool.add_group(SERVICE_GROUP, [task])
        deadline = time.monotonic() + timeout
        while True:
            info = await asyncio.to_thread(_server_info, self.runtime_dir)
            if info is not None:
                return info
            if not self.running():
                raise PilotkitError(
                    f"the Jupyter server stopped before it listened ({await self.exit_report()})"
                )
            if time.monotonic() > deadline:
                raise PilotkitError(
                    f"the Jupyter server did not listen within {timeout:g}s; "
                    f"see {task_dir(self.ctx.pilot.workdir, SERVER_TASK)}"
                )
            await asyncio.sleep(POLL)

    async def exit_report(self) -> str:
        """How the server's task ended, with the tail of its stderr."""
        task = self.task
        if task is None:
            return "never started"
        return await task_exit_report(self.ctx.pilot.workdir, task)

    async def until_stopped(self) -> None:
        """Until the server's task has ended."""
        while self.running():
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """SIGTERM (the server shuts its kernels down), SIGKILL after the pool's grace."""
        if self.task is None:
            return
        self.ctx.pool.terminate(SERVER_TASK)
        deadline = time.monotonic() + self.ctx.pool.grace + 5.0
        while self.running() and time.monotonic() < deadline:
            await asyncio.sleep(POLL)


def _server_info(runtime_dir: Path) -> dict[str, Any] | None:
    for path in sorted(runtime_dir.glob("jpserver-*.json")):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue  # being written
        if isinstance(data, dict) and isinstance(data.get("port"), int) and data["port"] > 0:
            return data
    return None
