"""Placement rules of the task pool, with real processes on two in-process agents."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pilotkit.agent import LocalAgent
from pilotkit.events import Event, TaskFinished, TaskStarted
from pilotkit.results import ResultsWriter, read_results
from pilotkit.scheduler import Task, TaskPool
from pilotkit.types import GpuInfo, NodeInfo


async def make_pool(tmp_path: Path, events: list[Event], cores: int = 2, gpus: int = 0) -> TaskPool:
    agents = []
    for name in ("a", "b"):
        node = NodeInfo(
            name=name,
            cores=cores,
            memory=2**30,
            gpus=[GpuInfo(index=i, uuid=f"GPU-{name}{i}") for i in range(gpus)],
        )
        agent = LocalAgent(node)
        await agent.start()
        agents.append(agent)
    return TaskPool(
        "p", agents, tmp_path, events.append, ResultsWriter(tmp_path / "results.jsonl"), grace=1.0
    )


async def test_pinned_tasks_run_on_their_node(tmp_path: Path) -> None:
    events: list[Event] = []
    pool = await make_pool(tmp_path, events)
    pool.add_group("g", [Task(id=f"t{i}", group="g", argv=["true"], pin="b") for i in range(4)])
    await pool.wait()
    assert {e.node for e in events if isinstance(e, TaskStarted)} == {"b"}


async def test_gang_task_waits_for_whole_nodes_and_holds_them(tmp_path: Path) -> None:
    events: list[Event] = []
    pool = await make_pool(tmp_path, events)
    pool.add_group("small", [Task(id="s0", group="small", argv=["sleep", "0.3"])])
    pool.add_group(
        "gang",
        [Task(id="m0", group="gang", argv=["sh", "-c", "echo $PILOTKIT_NODES; sleep 0.3"], whole_nodes=2)],
    )
    pool.add_group("after", [Task(id="s1", group="after", argv=["true"])])
    await pool.wait()
    order = [
        (type(e).__name__, getattr(e, "task", None))
        for e in events
        if isinstance(e, TaskStarted | TaskFinished)
    ]
    # The gang cannot start while s0 holds a core of node a; s1 backfills on b meanwhile,
    # then the gang starts once both nodes are idle and nothing overlaps it.
    assert order.index(("TaskStarted", "m0")) > order.index(("TaskFinished", "s0"))
    gang_start, gang_end = order.index(("TaskStarted", "m0")), order.index(("TaskFinished", "m0"))
    assert all(name == "m0" for _, name in order[gang_start : gang_end + 1])
    out = (tmp_path / "tasks" / "m0" / "attempt-1.out").read_text().strip()
    assert sorted(out.split(",")) == ["a", "b"]


async def test_terminated_service_is_stopped_not_failed(tmp_path: Path) -> None:
    events: list[Event] = []
    pool = await make_pool(tmp_path, events)
    pool.add_group("svc", [Task(id="svc", group="svc", argv=["sleep", "60"], cores=0)])
    while not any(isinstance(e, TaskStarted) for e in events):
        await asyncio.sleep(0.01)
    pool.terminate("svc", grace=1.0)
    await pool.wait()
    (result,) = read_results(tmp_path / "results.jsonl")
    assert result.status == "stopped" and pool.failed == 0
