"""``pilotkit submit --profile``: the daemon starts the spec from a profile of its own
configuration files, keeps the choice, and parses the spec with it again after a kill -9."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pilotkit.results import read_results

from .conftest import DaemonProcess, wait_for, write_spec

SITE = """[profiles.quick.env]
STACK = "from-the-profile"

[profiles.quick.pilot]
grace = "1s"
"""

SPEC = """name = "prof"
[resources]
cores = 2
[[app.groups]]
name = "g"
shell = true
command = "if [ -e ran-before ]; then echo $STACK; exit 0; fi; touch ran-before; exec sleep 60"
[app.groups.grid]
i = [1, 2]
"""


def profiled_daemon(daemon_factory: Callable[..., DaemonProcess], tmp_path: Path) -> DaemonProcess:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    d = daemon_factory()
    d.env["PILOTKIT_SITE_CONFIG"] = str(site)
    d.env["XDG_CONFIG_HOME"] = str(tmp_path / "no-user-config")
    d.env.pop("PILOTKIT_PROFILE", None)
    d.start()
    return d


def test_submit_profile_survives_a_daemon_kill(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    daemon = profiled_daemon(daemon_factory, tmp_path)
    pilot = daemon.submit(write_spec(tmp_path, SPEC), "--profile", "quick")
    wait_for(lambda: daemon.status(pilot)["progress"]["running"] == 2, 30, "both tasks to run")
    workdir = Path(daemon.status(pilot)["workdir"])
    marks = [workdir / "tasks" / t / "ran-before" for t in ("g-0", "g-1")]
    wait_for(lambda: all(m.exists() for m in marks), 30, "both tasks' first attempts to start their command")
    daemon.kill9()
    daemon.start()
    summary = daemon.wait_state(pilot, {"done", "failed"}, timeout=30)
    assert summary["state"] == "done", summary
    results = read_results(workdir / "results.jsonl")
    assert sorted(r.task for r in results) == ["g-0", "g-1"]
    for r in results:
        assert r.attempts == 2 and r.stdout is not None
        assert Path(r.stdout).read_text() == "from-the-profile\n", "the restarted run kept the profile"


def test_submit_with_an_unknown_profile_is_one_line(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    daemon = profiled_daemon(daemon_factory, tmp_path)
    out = daemon.cli("submit", str(write_spec(tmp_path, SPEC)), "--profile", "quik", check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "no profile 'quik'" in out.stderr and "(profiles: quick)" in out.stderr
    assert "Traceback" not in out.stderr
    assert daemon.cli("status", "--json").stdout.count('"id"') == 0, "nothing was submitted"
