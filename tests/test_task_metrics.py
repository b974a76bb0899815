"""Metrics a task reports (``PILOTKIT_METRICS``) and the environment every task gets,
with real task processes: the local pilot, node agents in their own processes, and the
real Slurm test cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotkit.events import TaskFinished
from pilotkit.states import PilotState
from pilotkit.taskmetrics import Tail, parse
from pilotkit.testing.plugin import RunSpec

from .test_container_scan import busybox_image  # noqa: F401 - a fixture
from .test_remote_agents import run_nodes  # noqa: F401 - a fixture

REPORTER = """\
import json, os, sys
x = float(sys.argv[1])
with open("env.json", "w") as f:
    json.dump({k: v for k, v in os.environ.items() if k.startswith(("PILOTKIT_", "OMP_"))}, f)
with open(os.environ["PILOTKIT_METRICS"], "a") as f:
    f.write(json.dumps({"step": 0, "loss": 10 * x}) + "\\n")
    f.write("not json at all\\n")
    f.write(json.dumps({"loss": x * x, "acc": 0.5}) + "\\n")
    f.write(json.dumps({"step": 1, "loss": 5 * x}) + "\\n")
    f.write("[1, 2]\\n")
"""


def spec(script: Path, extra: str = "") -> str:
    return (
        f'name = "m"\n{extra}[[app.groups]]\nname = "g"\ncores = 2\n'
        f'command = "python3 {script} {{x}}"\n[app.groups.grid]\nx = [1.5, 2]\n'
        '[[app.groups]]\nname = "plain"\ncommands = ["true"]\n'
    )


def check(run, script: Path, omp: str) -> None:  # type: ignore[no-untyped-def]
    assert run.state is PilotState.DONE, run.reason
    by_task = {r.task: r for r in run.results()}
    assert by_task["g-0"].metrics == {"loss": 2.25, "acc": 0.5}
    assert by_task["g-1"].metrics == {"loss": 4, "acc": 0.5}
    assert by_task["plain-0"].metrics is None
    env = json.loads((run.workdir / "tasks" / "g-1" / "env.json").read_text())
    assert env["PILOTKIT_TASK_ID"] == "g-1" and env["PILOTKIT_ATTEMPT"] == "1"
    assert json.loads(env["PILOTKIT_TRIAL_PARAMS"]) == {"x": 2}
    assert env["PILOTKIT_METRICS"] == str(run.workdir / "tasks" / "g-1" / "attempt-1.metrics.jsonl")
    assert env["OMP_NUM_THREADS"] == omp
    err = Path(by_task["g-1"].stderr).read_text().splitlines()
    assert err == [
        "pilotkit: attempt-1.metrics.jsonl: skipped 2 line(s) that are not JSON objects, "
        "the first: 'not json at all'"
    ]
    lines = [json.loads(line) for line in (run.workdir / "results.jsonl").read_text().splitlines()]
    assert {line["task"]: line["metrics"] for line in lines}["g-0"] == {"loss": 2.25, "acc": 0.5}


async def test_local_tasks_report_metrics_and_get_their_environment(run_spec: RunSpec, tmp_path: Path) -> None:
    script = tmp_path / "report.py"
    script.write_text(REPORTER)
    check(await run_spec(spec(script)), script, omp="2")


async def test_the_spec_s_omp_num_threads_wins(run_spec: RunSpec, tmp_path: Path) -> None:
    script = tmp_path / "report.py"
    script.write_text(REPORTER)
    check(await run_spec(spec(script, 'env = { OMP_NUM_THREADS = "7" }\n')), script, omp="7")


async def test_tasks_on_node_agents_report_metrics(run_nodes: RunSpec, tmp_path: Path) -> None:  # noqa: F811
    script = tmp_path / "report.py"
    script.write_text(REPORTER)
    text = spec(script, '[provider]\ntype = "test-process-nodes"\n[resources]\nnodes = 2\n')
    run = await run_nodes(text)
    check(run, script, omp="2")
    assert any(isinstance(e, TaskFinished) for e in run.events)


def test_final_metrics_are_the_last_line_without_step() -> None:
    assert parse(b'{"a": 1}\n{"a": 2, "step": 1}\n').final() == {"a": 1}
    assert parse(b'{"a": 1, "step": 0}\n{"a": 2, "step": 1}\n').final() == {"a": 2, "step": 1}
    assert parse(b"").final() is None
    reports = parse(b'oops\n{"a": 1}\n3\n')
    assert reports.bad == 2 and reports.first_bad == "oops" and reports.final() == {"a": 1}


def test_tail_reads_only_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    tail = Tail(path)
    assert tail.read().lines == []  # not there yet
    path.write_bytes(b'{"step": 0, "v": 1}\n{"step": 1,')
    assert tail.read().lines == [{"step": 0, "v": 1}]
    with open(path, "ab") as f:
        f.write(b' "v": 2}\n')
    assert tail.read().lines == [{"step": 1, "v": 2}]
    assert tail.read().lines == []


@pytest.mark.slurm
async def test_tasks_on_slurm_nodes_report_metrics(slurm: dict[str, str], run_spec: RunSpec, tmp_path: Path) -> None:
    script = tmp_path / "report.py"
    script.write_text(REPORTER)
    text = spec(script, '[provider]\ntype = "slurm"\n[resources]\nnodes = 2\nwalltime = "5m"\n'
                '[pilot]\nheartbeat = "0.5s"\nheartbeat_timeout = "3s"\n').replace("cores = 2\n", "")  # fmt: skip
    run = await run_spec(text)
    check(run, script, omp="1")
    assert {r.node for r in run.results()} <= {"node1", "node2", "node3"}


@pytest.mark.runc
async def test_tasks_in_a_container_report_metrics(busybox_image: Path, run_spec: RunSpec) -> None:  # noqa: F811
    text = (
        f'name = "c"\n[image]\nref = "{busybox_image}"\n[container]\nruntime = "oci"\n'
        '[[app.groups]]\nname = "g"\nshell = true\n'
        "command = \"echo '{{\\\"loss\\\": {x}, \\\"id\\\": \\\"'$PILOTKIT_TASK_ID'\\\"}}' >> $PILOTKIT_METRICS\"\n"
        "[app.groups.grid]\nx = [7]\n"
    )
    run = await run_spec(text)
    assert run.state is PilotState.DONE, run.reason
    (result,) = run.results()
    assert result.metrics == {"loss": 7, "id": "g-0"}
