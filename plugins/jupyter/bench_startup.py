"""Start-up measurement: from the command to a notebook URL that answers on the user's side
of an SSH tunnel, on the project's Slurm test cluster, both ways in the same run:

- **pilotkit**: ``pilotkit run`` of a 1-node ``[app] type = "jupyter"`` spec, then
  ``pilotkit jupyter open --host pilotkit-test`` (the tunnel through the "login node", the
  project's sshd on this host);
- **by hand**: ``srun -N1 python -m jupyterlab --ip=$(hostname) --port=0``, its URL read from
  its log, then ``ssh -N -L PORT:node1:PORT pilotkit-test``.

Each time ends when ``GET /api/status`` with the token answers 200 through the tunnel (the
time a person takes to copy a URL is not counted). Optionally (``--dask``) also pilotkit with
``backend = "dask"`` on 3 nodes (no hand-made equivalent is measured).

    python plugins/jupyter/bench_startup.py [--dask] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pilotkit.testing.slurm import cluster_env, cluster_lock, testcluster_script

ROOT = Path(__file__).resolve().parents[2]
TESTSSHD = ROOT / "share" / "testsshd" / "testsshd"
PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]
SPEC = """name = "bench-jupyter"
[provider]
type = "slurm"
[resources]
nodes = {nodes}
walltime = "10m"
[pilot]
grace = "3s"
[app]
type = "jupyter"
backend = "{backend}"
"""


SPLITS: dict[str, float] = {}
"""Intermediate times (seconds from the command), printed after the results."""


def _answers(url: str, token: str) -> bool:
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not (callable(condition) and condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_pilotkit(tmp: Path, ssh_config: Path, env: dict[str, str], nodes: int, backend: str) -> float:
    spec = tmp / f"bench-{backend}.toml"
    spec.write_text(SPEC.format(nodes=nodes, backend=backend))
    workdir = tmp / f"pilot-{backend}"
    info = workdir / "jupyter.json"
    started = time.monotonic()
    run = subprocess.Popen([*PILOTKIT, "run", "-q", "--workdir", str(workdir), str(spec)], env=env,
                           stdout=subprocess.DEVNULL, stderr=open(tmp / f"run-{backend}.log", "wb"))  # fmt: skip
    tunnel = None
    try:
        _until(
            lambda: info.exists() and json.loads(info.read_text()).get("state") == "running",
            180,
            "the server",
        )
        SPLITS[f"pilotkit ({backend}): jupyter.json says running"] = time.monotonic() - started
        tunnel = subprocess.Popen(
            [*PILOTKIT, "jupyter", "open", "--no-browser", "--host", "pilotkit-test", "--ssh-config", str(ssh_config),
             str(workdir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert tunnel.stdout is not None
        url = tunnel.stdout.readline().decode().strip()
        base, token = url.split("/lab?token=")
        _until(lambda: _answers(base, token), 60, "the server through the tunnel")
        return time.monotonic() - started
    finally:
        if tunnel is not None:
            _stop(tunnel)
        _stop(run)


def bench_by_hand(tmp: Path, ssh_config: Path, env: dict[str, str]) -> float:
    log = tmp / "srun.log"
    started = time.monotonic()
    command = f"exec {sys.executable} -m jupyterlab --no-browser --allow-root --ip=$(hostname) --port=0"
    srun = subprocess.Popen(
        ["srun", "-N1", "-p", env.get("PILOTKIT_TESTCLUSTER_PARTITION", "debug"), "-t", "10", "bash", "-c", command],
        env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), cwd=tmp, start_new_session=True,
    )  # fmt: skip
    ssh = None
    try:
        found: list[re.Match[str]] = []

        def url_in_log() -> bool:
            match = re.search(r"http://(node\d+):(\d+)/lab\?token=(\w+)", log.read_text(errors="replace"))
            if match:
                found.append(match)
            return match is not None

        _until(url_in_log, 180, "jupyter lab's URL in its log")
        SPLITS["by hand: the URL in jupyter lab's log"] = time.monotonic() - started
        node, port, token = found[0].groups()
        local = _free_port()
        ssh = subprocess.Popen(["ssh", "-F", str(ssh_config), "-N", "-L", f"{local}:{node}:{port}", "pilotkit-test"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        _until(lambda: _answers(f"http://127.0.0.1:{local}", token), 60, "the server through the hand tunnel")
        return time.monotonic() - started
    finally:
        if ssh is not None:
            _stop(ssh, signal.SIGTERM)
        _stop(srun)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dask", action="store_true", help="also pilotkit with backend = dask on 3 nodes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    script = testcluster_script()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-jupyter-") as name, cluster_lock():
        tmp = Path(name)
        env = {**os.environ, **cluster_env(script)}
        env["PILOTKIT_CALLBACK_HOST"] = env["PILOTKIT_TESTCLUSTER_HOST_ADDR"]
        for key in ("DISPLAY", "WAYLAND_DISPLAY"):
            env.pop(key, None)
        subprocess.run(
            [str(TESTSSHD), "up", str(tmp / "sshd"), str(_free_port())], check=True, capture_output=True
        )
        try:
            ssh_config = tmp / "sshd" / "ssh_config"
            results["by hand: srun jupyter lab + ssh -L"] = bench_by_hand(tmp, ssh_config, env)
            results["pilotkit run + jupyter open --host (Lab, 1 node)"] = bench_pilotkit(
                tmp, ssh_config, env, 1, "none"
            )
            if args.dask:
                results["pilotkit run + jupyter open --host (Lab + Dask, 3 nodes)"] = bench_pilotkit(
                    tmp, ssh_config, env, 3, "dask"
                )
        finally:
            subprocess.run([str(TESTSSHD), "down", str(tmp / "sshd")], capture_output=True)
    if args.json:
        print(json.dumps({"results": results, "splits": SPLITS}, indent=2))
    else:
        for what, seconds in results.items():
            print(f"{seconds:6.1f} s  {what}")
        for what, seconds in SPLITS.items():
            print(f"{seconds:6.1f} s    of which: {what}")


if __name__ == "__main__":
    main()
