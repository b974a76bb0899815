"""The real `pilotkit` command in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from .conftest import EXAMPLES


def run(cmd: list[str], env: dict[str, str], *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]


def test_validate_bad_spec_one_line_each_exit_2(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        'name = "bad"\n[resources]\nnodse = 1\ncores = "two"\nmemory = "900TiB"\n'
        '[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
    )
    out = run(pilotkit_cmd, cli_env, "validate", str(spec))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines == [
        f"error: {spec}:3: resources.nodse: unknown key (did you mean 'nodes'?)",
        f"error: {spec}:4: resources.cores: expected an integer, got a string",
        f"error: {spec}:5: resources.memory: 900.0 TiB asked for, this machine has "
        + lines[2].rsplit("this machine has ", 1)[1],
    ]
    assert "Traceback" not in out.stderr
    as_json = run(pilotkit_cmd, cli_env, "validate", "--json", str(spec))
    assert as_json.returncode == 2
    assert [p["key"] for p in json.loads(as_json.stdout)["problems"]] == [
        "resources.nodse", "resources.cores", "resources.memory"
    ]  # fmt: skip


def test_run_json_streams_events(tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]) -> None:
    out = run(
        pilotkit_cmd, cli_env, "run", "--json", "--workdir", str(tmp_path / "w"), str(EXAMPLES / "hello.toml")
    )
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    states = [e["state"] for e in events if e["type"] == "pilot-state"]
    assert states == ["claiming", "probing", "deploying", "running", "evicting", "done"]
    assert sum(e["type"] == "task-finished" for e in events) == 3
    assert len((tmp_path / "w" / "results.jsonl").read_text().splitlines()) == 3


def test_probe_and_plugins_json(pilotkit_cmd: list[str], cli_env: dict[str, str]) -> None:
    probe = json.loads(run(pilotkit_cmd, cli_env, "probe", "--json").stdout)
    assert probe["node"]["cores"] >= 1 and probe["node"]["memory"] > 0
    assert "gpus" in probe["gpus"] or "reason" in probe["gpus"]
    plugins = {p["name"]: p for p in json.loads(run(pilotkit_cmd, cli_env, "plugins", "--json").stdout)}
    assert plugins["builtin:local"]["registered"] == {"providers": ["local"]}
    assert plugins["builtin:tasks"]["registered"] == {"apps": ["tasks"]}


def write_broken_plugin(site: Path) -> None:
    """A real installed distribution (dist-info + entry point) whose module raises."""
    (site / "broken_plugin.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    info = site / "pilotkit_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pilotkit-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pilotkit]\nbroken = broken_plugin\n")


def test_broken_plugin_is_reported_and_run_goes_on(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    write_broken_plugin(site)
    cli_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), cli_env.get("PYTHONPATH")]))
    plugins = {p["name"]: p for p in json.loads(run(pilotkit_cmd, cli_env, "plugins", "--json").stdout)}
    assert plugins["broken"]["error"] == "RuntimeError: this plugin is broken on purpose"
    assert plugins["broken"]["source"] == "pilotkit-broken"
    out = run(
        pilotkit_cmd, cli_env, "run", "-q", "--workdir", str(tmp_path / "w"), str(EXAMPLES / "hello.toml")
    )
    assert out.returncode == 0
    assert "plugin 'broken' failed to load and is skipped: RuntimeError" in out.stderr
    cli_env["PILOTKIT_DISABLE_PLUGINS"] = "broken"
    quiet = run(
        pilotkit_cmd, cli_env, "run", "-q", "--workdir", str(tmp_path / "w2"), str(EXAMPLES / "hello.toml")
    )
    assert quiet.returncode == 0 and "failed to load" not in quiet.stderr


def test_ctrl_c_cancels_evicts_and_leaves_no_orphans(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = tmp_path / "long.toml"
    spec.write_text(
        'name = "long"\n[resources]\ncores = 2\n[pilot]\ngrace = "2s"\n'
        '[[app.groups]]\nname = "quick"\ncommands = ["true", "true", "true"]\n'
        '[[app.groups]]\nname = "slow"\nshell = true\n'
        # a child in the background, and a task that ignores SIGTERM: both must go
        'commands = ["sleep 300 & sleep 300", "trap \'\' TERM; sleep 300", "sleep 300"]\n'
    )
    workdir = tmp_path / "w"
    proc = psutil.Popen(
        [*pilotkit_cmd, "run", "--workdir", str(workdir), str(spec)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 30
    sleepers: list[psutil.Process] = []
    while time.time() < deadline:
        sleepers = [p for p in proc.children(recursive=True) if p.name() == "sleep"]
        if len(sleepers) >= 3:
            break
        time.sleep(0.1)
    assert len(sleepers) >= 3, "the slow tasks started"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "state: cancelled" in stderr and "interrupted (SIGINT)" in stderr
    time.sleep(0.2)
    alive = [p for p in sleepers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"orphans left: {alive}"
    results = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert len(results) == 6, "every task, finished or not, is in the results"
    assert sorted(r["status"] for r in results if r["group"] == "quick") == ["ok", "ok", "ok"]
    assert {r["status"] for r in results if r["group"] == "slow"} <= {"cancelled"}


def test_sigusr1_drains_running_tasks_finish_queued_never_start(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """Drain, as the README says: no new task starts, the running ones run to their end."""
    spec = tmp_path / "drain.toml"
    marks = tmp_path / "marks"
    marks.mkdir()
    spec.write_text(
        'name = "drain"\n[resources]\ncores = 2\n'
        '[[app.groups]]\nname = "g"\nshell = true\n'
        f'command = "touch {marks}/start-{{index}}; sleep 3; touch {marks}/end-{{index}}"\n'
        '[app.groups.grid]\nn = [1, 2, 3, 4, 5, 6]\n'
    )
    workdir = tmp_path / "w"
    proc = subprocess.Popen(
        [*pilotkit_cmd, "run", "-q", "--workdir", str(workdir), str(spec)],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 30
    while time.time() < deadline and len(list(marks.glob("start-*"))) < 2:
        time.sleep(0.05)
    assert len(list(marks.glob("start-*"))) == 2, "two tasks run at once"
    proc.send_signal(signal.SIGUSR1)
    _, stderr = proc.communicate(timeout=60)
    started = sorted(p.name for p in marks.glob("start-*"))
    ended = sorted(p.name for p in marks.glob("end-*"))
    assert len(started) == 2, f"a task started after the drain: {started}"
    assert [n.replace("end", "start") for n in ended] == started, "the running tasks ran to their end"
    results = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert len(results) == 6, "every task is in the results"
    assert sorted(r["status"] for r in results) == ["cancelled"] * 4 + ["ok"] * 2
    # A drain is an ordinary end: state done, exit 0, the tasks that never started
    # counted as cancelled in the summary.
    assert proc.returncode == 0 and "state: done" in stderr and "Traceback" not in stderr, stderr


def test_internal_error_points_to_log(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    # A results path that is a directory cannot be opened: not a user error in the spec.
    workdir = tmp_path / "w"
    (workdir / "results.jsonl").mkdir(parents=True)
    out = run(pilotkit_cmd, cli_env, "run", "-q", "--workdir", str(workdir), str(EXAMPLES / "hello.toml"))
    assert out.returncode == 1
    assert "internal error" in out.stderr and "pilotkit.log" in out.stderr
    assert "Traceback" not in out.stderr
    log = Path(cli_env["XDG_STATE_HOME"]) / "pilotkit" / "pilotkit.log"
    assert "Traceback" in log.read_text()


def test_help_explains(pilotkit_cmd: list[str], cli_env: dict[str, str]) -> None:
    out = run(pilotkit_cmd, cli_env, "run", "--help")
    assert "Ctrl-C cancels" in out.stdout and "SIGUSR1 drains" in out.stdout and "Exit codes" in out.stdout
    assert sys.executable
