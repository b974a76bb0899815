"""Node agents in separate processes, connected over real TCP: the same path a batch
allocation takes, with the local machine standing in for the nodes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import types
from typing import Any

import psutil
import pytest

import pilotkit
from pilotkit.events import NodeLost, TaskStarted
from pilotkit.interfaces import Agent, PilotContext, Provider
from pilotkit.rendezvous import Rendezvous
from pilotkit.states import PilotState
from pilotkit.testing.plugin import RunSpec
from pilotkit.types import Allocation

HEARTBEATS: list[Any] = []
"""The last heartbeat of each node agent of the last run (its load)."""


class ProcessNodesProvider(Provider):
    """N node agents as local processes named node1..nodeN."""

    id = "test-process-nodes"

    async def claim(self, ctx: PilotContext) -> Allocation:
        self.rdv = Rendezvous(ctx, self.spec, host="127.0.0.1")
        await self.rdv.start()
        self.names = [f"node{i + 1}" for i in range(self.spec.spec.resources.nodes)]
        self.procs = {
            name: await asyncio.create_subprocess_exec(*self.rdv.node_agent_argv(name)) for name in self.names
        }
        walltime = self.spec.walltime
        return Allocation(self.id, self.names, walltime_end=time.time() + walltime if walltime else None)

    async def agents(self, allocation: Allocation, ctx: PilotContext) -> list[Agent]:
        self.joined = list(await self.rdv.wait(len(self.names), 30))
        return list(self.joined)

    async def release(self, allocation: Allocation) -> None:
        HEARTBEATS.extend(getattr(agent, "metrics", None) for agent in getattr(self, "joined", []))
        await self.rdv.close()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pilotkit.hookimpl
def pilotkit_register_providers(register: Any) -> None:
    register(ProcessNodesProvider)


@pytest.fixture
def run_nodes(run_spec: RunSpec, pilotkit_plugins: Any) -> RunSpec:
    pilotkit_plugins.register_module("test-process-nodes", types.SimpleNamespace(
        pilotkit_register_providers=pilotkit_register_providers))  # fmt: skip
    return run_spec


SPEC = """name = "multi"
[provider]
type = "test-process-nodes"
[resources]
nodes = 3
[pilot]
heartbeat = "0.3s"
heartbeat_timeout = "1.5s"
grace = "1s"
[[app.groups]]
name = "g"
shell = true
command = "echo {{i}} on $(hostname); sleep {sleep}"
[app.groups.grid]
i = [%s]
"""


async def test_tasks_run_on_every_node(run_nodes: RunSpec) -> None:
    run = await run_nodes(SPEC.replace("{sleep}", "0.2") % ", ".join(map(str, range(12))))
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    assert len(results) == 12 and {r.status for r in results} == {"ok"}
    assert {r.node for r in results} == {"node1", "node2", "node3"}
    beats = HEARTBEATS[-3:]
    assert all(b is not None and len(b.core_percent) == psutil.cpu_count() for b in beats)  # load per CPU


@pytest.mark.parametrize("how", ["heartbeat", "connection"])
async def test_lost_node_requeues_its_tasks(run_nodes: RunSpec, how: str) -> None:
    provider: list[ProcessNodesProvider] = []
    lost_at: list[float] = []

    async def lose_node2() -> None:
        while not provider or "node2" not in provider[0].rdv.server.agents:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        proc = provider[0].procs["node2"]
        os.kill(proc.pid, signal.SIGSTOP if how == "heartbeat" else signal.SIGKILL)
        lost_at.append(time.time())

    import pilotkit.pilot as pilot_mod

    original = pilot_mod.Pilot._run

    async def spy(self: Any, prov: Any, results: Any) -> None:
        provider.append(prov)
        await original(self, prov, results)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pilot_mod.Pilot, "_run", spy)
        killer = asyncio.ensure_future(lose_node2())
        run = await run_nodes(SPEC.replace("{sleep}", "0.5") % ", ".join(map(str, range(24))))
        await killer
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    assert len(results) == 24 and {r.status for r in results} == {"ok"}, "no task is lost"
    lost = [e for e in run.events if isinstance(e, NodeLost)]
    assert [e.node for e in lost] == ["node2"]
    late = [e for e in run.events if isinstance(e, TaskStarted) and e.t > lost[0].t]
    assert late and all(e.node != "node2" for e in late)
    requeued = [r for r in results if r.attempts > 1]
    assert requeued, "the tasks running on node2 ran again elsewhere"
    assert all(r.node != "node2" for r in requeued)


KILL_SPEC = """name = "kill"
[provider]
type = "test-process-nodes"
[resources]
nodes = 2
[pilot]
heartbeat = "0.3s"
heartbeat_timeout = "5s"
grace = "60s"
[[app.groups]]
name = "g"
shell = true
command = "trap '' TERM; echo $$ > {pids}/pid-{i}; exec sleep 120"
[app.groups.grid]
i = [0, 1, 2, 3]
"""


async def test_second_cancel_kills_tasks_on_remote_node_agents(run_nodes: RunSpec, tmp_path: Any) -> None:
    """Tasks that ignore SIGTERM, a grace of 60 s: cancel alone would wait a minute; the
    kill that follows it must reach the node agents (separate processes) and SIGKILL them."""
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    started: list[str] = []
    killed_at: list[float] = []
    stopper: list[asyncio.Future[None]] = []

    def on_pilot(pilot: Any) -> None:
        async def cancel_then_kill() -> None:
            while len(started) < 4 or len(list(pids_dir.iterdir())) < 4:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the shells have set their traps and exec'd sleep
            pilot.cancel("first Ctrl-C")
            await asyncio.sleep(0.5)
            killed_at.append(time.time())
            pilot.kill()

        pilot.bus.subscribe(lambda e: started.append(e.task) if isinstance(e, TaskStarted) else None)
        stopper.append(asyncio.ensure_future(cancel_then_kill()))

    run = await asyncio.wait_for(run_nodes(KILL_SPEC.replace("{pids}", str(pids_dir)), on_pilot=on_pilot), 45)
    await stopper[0]
    assert run.state is PilotState.CANCELLED, run.reason
    assert killed_at and time.time() - killed_at[0] < 20, "the kill did not wait for the 60 s grace"
    results = run.results()
    assert len(results) == 4 and {r.status for r in results} == {"cancelled"}
    assert {r.node for r in results} == {"node1", "node2"}, "both node agents ran (and killed) tasks"
    for pid_file in pids_dir.iterdir():
        pid = int(pid_file.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
