"""A real node agent process whose pilot goes away: it keeps its tasks and their results
(journaled) and rejoins a pilot that comes back with the same token; a pilot that
declared it lost refuses it, and it stops its tasks (fenced)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pilotkit.journal import Journal, read_journal
from pilotkit.remote import AgentServer, RemoteAgent
from pilotkit.types import TaskExit, TaskLaunch
from pilotkit.vocab import PILOT_ADDRESS_FILE, PILOT_TOKEN_FILE, journal_file


def _launch(tmp_path: Path, task: str, seconds: float) -> TaskLaunch:
    tdir = tmp_path / "tasks" / task
    return TaskLaunch(task_id=task, attempt=1, argv=["sleep", str(seconds)], cwd=str(tdir),
                      stdout=str(tdir / "attempt-1.out"), stderr=str(tdir / "attempt-1.err"))  # fmt: skip


async def _serve(tmp_path: Path, token: str | None = None, port: int = 0) -> AgentServer:
    server = AgentServer("p1", host="127.0.0.1", port=port, heartbeat=0.3, heartbeat_timeout=3.0, token=token,
                         linger=30.0)  # fmt: skip
    await server.start()
    (tmp_path / PILOT_TOKEN_FILE).write_text(server.token + "\n")
    (tmp_path / PILOT_ADDRESS_FILE).write_text(server.address + "\n")
    return server


async def _agent(tmp_path: Path, server: AgentServer) -> tuple[asyncio.subprocess.Process, RemoteAgent]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pilotkit.cli.main", "agent", "--connect", server.address,
        "--token-file", str(tmp_path / PILOT_TOKEN_FILE), "--pilot", "p1", "--node-name", "n1",
    )  # fmt: skip
    (agent,) = await server.wait_for(1, 30)
    await agent.start()
    return proc, agent


def _gone(agent: RemoteAgent) -> None:
    """The pilot's process ends: its end of the connection closes."""
    agent._close("the pilot's process ended")


async def test_an_agent_keeps_its_tasks_and_results_for_a_pilot_that_comes_back(tmp_path: Path) -> None:
    first = await _serve(tmp_path)
    proc, agent = await _agent(tmp_path, first)
    agent.launch(_launch(tmp_path, "short", 0.5), lambda result: None)
    agent.launch(_launch(tmp_path, "long", 3.0), lambda result: None)
    await asyncio.sleep(0.3)
    await first.close()
    _gone(agent)
    await asyncio.sleep(1.5)  # "short" ends while no pilot listens
    assert proc.returncode is None, "the agent waits for its pilot"

    second = await _serve(tmp_path, token=first.token)  # the same token, any port
    (again,) = await second.wait_for(1, 30)
    carried = {c.task_id: c for c in again.carried()}
    assert set(carried) == {"short", "long"}
    short, long = carried["short"], carried["long"]
    assert short.exit is not None and short.exit.status == "ok", "its result was kept"
    assert long.exit is None, "it still runs"
    ended: list[TaskExit] = []
    again.adopt("long", 1, ended.append)
    await again.start()
    for _ in range(100):
        if ended:
            break
        await asyncio.sleep(0.1)
    assert [(r.task_id, r.status) for r in ended] == [("long", "ok")]
    entries = read_journal(journal_file(tmp_path, "n1"))
    assert [(e.seq, e.result.task_id) for e in entries] == [(1, "short"), (2, "long")]
    await again.stop(1.0)
    await second.close()
    assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_a_pilot_that_declared_the_node_lost_refuses_it_and_its_tasks_stop(tmp_path: Path) -> None:
    server = await _serve(tmp_path)
    proc, agent = await _agent(tmp_path, server)
    agent.launch(_launch(tmp_path, "long", 30.0), lambda result: None)
    await asyncio.sleep(0.3)
    _gone(agent)  # the pilot lives on and runs the node's tasks elsewhere
    assert await asyncio.wait_for(proc.wait(), 15) == 1, "fenced: the agent stops"
    (entry,) = read_journal(journal_file(tmp_path, "n1"))
    assert entry.result.task_id == "long" and entry.result.status == "killed"
    await server.close()


async def test_a_torn_last_journal_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "n1.jsonl"
    journal = Journal(path)
    await journal.append([(1, TaskExit(task_id="a", attempt=1, node="n1", status="ok"))])
    journal.close()
    with open(path, "ab") as f:
        f.write(b'{"seq":2,"result":{"task_id":"b","att')  # the agent died mid-write
    assert [e.result.task_id for e in read_journal(path)] == ["a"]


async def test_an_agent_back_after_the_pilot_stopped_waiting_is_refused(tmp_path: Path) -> None:
    """The pilot came back and went on without this agent (stopped while the pilot
    waited): its tasks ran elsewhere, so when it gets through it is refused and stops."""
    import os
    import signal

    first = await _serve(tmp_path)
    proc, agent = await _agent(tmp_path, first)
    agent.launch(_launch(tmp_path, "long", 30.0), lambda result: None)
    await asyncio.sleep(0.3)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGSTOP)  # away while the pilot comes back
    await first.close()
    _gone(agent)
    second = await _serve(tmp_path, token=first.token)
    try:
        await second.wait_for(1, 1.0)
        raise AssertionError("the stopped agent cannot have rejoined")
    except TimeoutError:
        second.stop_waiting()  # the pilot goes on with the agents that came back
    os.kill(proc.pid, signal.SIGCONT)
    assert await asyncio.wait_for(proc.wait(), 20) == 1, "fenced: the agent stops"
    (entry,) = read_journal(journal_file(tmp_path, "n1"))
    assert entry.result.task_id == "long" and entry.result.status == "killed"
    await second.close()
