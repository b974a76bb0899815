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


async def test_a_resumed_pool_records_what_ended_while_it_was_away_and_runs_the_rest(tmp_path: Path) -> None:
    """Attempts a node agent kept for a re-attached pilot: one ended (recorded once, not
    run again, even from a node that did not come back), one ran on a node that is gone
    (run again with the next attempt number)."""
    from pilotkit.scheduler import Resume
    from pilotkit.types import CarriedAttempt, TaskExit

    events: list[Event] = []
    pool = await make_pool(tmp_path, events)
    ended = TaskExit(task_id="t0", attempt=1, node="gone", status="ok", exit_code=0, start=1.0, end=2.0)
    pool.resume = Resume(attempts={"t0": 1, "t1": 1}, carried={
        "t0": CarriedAttempt(task_id="t0", attempt=1, node="gone", start=1.0, exit=ended),
        "t1": CarriedAttempt(task_id="t1", attempt=1, node="gone", start=1.0),
    })  # fmt: skip
    pool.add_group("g", [Task(id=f"t{i}", group="g", argv=["true"]) for i in range(3)])
    await pool.wait()
    pool.results.close()
    results = {r.task: r for r in read_results(tmp_path / "results.jsonl")}
    assert len(read_results(tmp_path / "results.jsonl")) == 3
    assert results["t0"].status == "ok" and results["t0"].attempts == 1 and results["t0"].node == "gone"
    assert results["t1"].status == "ok" and results["t1"].attempts == 2
    started = [e.task for e in events if isinstance(e, TaskStarted) and e.task != "t0"]
    assert sorted(started) == ["t1", "t2"]
