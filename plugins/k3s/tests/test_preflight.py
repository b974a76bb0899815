"""The preflight, for real on this machine, and on made-up machines (a folder standing
in for ``/``) for the cases this one does not show."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from pilotkit_k3s.preflight import Machine, render, run_checks

from pilotkit.testing import cli


def _loaded(module: str) -> bool:
    if Path(f"/sys/module/{module}").exists():
        return True
    if module == "overlay":
        return "overlay" in Path("/proc/filesystems").read_text()
    return Path("/proc/sys/net/bridge").exists()


def test_reports_what_this_machine_lacks() -> None:
    """Each check's verdict agrees with a direct look at this machine."""
    for rootless in (False, True):
        report = run_checks(rootless=rootless)
        by_name = {c.name: c for c in report.checks}
        assert by_name["k3s binary"].ok == (shutil.which("k3s") is not None)
        assert by_name["kernel module overlay"].ok == _loaded("overlay")
        assert by_name["kernel module br_netfilter"].ok == _loaded("br_netfilter")
        if rootless:
            assert by_name["cgroup v2"].ok == Path("/sys/fs/cgroup/cgroup.controllers").exists()
            assert by_name["/dev/fuse"].ok == (
                Path("/dev/fuse").exists() and os.access("/dev/fuse", os.R_OK | os.W_OK)
            )
            idmap = shutil.which("newuidmap") is not None and shutil.which("newgidmap") is not None
            if not idmap:
                assert not by_name["newuidmap/newgidmap"].ok
        else:
            assert "/dev/fuse" not in by_name, "rootful k3s needs no fuse-overlayfs"
        screen = render(report)
        for check in report.missing:
            assert f"MISSING  {check.name}" in screen
            assert f"- {check.name}: {check.ask}" in screen
        assert len(screen.splitlines()) <= 24, "one screen"


def test_command_exits_2_naming_the_missing_things() -> None:
    report = run_checks(rootless=True)
    result = CliRunner().invoke(cli, ["k3s", "preflight", "--rootless"])
    assert result.exit_code == (2 if report.missing else 0), result.output
    for check in report.missing:
        assert check.name in result.output
    assert "Traceback" not in result.output
    data = json.loads(CliRunner().invoke(cli, ["k3s", "preflight", "--rootless", "--json"]).output)
    assert [c["name"] for c in data["checks"] if not c["ok"]] == [c.name for c in report.missing]


def test_module_form_the_nodes_run() -> None:
    """What the app runs on every node: same verdict, exit 2 when something is missing."""
    done = subprocess.run(
        [sys.executable, "-m", "pilotkit_k3s.preflight", "--rootful", "--json"],
        capture_output=True,
        text=True,
    )
    data = json.loads(done.stdout)
    assert done.returncode == (2 if any(not c["ok"] for c in data["checks"]) else 0)
    assert not data["rootless"]


def _machine(root: Path, *, complete: bool) -> Machine:
    """A folder laid out like a node that has everything (or nothing)."""
    if complete:
        (root / "sys/fs/cgroup/user.slice/job").mkdir(parents=True)
        (root / "sys/fs/cgroup/cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (root / "sys/fs/cgroup/user.slice/job/cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (root / "proc/self").mkdir(parents=True)
        (root / "proc/self/cgroup").write_text("0::/user.slice/job\n")
        (root / "proc/sys/user").mkdir(parents=True)
        (root / "proc/sys/user/max_user_namespaces").write_text("63000\n")
        (root / "etc").mkdir()
        user = os.environ.get("USER") or "root"
        for name in ("subuid", "subgid"):
            (root / "etc" / name).write_text(f"{user}:100000:65536\n{os.getuid()}:100000:65536\n")
        (root / "dev").mkdir()
        (root / "dev/fuse").write_text("")
        for module in ("overlay", "br_netfilter"):
            (root / "sys/module" / module).mkdir(parents=True)
    tools = {"k3s", "newuidmap", "newgidmap"} if complete else set()
    return Machine(root=root, which=lambda name: f"/usr/bin/{name}" if name in tools else None)


def test_a_node_with_everything_passes(tmp_path: Path) -> None:
    report = run_checks(rootless=True, machine=_machine(tmp_path, complete=True), node="n1")
    assert report.missing == [], render(report)
    assert "nothing missing" in render(report)


def test_a_bare_node_misses_everything(tmp_path: Path) -> None:
    report = run_checks(rootless=True, machine=_machine(tmp_path, complete=False), node="n1")
    assert [c.name for c in report.missing] == [c.name for c in report.checks]
    screen = render(report)
    assert "7 missing" in screen or f"{len(report.checks)} missing" in screen
    assert "uidmap package" in screen and "Delegate=" in screen


def test_undelegated_controllers_are_named(tmp_path: Path) -> None:
    machine = _machine(tmp_path, complete=True)
    (tmp_path / "sys/fs/cgroup/user.slice/job/cgroup.controllers").write_text("memory pids\n")
    report = run_checks(rootless=True, machine=machine, node="n1")
    (check,) = report.missing
    assert check.name == "delegated cgroup controllers"
    assert "lacking cpu cpuset io" in check.found


def test_pilotkit_probe_shows_whether_this_node_could_run_k3s() -> None:
    """``pilotkit probe``, for real, in a subprocess with every installed plugin: the k3s
    lines agree with the preflight on this machine."""
    report = run_checks()
    env = {k: v for k, v in os.environ.items() if k != "PILOTKIT_EVENTLOG"}
    result = subprocess.run(
        [sys.executable, "-m", "pilotkit.cli.main", "probe", "--no-gpu", "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [c for c in json.loads(result.stdout)["checks"] if c["plugin"] == "k3s"]
    summary, *checks = lines
    mode = "rootless" if report.rootless else "rootful"
    if report.missing:
        assert summary["level"] == "warning"
        assert summary["message"] == (
            f"this node cannot run k3s ({mode}): missing {', '.join(c.name for c in report.missing)}"
        )
    else:
        assert summary == {"plugin": "k3s", "name": "k3s", "level": "ok",
                           "message": f"this node could run k3s ({mode})"}
    assert [(c["name"], c["level"]) for c in checks] == [
        (f"k3s {c.name}", "ok" if c.ok else "warning") for c in report.checks
    ]
    for line, check in zip(checks, report.checks, strict=True):
        assert line.get("hint") == (None if check.ok else check.ask)
    text = subprocess.run(
        [sys.executable, "-m", "pilotkit.cli.main", "probe", "--no-gpu"],
        capture_output=True, text=True, env={**env, "COLUMNS": "200"}, timeout=60, check=False,
    )
    assert text.returncode == 0, text.stderr
    assert summary["message"] in text.stdout
