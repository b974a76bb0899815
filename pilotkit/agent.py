"""The node agent: runs task attempts on one node.

:class:`LocalAgent` runs in the pilot's own process (the local provider); a batch
allocation runs one per node (``pilotkit agent``) behind a transport, with the same
interface.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import msgspec

from . import logtimes
from .interfaces import Agent, ExitCallback
from .spawn import ProcessRunner
from .types import NodeInfo, TaskExit, TaskLaunch


class _Running:
    __slots__ = ("launch", "on_exit", "pid", "start", "status", "timer")

    def __init__(self, launch: TaskLaunch, on_exit: ExitCallback, pid: int, start: float) -> None:
        self.launch = launch
        self.on_exit = on_exit
        self.pid = pid
        self.start = start
        self.timer: asyncio.TimerHandle | None = None
        self.status: str | None = None
        """Set when the pilot stopped it: ``timeout`` or ``killed``."""


class LocalAgent(Agent):
    """Runs tasks as child processes of this process."""

    def __init__(self, node: NodeInfo, env: dict[str, str] | None = None) -> None:
        self.node = node
        self._env = dict(os.environ if env is None else env)
        self._env_given = env is not None
        self._runner: ProcessRunner | None = None
        self._running: dict[str, _Running] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._sizes: dict[str, int] = {}
        """Output files looked at (:mod:`pilotkit.logtimes`): their size at the last look."""
        self._ended_outputs: list[str] = []
        """Output files of attempts that ended since the last look (looked at once more)."""
        self._sample_timer: asyncio.TimerHandle | None = None
        self._sampling = False

    async def start(self) -> NodeInfo:
        self._runner = ProcessRunner(asyncio.get_running_loop())
        self.node = msgspec.structs.replace(self.node, containment=self._runner.containment)
        return self.node

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def busy_cores(self) -> int:
        """The cores the attempts that run now asked for."""
        return sum(e.launch.cores for e in self._running.values())

    def attempts(self) -> list[tuple[str, int, float]]:
        """(task id, attempt, start) of each attempt that runs now."""
        return [(e.launch.task_id, e.launch.attempt, e.start) for e in self._running.values()]

    def launch(self, launch: TaskLaunch, on_exit: ExitCallback) -> None:
        runner = self._runner
        assert runner is not None, "agent not started"
        env: dict[str, str] | None = None  # inherit (with the task's mark added)
        if launch.env or launch.gpus or self._env_given:
            env = dict(self._env)
            env.update(launch.env)
            if launch.gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(launch.gpus)
        start = time.time()
        try:
            if not os.path.isdir(launch.cwd):  # a stat: the pool made most of them ahead of time
                os.makedirs(launch.cwd, exist_ok=True)
            pid = runner.spawn(
                launch.argv,
                cwd=launch.cwd,
                env=env,
                stdout=launch.stdout,
                stderr=launch.stderr,
                record=launch.pid_file,
                on_exit=lambda pid, status: self._exited(launch.task_id, status),
            )
        except OSError as exc:
            message = f"cannot start {launch.argv[0]!r}: {exc.strerror or exc}"
            result = TaskExit(
                task_id=launch.task_id,
                attempt=launch.attempt,
                node=self.node.name,
                status="spawn-error",
                exit_code=127,
                start=start,
                end=time.time(),
                message=message,
            )
            runner.loop.call_soon(on_exit, result)
            return
        entry = _Running(launch, on_exit, pid, start)
        self._running[launch.task_id] = entry
        self._idle.clear()
        if self._sample_timer is None:
            self._sample_timer = runner.loop.call_later(logtimes.SAMPLE_EVERY, self._sample)
        if launch.time_limit is not None:
            entry.timer = runner.loop.call_later(launch.time_limit, self._timeout, launch.task_id)

    def _timeout(self, task_id: str) -> None:
        entry = self._running.get(task_id)
        if entry is not None and entry.status is None:
            entry.status = "timeout"
            self._stop(entry, grace=5.0)

    def terminate(self, task_id: str, grace: float) -> None:
        entry = self._running.get(task_id)
        if entry is not None:
            entry.status = entry.status or "killed"
            self._stop(entry, grace)

    def signal(self, task_id: str, sig: int) -> bool:
        entry = self._running.get(task_id)
        if entry is None or entry.status is not None or self._runner is None:
            return False
        self._runner.signal(entry.pid, sig)
        return True

    def _stop(self, entry: _Running, grace: float) -> None:
        runner = self._runner
        assert runner is not None
        runner.signal(entry.pid, signal.SIGTERM)
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = runner.loop.call_later(grace, runner.signal, entry.pid, signal.SIGKILL)

    def kill_all(self) -> None:
        """SIGKILL everything now (a second Ctrl-C)."""
        runner = self._runner
        if runner is None:
            return
        for entry in self._running.values():
            entry.status = entry.status or "killed"
            runner.signal(entry.pid, signal.SIGKILL)

    def _exited(self, task_id: str, status: int) -> None:
        entry = self._running.pop(task_id)
        if entry.timer is not None:
            entry.timer.cancel()
        code = os.waitstatus_to_exitcode(status)
        sig = -code if code < 0 else None
        if entry.status is not None:
            outcome = entry.status
        else:
            outcome = "ok" if code == 0 else "failed"
        result = TaskExit(
            task_id=task_id,
            attempt=entry.launch.attempt,
            node=self.node.name,
            status=outcome,
            exit_code=code if code >= 0 else None,
            signal=sig,
            start=entry.start,
            end=time.time(),
        )
        if not self._running:
            self._idle.set()
        self._ended_outputs.extend(_outputs(entry.launch))
        entry.on_exit(result)

    def _sample(self) -> None:
        """Look at the output files in a worker thread (their write times, see
        :mod:`pilotkit.logtimes`); again in a moment while attempts run or just ended."""
        runner = self._runner
        self._sample_timer = None
        if runner is None or (not self._running and not self._ended_outputs):
            return
        if not self._sampling:
            ended, self._ended_outputs = self._ended_outputs, []
            files = [name for e in self._running.values() for name in _outputs(e.launch)] + ended
            known = {name: self._sizes[name] for name in files if name in self._sizes}
            self._sampling = True
            future = runner.loop.run_in_executor(None, logtimes.sample, files, known)
            future.add_done_callback(lambda f: self._sampled(f, ended))
        self._sample_timer = runner.loop.call_later(logtimes.SAMPLE_EVERY, self._sample)

    def _sampled(self, future: asyncio.Future[dict[str, int]], ended: list[str]) -> None:
        self._sampling = False
        if future.cancelled() or future.exception() is not None:
            return
        self._sizes.update(future.result())
        for name in ended:  # their last look
            self._sizes.pop(name, None)

    async def stop(self, grace: float) -> None:
        for task_id in list(self._running):
            self.terminate(task_id, grace)
        if self._running:
            try:
                await asyncio.wait_for(self._idle.wait(), grace + 10.0)
            except TimeoutError:
                self.kill_all()
        if self._sample_timer is not None:
            self._sample_timer.cancel()
            self._sample_timer = None
        if self._ended_outputs and self._runner is not None:  # their last look
            ended, self._ended_outputs = self._ended_outputs, []
            await asyncio.to_thread(logtimes.sample, ended, {n: self._sizes.pop(n) for n in ended if n in self._sizes})
        if self._runner is not None:
            await self._runner.wait_orphans()
            self._runner.close()


def _outputs(launch: TaskLaunch) -> list[str]:
    return [launch.stdout] if launch.stderr == launch.stdout else [launch.stdout, launch.stderr]
