"""Standing leases with a real node agent process: the queued tasks a pilot reserves for
an agent start there only once no pilot is attached; a revoked one never starts there,
and the pilot places it elsewhere only after the agent said it dropped it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from pilotkit.journal import read_journal
from pilotkit.remote import AgentServer
from pilotkit.results import ResultsWriter, read_results
from pilotkit.scheduler import Task, TaskPool
from pilotkit.types import TaskExit, TaskLaunch
from pilotkit.vocab import PILOT_ADDRESS_FILE, PILOT_TOKEN_FILE, journal_file


def _launch(tmp_path: Path, task: str, seconds: float) -> TaskLaunch:
    tdir = tmp_path / "tasks" / task
    tdir.mkdir(parents=True, exist_ok=True)
    return TaskLaunch(task_id=task, attempt=1, argv=["sh", "-c", f"echo ran; sleep {seconds}"], cwd=str(tdir),
                      stdout=str(tdir / "attempt-1.out"), stderr=str(tdir / "attempt-1.err"))  # fmt: skip


def _ran(tmp_path: Path, task: str) -> bool:
    out = tmp_path / "tasks" / task / "attempt-1.out"
    return out.exists() and out.read_text().strip() == "ran"


async def _serve(tmp_path: Path, token: str | None = None, linger: float = 30.0) -> AgentServer:
    server = AgentServer("p1", host="127.0.0.1", heartbeat=0.3, heartbeat_timeout=3.0, token=token, linger=linger)
    await server.start()
    (tmp_path / PILOT_TOKEN_FILE).write_text(server.token + "\n")
    (tmp_path / PILOT_ADDRESS_FILE).write_text(server.address + "\n")
    return server


async def _agents(tmp_path: Path, server: AgentServer, names: list[str]) -> list[asyncio.subprocess.Process]:
    procs = []
    for name in names:
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pilotkit.cli.main", "agent", "--connect", server.address,
            "--token-file", str(tmp_path / PILOT_TOKEN_FILE), "--pilot", "p1", "--node-name", name,
        ))  # fmt: skip
    for agent in await server.wait_for(len(names), 30):
        await agent.start()
    return procs


async def _until(check: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_leased_tasks_start_only_once_the_pilot_is_gone_and_a_revoked_one_never(tmp_path: Path) -> None:
    first = await _serve(tmp_path)
    (proc,) = await _agents(tmp_path, first, ["n1"])
    agent = first.agents["n1"]
    assert agent.leasing, "an agent that outlives its pilot keeps a lease"
    back: list[list[str]] = []
    assert agent.lease([_launch(tmp_path, t, 0.5) for t in ("a", "b", "c")], back.append)
    await asyncio.sleep(1.0)
    assert not any(_ran(tmp_path, t) for t in "abc"), "nothing leased starts while the pilot is attached"
    agent.revoke(["a", "zz"])  # one it never had
    await _until(lambda: back)
    assert back == [["a"]], "the agent says which it dropped"
    ended: list[TaskExit] = []
    agent.launch(_launch(tmp_path, "b", 0.5), ended.append)  # the pilot starts a leased one there
    await _until(lambda: ended)
    assert ended[0].status == "ok"

    await first.close()
    agent._close("the pilot's process was killed")  # no hand-over: only the lease is left
    await _until(lambda: _ran(tmp_path, "c"))
    second = await _serve(tmp_path, token=first.token)
    (again,) = await second.wait_for(1, 30)
    carried = {c.task_id for c in again.carried()}
    assert carried <= {"b", "c"} and "c" in carried, carried  # b: if its result was not acknowledged yet
    await again.start()
    await again.stop(1.0)
    await second.close()
    assert await asyncio.wait_for(proc.wait(), 15) == 0
    assert not _ran(tmp_path, "a"), "the revoked task never ran on the agent"
    assert [e.result.task_id for e in read_journal(journal_file(tmp_path, "n1"))] == ["b", "c"]


async def test_a_fenced_agent_starts_none_of_its_leased_tasks(tmp_path: Path) -> None:
    """The connection closes while the pilot lives (it declared the node lost and places
    the node's leased tasks elsewhere): the agent's first try to rejoin is refused, and
    it stops without starting any of them."""
    server = await _serve(tmp_path)
    (proc,) = await _agents(tmp_path, server, ["n1"])
    agent = server.agents["n1"]
    back: list[list[str]] = []
    assert agent.lease([_launch(tmp_path, t, 5.0) for t in ("a", "b")], back.append)
    await asyncio.sleep(0.3)
    agent._declare_lost("test: declared lost")
    assert [sorted(b) for b in back] == [["a", "b"]], "a lost agent's leased tasks are the pilot's again"
    agent._close("lost")
    assert await asyncio.wait_for(proc.wait(), 15) == 1, "fenced: the agent stops"
    assert not _ran(tmp_path, "a") and not _ran(tmp_path, "b")
    await server.close()


async def _pool(tmp_path: Path, names: list[str]) -> tuple[TaskPool, AgentServer, list[asyncio.subprocess.Process]]:
    server = await _serve(tmp_path)
    procs = await _agents(tmp_path, server, names)
    pool = TaskPool("p1", list(server.agents.values()), tmp_path, lambda event: None,
                    ResultsWriter(tmp_path / "results.jsonl"), grace=1.0)  # fmt: skip
    return pool, server, procs


async def _end(pool: TaskPool, server: AgentServer, procs: list[asyncio.subprocess.Process]) -> None:
    for node in pool.nodes:
        await node.agent.stop(1.0)
    await server.close()
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_cancel_while_tasks_are_leased_runs_none_of_them(tmp_path: Path) -> None:
    pool, server, procs = await _pool(tmp_path, ["n1", "n2"])
    try:
        cores = sum(n.info.cores for n in pool.nodes)
        total = 3 * cores
        pool.add_group("g", [Task(id=f"t{i:02d}", group="g", argv=["sh", "-c", "echo ran; sleep 1"])
                             for i in range(total)])  # fmt: skip
        leased = {t for n in pool.nodes for t in n.leased}
        assert len(leased) == cores, "each agent holds a lease of its cores"
        await asyncio.sleep(0.3)
        pool.cancel()
        await asyncio.wait_for(pool.wait(), 20)
        results = {r.task: r for r in read_results(tmp_path / "results.jsonl")}
        assert len(results) == total
        for task in leased:
            assert results[task].status == "cancelled" and not _ran(tmp_path, task)
    finally:
        await _end(pool, server, procs)


async def test_an_idle_node_takes_another_agents_leased_tasks_back(tmp_path: Path) -> None:
    pool, server, procs = await _pool(tmp_path, ["n1", "n2"])
    try:
        n1, n2 = pool.nodes
        # n1 gets the long tasks of the first wave; n2 ends its short ones and its own
        # lease soon, then asks n1's agent for n1's leased tasks instead of idling.
        count = 2 * (n1.info.cores + n2.info.cores)
        tasks = [Task(id=f"t{i:02d}", group="g", argv=["sh", "-c", f"echo ran; sleep {3 if i < n1.info.cores else 0.2}"])
                 for i in range(count)]  # fmt: skip
        pool.add_group("g", tasks)
        leased_to_n1 = set(n1.leased)
        assert leased_to_n1
        await asyncio.wait_for(pool.wait(), 60)
        results = {r.task: r for r in read_results(tmp_path / "results.jsonl")}
        assert {r.status for r in results.values()} == {"ok"} and len(results) == count
        assert {results[t].node for t in leased_to_n1} == {n2.name}, "n2 took them while n1 was busy"
        ran = [p.parent.name for p in (tmp_path / "tasks").glob("*/attempt-*.out") if p.read_text().strip()]
        assert sorted(ran) == sorted(results), "each ran once"
    finally:
        await _end(pool, server, procs)


async def test_a_lost_agent_gives_its_lease_back_without_using_a_retry(tmp_path: Path) -> None:
    pool, server, procs = await _pool(tmp_path, ["n1", "n2"])
    try:
        n1, n2 = pool.nodes
        count = 2 * (n1.info.cores + n2.info.cores)
        pool.add_group("g", [Task(id=f"t{i:02d}", group="g", argv=["sh", "-c", "echo ran; sleep 1"], retries=0)
                             for i in range(count)])  # fmt: skip
        had = set(n1.leased)
        assert had
        victim = procs[["n1", "n2"].index(n1.name)]
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)  # its running tasks are lost; its lease comes back
        await asyncio.wait_for(pool.wait(), 60)
        results = {r.task: r for r in read_results(tmp_path / "results.jsonl")}
        assert {r.status for r in results.values()} == {"ok"} and len(results) == count, results
        for task in had:
            assert results[task].attempts == 1 and results[task].node == n2.name, "a lease given back is no attempt"
    finally:
        await _end(pool, server, procs)
