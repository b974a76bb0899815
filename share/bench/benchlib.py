"""Helpers the benchmark scripts of ``share/bench`` share: specs, running ``pilotkit run``
and ``xargs`` in a fresh process and reading what they did, the idle overhead of a pilot,
the peers of ``../shared/peers`` (HyperQueue through ``peerbench.py``), and summaries.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- specs


def spec_text(name: str, n: int, slots: int, command: str) -> str:
    """``n`` tasks of ``command`` (a grid of one key ``i``) on ``slots`` local cores."""
    values = ", ".join(str(i) for i in range(n))
    return f"""name = "{name}"
[resources]
cores = {slots}
[app]
type = "tasks"
[[app.groups]]
name = "bench"
command = "{command}"
[app.groups.grid]
i = [{values}]
"""


def grid_spec_text(name: str, rows: int, columns: int, slots: int, command: str) -> str:
    """A ``rows`` x ``columns`` grid (keys ``a`` and ``b``) of ``command``: a scan of
    ``rows * columns`` tasks that the spec states in ``rows + columns`` values."""
    a = ", ".join(str(i) for i in range(rows))
    b = ", ".join(str(i) for i in range(columns))
    return f"""name = "{name}"
[resources]
cores = {slots}
[app]
type = "tasks"
[[app.groups]]
name = "scan"
command = "{command}"
[app.groups.grid]
a = [{a}]
b = [{b}]
"""


# --------------------------------------------------------------------------- pilotkit run


def pilotkit_exe() -> str | None:
    """The installed console script beside this interpreter (not a shell shim)."""
    beside = Path(sys.executable).parent / "pilotkit"
    return str(beside) if beside.exists() else shutil.which("pilotkit")


def pilotkit_argv(*args: str) -> list[str]:
    exe = pilotkit_exe()
    return [exe, *args] if exe else [sys.executable, "-m", "pilotkit.cli.main", *args]


def run_pilotkit(spec: Path, workdir: Path) -> dict[str, float]:
    """Run ``pilotkit run --quiet`` on ``spec`` in a fresh process; what its
    ``results.jsonl`` and its rusage say."""
    argv = pilotkit_argv("run", "--quiet", "--workdir", str(workdir), str(spec))
    t0 = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(
            f"pilotkit run failed ({proc.returncode}): {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    starts, ends = [], []
    with open(workdir / "results.jsonl") as f:
        for line in f:
            r = json.loads(line)
            starts.append(r["start"])
            ends.append(r["end"])
    span = max(ends) - min(starts)
    return {
        "tasks": len(starts),
        "span_s": span,
        "tasks_per_s": len(starts) / span if span > 0 else float("inf"),
        "startup_s": min(starts) - t0,
        "wall_s": wall,
        "peak_rss_mib": rusage.ru_maxrss / 1024,
        "cpu_s": rusage.ru_utime + rusage.ru_stime,
    }


def first_task(spec: Path, workdir: Path, timeout: float = 120.0) -> dict[str, float]:
    """Start ``pilotkit run`` on a spec whose tasks run long, wait for its first task to
    run (its pid file appears), read the pilot's RSS then and a second later, and
    cancel it with SIGINT (as Ctrl-C: every task not run is recorded ``cancelled``).
    Seconds from the launch to the first task and from SIGINT to the exit; MiB."""
    pids = workdir / "pids"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        pilotkit_argv("run", "--quiet", "--workdir", str(workdir), str(spec)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = None
    try:
        while time.perf_counter() - t0 < timeout and proc.poll() is None:
            try:
                if any(pids.iterdir()):
                    first = time.perf_counter() - t0
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.002)
        if first is None:
            raise SystemExit(f"pilotkit run on {spec.name}: no task started within {timeout:g}s")
        at_first = rss_mib(proc.pid)
        time.sleep(1.0)
        later = rss_mib(proc.pid)
        hwm = hwm_mib(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    t1 = time.perf_counter()
    _, _, rusage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return {
        "first_task_s": first,
        "rss_first_mib": at_first,
        "rss_1s_mib": later,
        "peak_rss_mib": hwm,
        "cancel_s": time.perf_counter() - t1,
        "peak_rss_with_cancel_mib": rusage.ru_maxrss / 1024,
    }


def _status_kib(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return float("nan")


def rss_mib(pid: int) -> float:
    return _status_kib(pid, "VmRSS") / 1024


def hwm_mib(pid: int) -> float:
    return _status_kib(pid, "VmHWM") / 1024


def run_xargs(n: int, slots: int) -> float:
    """Seconds for ``seq n | xargs -P<slots> -n1 /bin/true``, the whole process."""
    t0 = time.perf_counter()
    subprocess.run(f"seq {n} | xargs -P{slots} -n1 /bin/true", shell=True, check=True)
    return time.perf_counter() - t0


def idle_overhead(tmp: Path, seconds: float = 3.0) -> float:
    """Percent of one core the pilot process uses while its 2 tasks sleep."""
    import psutil

    spec = tmp / "idle.toml"
    sleep = int(seconds + 2.5)
    spec.write_text(
        'name = "idle"\n[resources]\ncores = 2\n[[app.groups]]\nname = "sleep"\n'
        f'commands = ["sleep {sleep}", "sleep {sleep}"]\n'
    )
    proc = psutil.Popen(
        pilotkit_argv("run", "--quiet", "--workdir", str(tmp / "idle"), str(spec)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)  # past start-up
    before = proc.cpu_times()
    t0 = time.perf_counter()
    time.sleep(seconds)
    after = proc.cpu_times()
    elapsed = time.perf_counter() - t0
    proc.wait()
    used = (after.user + after.system) - (before.user + before.system)
    return float(100.0 * used / elapsed)


# --------------------------------------------------------------------------- peers

PEERS_README = "see share/bench/README.md"


def default_peers_python() -> str:
    return os.environ.get("PILOTKIT_PEERS_PYTHON", "/tmp/peers/bin/python")


def find_peerbench() -> Path | None:
    """``peerbench.py`` of ``shared/peers`` beside the repository (or a level up, for a
    worktree), or ``$PILOTKIT_PEERBENCH``."""
    explicit = os.environ.get("PILOTKIT_PEERBENCH")
    candidates = [Path(explicit)] if explicit else []
    candidates += [folder / "shared" / "peers" / "peerbench.py" for folder in (ROOT.parent, ROOT.parent.parent)]
    return next((c for c in candidates if c.is_file()), None)


def peer_missing(python: str, module: str, label: str) -> str | None:
    """Why a peer cannot run (a named skip), or None when ``module`` imports in ``python``."""
    if not Path(python).exists():
        return f"{label} not installed ({python} does not exist): {PEERS_README}"
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    if probe.returncode != 0:
        return f"{label} not installed (no {module} in {python}): {PEERS_README}"
    return None


def run_peerbench(python: str, peerbench: Path, tool: str, workload: str, n: int, rundir: Path) -> dict[str, object]:
    """One run of ``peerbench.py TOOL WORKLOAD N`` in a fresh process: its JSON line."""
    env = dict(os.environ, PEERBENCH_RUNDIR=str(rundir), PEERBENCH_T0=repr(time.time()))
    out = subprocess.run(
        [python, str(peerbench), tool, workload, str(n)], env=env, capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"peerbench {tool} {workload} {n} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- summaries


@dataclass
class Stat:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        return cls(statistics.median(values), min(values), max(values))

    def format(self, digits: int | None = None) -> str:
        if digits is None:
            digits = 0 if abs(self.median) >= 100 else 2
        if self.low == self.high:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} [{self.low:.{digits}f}-{self.high:.{digits}f}]"


def machine() -> dict[str, str]:
    """Cores, CPU model, kernel, Python."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }

