"""Small untruths: output to a closed pipe ends quietly; `daemon --detach` with a daemon
already running says so and fails."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..daemon.conftest import DaemonProcess, daemon, daemon_factory  # noqa: F401


def closed_pipe(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with its stdout a pipe whose reader has gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(argv, env=env, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)


def test_closed_pipe_ends_quietly(daemon: DaemonProcess, tmp_path: Path) -> None:  # noqa: F811
    env = daemon.env
    base = daemon.cli("status").args[:-1]  # the same command line, without "status"
    for args in (["status"], ["schema"], ["probe", "--json", "--no-gpu"]):
        out = closed_pipe([*base, *args], env)
        assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr
        assert "internal error" not in out.stderr
        assert out.returncode in (0, 1)


def test_detach_with_a_daemon_running_fails_and_says_so(daemon: DaemonProcess) -> None:  # noqa: F811
    out = daemon.cli("daemon", "--detach", check=False)
    assert out.returncode == 1
    assert out.stderr.strip().startswith(f"error: a pilotkit daemon is already running (pid {daemon.pid})")
    assert "running (pid" not in out.stdout


def test_container_run_missing_image_and_its_pilot_id(tmp_path: Path) -> None:
    import re
    import sys

    from pilotkit_oci.busybox import build_busybox_rootfs

    cmd = [sys.executable, "-m", "pilotkit.cli.main", "container", "run", "--runtime", "oci", "--exec", "echo hi"]
    missing = subprocess.run([*cmd, "--image", str(tmp_path / "nope")], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"error: --image: {tmp_path / 'nope'} does not exist"]
    assert not (tmp_path / "pilotkit-runs").exists()

    image = build_busybox_rootfs(tmp_path / "busybox")
    ran = subprocess.run([*cmd, "--image", str(image)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (made,) = (tmp_path / "pilotkit-runs").iterdir()
    shown = re.search(r"pilot (container-\S+)", ran.stdout + ran.stderr)
    assert shown is not None and shown.group(1) == made.name  # the id it printed is the one it made


def test_retries_back_off_with_jitter(tmp_path: Path) -> None:
    import sys

    spec = tmp_path / "retry.toml"
    spec.write_text(
        'name = "r"\n[app]\nretries = 2\n[[app.groups]]\nname = "g"\nshell = true\n'
        'command = "echo {x} $(date +%s.%N) >> {spec_dir}/starts; exit 1"\n[app.groups.grid]\nx = [1, 2]\n'
    )
    out = subprocess.run([sys.executable, "-m", "pilotkit.cli.main", "run", "-q", "--workdir", str(tmp_path / "w"),
                          str(spec)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1
    starts: dict[str, list[float]] = {}
    for line in (tmp_path / "starts").read_text().splitlines():
        task, when = line.split()
        starts.setdefault(task, []).append(float(when))
    assert sorted(starts) == ["1", "2"] and all(len(times) == 3 for times in starts.values())
    gaps = {task: (times[1] - times[0], times[2] - times[1]) for task, times in starts.items()}
    for first, second in gaps.values():  # each task's own retries
        assert first >= 0.45  # 1 s, jittered to 0.5-1 s
        assert second >= 0.9  # 2 s, jittered to 1-2 s
    assert abs(gaps["1"][0] - gaps["2"][0]) > 0.001 or abs(gaps["1"][1] - gaps["2"][1]) > 0.001  # not in lockstep
