"""A workdir on a full disk (a 2 MiB tmpfs mounted for the test): no result lost or
duplicated, no task started after the first failed write, the full path named in one
line, exit 1; SIGTERM still answered; the write retried when space returns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import pilot_processes, run, spec_file


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def complete_lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]


def unwritten(cli_env: dict[str, str]) -> list[dict[str, object]]:
    root = Path(cli_env["XDG_STATE_HOME"]) / "pilotkit" / "unwritten"
    return [r for f in sorted(root.glob("*-results.jsonl")) for r in complete_lines(f)]


def test_disk_full_loses_nothing_duplicates_nothing(
    small_disk: Path, tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = spec_file(
        tmp_path,
        'name = "full"\n[[app.groups]]\nname = "g"\n'
        "command = \"sh -c 'head -c 20000 /dev/zero; echo {i}'\"\n"
        f"grid = {{ i = {list(range(150))} }}\n",
    )
    wd = small_disk / "wd"
    out = run(pilotkit_cmd, cli_env, "run", "-q", "--workdir", str(wd), str(spec), timeout=60)
    assert out.returncode == 1, out.stderr
    assert f"cannot write {wd}/results.jsonl: No space left on device" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    tasks = [r["task"] for r in complete_lines(wd / "results.jsonl") + unwritten(cli_env)]
    assert len(tasks) == len(set(tasks)) == 150  # results lost: 0, duplicates: 0
    assert not pilot_processes(wd)


def test_disk_full_sigterm_answered_and_write_retried(
    small_disk: Path, tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = spec_file(
        tmp_path,
        'name = "retry"\n[resources]\ncores = 2\n'
        '[[app.groups]]\nname = "fill"\ncommands = ["sh -c \'head -c 3000000 /dev/zero > {workdir}/filler; true\'"]\n'
        '[[app.groups]]\nname = "slow"\ncommands = ["sleep 4"]\n'
        '[[app.groups]]\nname = "later"\ncommands = ["true"]\n',
    )
    wd = small_disk / "wd"
    proc = subprocess.Popen([*pilotkit_cmd, "run", "-q", "--workdir", str(wd), str(spec)], env=cli_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    filler = wd / "filler"
    deadline = time.monotonic() + 20
    while not (filler.exists() and filler.stat().st_size > 1_000_000) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the fill task's result could not be written: nothing new starts
    filler.unlink()  # space returns: the kept results are written on the next try
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    assert f"cannot write {wd}/results.jsonl: No space left on device" in stdout + stderr
    assert "every result is written now" in stdout + stderr
    results = {r["task"]: r["outcome"] for r in complete_lines(wd / "results.jsonl")}
    assert results == {"fill-0": "ok", "slow-0": "ok", "later-0": "cancelled"}

    # Full again, with a task running: SIGTERM ends the pilot at once, nothing lost.
    wd2 = small_disk / "wd2"
    spec2 = spec_file(tmp_path, spec.read_text().replace("sleep 4", "sleep 60"), "spec2.toml")
    proc = subprocess.Popen([*pilotkit_cmd, "run", "-q", "--workdir", str(wd2), str(spec2)], env=cli_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 20
    while not ((wd2 / "filler").exists() and (wd2 / "filler").stat().st_size > 500_000):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 20
    assert proc.returncode == 130, stderr
    tasks = [r["task"] for r in complete_lines(wd2 / "results.jsonl") + unwritten(cli_env)]
    assert sorted(tasks) == ["fill-0", "later-0", "slow-0"]
    assert not pilot_processes(wd2)
    os.sync()
