"""Campaigns the daemon owns: ``pilotkit submit`` of a spec with ``[campaign]`` on the
local provider, with a real daemon process and allocations of a few seconds; ``kill -9``
of the daemon mid-campaign; ``pilotkit submit --to`` adding tasks to a running one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil

from .conftest import DaemonProcess, wait_for

HEADER = """name = "{name}"
[resources]
cores = 2
walltime = "{walltime}"
[pilot]
drain_margin = "1s"
grace = "1s"
[campaign]
max_allocations = 20
parallel = 1
idle_timeout = "1s"
"""


def grid(n: int, command: str, group: str = "t") -> str:
    return f'[[app.groups]]\nname = "{group}"\ncommand = "{command}"\n[app.groups.grid]\ni = {list(range(n))}\n'


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def campaign_status(daemon: DaemonProcess, name: str) -> dict[str, Any] | None:
    out = daemon.cli("status", name, "--json", check=False)
    if out.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def wait_end(daemon: DaemonProcess, name: str, timeout: float = 60.0) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        data = campaign_status(daemon, name)
        return data if data is not None and data["state"] not in ("running", "paused") else None

    return wait_for(ended, timeout, f"campaign {name} to end")  # type: ignore[no-any-return]


def lines_of(results: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in results.read_text().splitlines()]


def test_daemon_runs_a_campaign_over_several_allocations(daemon: DaemonProcess, tmp_path: Path) -> None:
    """10 one-second tasks, allocations with 2 s to run tasks: several allocations, every
    task ok once in the one results.jsonl; status shows allocations, backlog, ETA."""
    spec = write(tmp_path, "scan.toml", HEADER.format(name="scan", walltime="3s") + grid(10, "sleep 1"))
    campaign_id = daemon.submit(spec)
    assert campaign_id.startswith("scan-")
    running = wait_for(lambda: (d := campaign_status(daemon, "scan")) and d["state"] == "running"
                       and d["done"] >= 1 and d, 30, "a task done")  # fmt: skip
    assert running["id"] == campaign_id and running["pid"] == daemon.pid
    assert (campaign_status(daemon, campaign_id) or {}).get("id") == campaign_id  # by its id too
    live = daemon.call("campaign", {"campaign": "scan"})["campaign"]  # the daemon's method: its state now
    assert live["id"] == campaign_id and live["state"] == "running" and live["total"] == 10
    assert running["eta"] is not None and running["total"] == 10 and running["allocations"]
    (listed,) = json.loads(daemon.cli("status", "--json").stdout)["campaigns"]
    assert listed["id"] == campaign_id and listed["total"] == 10 and listed["state"] == "running"
    table = daemon.cli("status").stdout.splitlines()
    assert table[0].split() == ["CAMPAIGN", "STATE", "DONE/TOTAL", "FAILED", "RUNNING", "WAITING", "ALLOCATIONS",
                                "ETA"]  # fmt: skip
    assert table[1].split()[:2] == [campaign_id, "running"]
    data = wait_end(daemon, "scan")
    assert data["state"] == "done" and data["done"] == 10
    names = [a["name"] for a in data["allocations"]]
    assert len(names) >= 3
    results = lines_of(Path(data["results"]))
    assert sorted(r["task"] for r in results) == sorted({r["task"] for r in results}) and len(results) == 10
    assert {r["outcome"] for r in results} == {"ok"} and {r["attempts"] for r in results} == {1}
    assert {r["allocation"] for r in results} <= set(names)
    assert Path(data["workdir"]) == daemon.state_dir / "runs" / campaign_id
    text = daemon.cli("status", data["workdir"]).stdout  # or by its directory
    assert f"campaign {campaign_id} (scan): done" in text and "allocations:" in text
    # where campaign.json is not on this machine (--host): the daemon answers, by id,
    # id prefix or name, for an ended campaign too
    elsewhere = {**daemon.env, "XDG_STATE_HOME": str(tmp_path / "elsewhere")}
    for name in (campaign_id, campaign_id[:-3], "scan"):
        remote = json.loads(daemon.cli("status", name, "--json", env=elsewhere).stdout)
        assert remote["id"] == campaign_id and remote["state"] == "done" and remote["done"] == 10, name
        assert [a["name"] for a in remote["allocations"]] == names and remote["handovers"]
    assert "allocations:" in daemon.cli("status", campaign_id, env=elsewhere).stdout
    nobody = daemon.cli("status", "nosuch", env=elsewhere, check=False)
    assert nobody.returncode == 2 and nobody.stderr.strip() == "error: no pilot 'nosuch'"


def test_cancel_a_daemon_campaign(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write(tmp_path, "long.toml", HEADER.format(name="long", walltime="30s") + grid(20, "sleep 2"))
    campaign_id = daemon.submit(spec)
    wait_for(lambda: (d := campaign_status(daemon, "long")) and d["running"] >= 1, 30, "tasks running")
    out = daemon.cli("cancel", "long")
    assert out.stdout.strip() == f"{campaign_id}: cancel (running)"
    data = wait_end(daemon, "long", 30)
    assert data["state"] == "cancelled" and data["reason"] == "cancelled by the user"
    results = lines_of(Path(data["results"]))
    assert len(results) == 20 == len({r["task"] for r in results})
    assert "cancelled" in {r["outcome"] for r in results}
    again = daemon.cli("cancel", "long", check=False)
    assert again.returncode != 0 and again.stderr == f"error: cannot cancel campaign {campaign_id}: it has ended\n"


def test_drain_a_daemon_campaign(daemon: DaemonProcess, tmp_path: Path) -> None:
    """Drain: no new task; the running ones finish ok, the rest is reported cancelled."""
    spec = write(tmp_path, "dry.toml", HEADER.format(name="dry", walltime="30s") + grid(10, "sleep 1"))
    campaign_id = daemon.submit(spec)
    wait_for(lambda: (d := campaign_status(daemon, "dry")) and d["running"] >= 1, 30, "tasks running")
    assert daemon.cli("drain", "dry").stdout.strip() == f"{campaign_id}: drain (running)"
    data = wait_end(daemon, "dry", 30)
    assert data["state"] == "done" and data["reason"].startswith("drained (drain requested)"), data
    results = lines_of(Path(data["results"]))
    assert len(results) == 10 == len({r["task"] for r in results})
    assert {r["outcome"] for r in results} == {"ok", "cancelled"}


def test_kill9_of_the_daemon_mid_campaign_resumes_it(daemon: DaemonProcess, tmp_path: Path) -> None:
    """The daemon dies under a campaign: its task processes are killed at the restart
    (none runs twice at once: each attempt checks that no earlier one of its task is
    alive), the tasks that ended ok are not run again, the others run."""
    marks = tmp_path / "marks"
    marks.mkdir()
    command = (f"sh -c 'for p in $(cat {marks}/{{i}} 2>/dev/null); do grep -qsE ^State:.[RSDT] /proc/$p/status "
               f"&& echo {{i}} >> {marks}/overlap; done; echo $$ >> {marks}/{{i}}; exec sleep 1.5'")  # fmt: skip
    spec = write(tmp_path, "durable.toml", HEADER.format(name="durable", walltime="20s") + grid(12, command))
    campaign_id = daemon.submit(spec)
    wait_for(lambda: (d := campaign_status(daemon, "durable")) and d["done"] >= 3 and d["running"] >= 1, 40,
             "some tasks done, some running")  # fmt: skip
    before = campaign_status(daemon, "durable")
    assert before is not None
    workdir = Path(before["workdir"])
    more = write(tmp_path, "more.toml", 'name = "more"\n' + grid(3, "true", group="extra"))
    daemon.cli("submit", str(more), "--to", campaign_id)  # kept across the restart
    ok_before = [r["params"]["i"] for r in lines_of(workdir / "results.jsonl") if r["outcome"] == "ok"
                 and r["group"] == "t"]  # fmt: skip
    started = [int(pid) for path in marks.iterdir() for pid in path.read_text().split()]
    daemon.kill9()
    daemon.start()
    for pid in started:  # the restarted daemon killed what the dead one left running
        wait_for(lambda pid=pid: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", 10,
                 f"task process {pid} gone")  # fmt: skip
    data = wait_end(daemon, "durable", 60)
    assert data["state"] == "done", data
    assert data["id"] == campaign_id
    results = lines_of(workdir / "results.jsonl")
    assert len(results) == 15 == len({r["task"] for r in results}), "every task once in results.jsonl"
    assert {r["outcome"] for r in results} == {"ok"} and data["total"] == 15
    assert sum(1 for r in results if r["group"] == "extra") == 3
    for index in ok_before:  # ended ok before the crash: not run again
        assert len((marks / str(index)).read_text().split()) == 1, index
    assert not (marks / "overlap").exists(), (marks / "overlap").read_text()
    assert "resumed after the daemon restarted" in daemon.output()
    assert "process(es) the previous daemon left running" in daemon.output()
    names = [a["name"] for a in data["allocations"]]
    assert len(names) == len(set(names)) >= 2, "the earlier allocations are listed, the new ones numbered on"
    assert "the daemon died" in (data["allocations"][0]["why"] or "")


def test_submit_to_adds_groups_to_a_running_campaign(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write(tmp_path, "grow.toml", HEADER.format(name="grow", walltime="30s") + grid(6, "sleep 1"))
    campaign_id = daemon.submit(spec)
    wait_for(lambda: (d := campaign_status(daemon, "grow")) and d["running"] >= 1, 30, "tasks running")
    more = write(tmp_path, "more.toml", 'name = "more"\n' + grid(4, "true", group="extra"))
    out = daemon.cli("submit", str(more), "--to", "grow")
    assert out.stderr.strip() == f"added to campaign {campaign_id}"
    # bad input: a group the campaign has already, located in more.toml
    same = write(tmp_path, "same.toml", 'name = "same"\n' + grid(2, "true", group="t"))
    bad = daemon.cli("submit", str(same), "--to", "grow", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "same.toml:3: app.groups[0].name: " in bad.stderr and f"campaign {campaign_id} has a group 't' already" in bad.stderr
    search = write(tmp_path, "search.toml", 'name = "s"\n[[app.groups]]\nname = "s"\ncommand = "true {x}"\n'
                   '[app.groups.search]\ntrials = 4\nobjective = "loss"\n'
                   '[app.groups.search.params]\nx = { uniform = [0, 1] }\n')  # fmt: skip
    bad = daemon.cli("submit", str(search), "--to", "grow", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "search.toml:5: app.groups[0].search: an adaptive search does not run in a campaign yet" in bad.stderr
    broken = write(tmp_path, "broken.toml", 'name = "broken"\n[[app.groups]]\nname = "x"\ncommand = 3\n')
    bad = daemon.cli("submit", str(broken), "--to", "grow", check=False)
    assert bad.returncode == 2 and "broken.toml:4" in bad.stderr and "Traceback" not in bad.stderr
    nobody = daemon.cli("submit", str(more), "--to", "nosuch", check=False)
    assert nobody.returncode != 0 and len(nobody.stderr.strip().splitlines()) == 1
    assert "no running campaign nosuch" in nobody.stderr
    data = wait_end(daemon, "grow", 60)
    assert data["state"] == "done" and data["total"] == 10 and data["done"] == 10
    results = lines_of(Path(data["results"]))
    assert len(results) == 10 == len({r["task"] for r in results})
    assert sum(1 for r in results if r["group"] == "extra") == 4
    ended = daemon.cli("submit", str(more), "--to", "grow", check=False)
    assert ended.returncode != 0 and "no running campaign grow" in ended.stderr


def test_daemon_stopped_and_started_again_resumes_its_campaign(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write(tmp_path, "calm.toml", HEADER.format(name="calm", walltime="20s") + grid(8, "sleep 1"))
    campaign_id = daemon.submit(spec)
    wait_for(lambda: (d := campaign_status(daemon, "calm")) and d["done"] >= 2, 30, "two tasks done")
    daemon.stop()  # SIGTERM: the campaign's tasks stop, and it runs on when the daemon starts
    daemon.start()
    data = wait_end(daemon, "calm", 60)
    assert data["state"] == "done" and data["id"] == campaign_id, data
    results = lines_of(Path(data["results"]))
    assert len(results) == 8 == len({r["task"] for r in results}) and {r["outcome"] for r in results} == {"ok"}
    assert data["done"] == 8 and data["resumed"] >= 2
    first = data["allocations"][0]
    assert first["state"] == "ended" and "the daemon stopped" in first["why"], first


def test_submit_wait_follows_a_campaign_and_exits_with_its_status(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write(tmp_path, "mixed.toml", HEADER.format(name="mixed", walltime="20s") + grid(2, "true")
                 + grid(1, "false", group="bad"))  # fmt: skip
    out = daemon.cli("submit", str(spec), "--wait", check=False)
    assert out.returncode == 1, out.stderr
    assert out.stdout.strip().startswith("mixed-")
    assert "failed: 1 task(s) failed" in out.stderr and "tasks: 3 total, 2 done, 1 failed" in out.stderr
    again = daemon.cli("submit", str(spec), "--to", "mixed", check=False)
    assert again.returncode != 0 and again.stderr.count("\n") == 1


def test_a_second_campaign_of_the_same_name_is_refused_while_one_runs(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = write(tmp_path, "one.toml", HEADER.format(name="one", walltime="20s") + grid(4, "sleep 1"))
    campaign_id = daemon.submit(spec)
    second = daemon.cli("submit", str(spec), check=False)
    assert second.returncode != 0
    assert second.stderr == (f"error: campaign one is running already ({campaign_id}): cancel it, or give the spec "
                             "another name\n")  # fmt: skip
    daemon.cli("cancel", campaign_id)
    assert wait_end(daemon, "one", 30)["state"] == "cancelled"
