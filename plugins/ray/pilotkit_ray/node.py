"""Runs on a node, as a pilot task: one Ray node (the head, or a worker node).

``python -m pilotkit_ray.node --ready-file F --head-file H [--head] -- RAY-START-OPTIONS``
picks free ports on this node, runs ``ray start --block`` and writes ``F`` (the head
also ``H``, with the cluster's address) once Ray says it has started. A worker node
first waits for ``H``. SIGTERM, SIGINT or SIGHUP stop Ray on this node (``ray start
--block`` stops every Ray process it started when it is terminated; what is left after
5 s is killed) and remove Ray's temporary directory there. The head writes ``H`` as
soon as its GCS answers, so worker nodes join while it starts the rest.

Only the standard library: this starts on every node before anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

STARTED = "Ray runtime started"
"""What ``ray start`` prints once this node's Ray processes are up."""
RAY = "from ray.scripts.scripts import main; main()"
PORT_OPTIONS = (
    "--node-manager-port",
    "--object-manager-port",
    "--metrics-export-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
)
"""Ports Ray would otherwise take at fixed defaults (two pilots on one host would clash)."""
NODE_MARK = "PILOTKIT_RAY_NODE"
"""Set for ``ray start`` (and so for every Ray process of this node): which node task it is."""
STOP_TIMEOUT = 5.0
"""Seconds Ray gets to stop after SIGTERM before what is left of it is killed."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now: each socket stays bound until all are chosen
    (one closed before the next is bound may be handed out again, and Ray refuses a port
    given to two of its components)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def own_address() -> str:
    """This node's address as its name resolves (loopback as 127.0.0.1)."""
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return "127.0.0.1" if address.startswith("127.") else address


def write_json(path: Path, data: dict[str, object]) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def wait_for_head(path: Path, timeout: float) -> dict[str, object] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.1)
            continue
        if isinstance(data, dict) and isinstance(data.get("address"), str):
            return data
    return None


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    else:
        rest = []
    parser = argparse.ArgumentParser(prog="python -m pilotkit_ray.node")
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--head-file", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--head", action="store_true")
    parser.add_argument("--host")
    parser.add_argument("--dashboard", action="store_true")
    return parser.parse_args(argv), rest


def main(argv: list[str] | None = None) -> int:
    args, ray_options = parse(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-c", RAY, "start", "--block", *ray_options]
    ports = iter(free_ports(len(PORT_OPTIONS) + 3))
    for option in PORT_OPTIONS:
        command += [option, str(next(ports))]
    info: dict[str, object] = {"pid": os.getpid(), "host": socket.gethostname()}
    if args.head:
        ip = args.host or own_address()
        gcs, client = next(ports), next(ports)
        command += ["--head", "--node-ip-address", ip, "--port", str(gcs)]
        command += ["--ray-client-server-port", str(client)]
        if args.dashboard:
            dashboard = next(ports)
            command += ["--include-dashboard", "true", "--dashboard-host", ip]
            command += ["--dashboard-port", str(dashboard)]
            info["dashboard_port"] = dashboard
        else:
            command += ["--include-dashboard", "false"]
        info.update(ip=ip, address=f"{ip}:{gcs}", client_port=client)
    else:
        head = wait_for_head(args.head_file, args.timeout)
        if head is None:
            print(f"pilotkit-ray: no Ray head within {args.timeout:g}s ({args.head_file})", file=sys.stderr)
            return 1
        command += ["--address", str(head["address"])]
        info["address"] = head["address"]
    return run(command, args, info)


def run(command: list[str], args: argparse.Namespace, info: dict[str, object]) -> int:
    """Run ``ray start --block``, copy its output to stderr, announce it once started;
    on a signal stop it, and whatever it started on this node."""
    print("pilotkit-ray:", " ".join(command), file=sys.stderr, flush=True)
    mark = f"{os.getpid()}-{time.time_ns()}"
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, NODE_MARK: mark},
    )
    stopped_at: float | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopped_at
        if stopped_at is None:
            stopped_at = time.monotonic()
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)

    def copy_output() -> None:
        assert child.stdout is not None
        announced = False
        for line in child.stdout:
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
            if not announced and STARTED.encode() in line and stopped_at is None:
                announced = True
                if args.head:
                    write_json(args.head_file, info)  # if the port check has not yet
                write_json(args.ready_file, {**info, "started": time.time()})

    threading.Thread(target=copy_output, daemon=True).start()
    if args.head:
        threading.Thread(target=announce_head, args=(args.head_file, info, child), daemon=True).start()
    while child.poll() is None:
        if stopped_at is not None and time.monotonic() - stopped_at > STOP_TIMEOUT:
            print(f"pilotkit-ray: Ray did not stop within {STOP_TIMEOUT:g}s: killing it", file=sys.stderr)
            kill_marked(mark)
        time.sleep(0.05)
    if stopped_at is None:
        return child.returncode
    kill_marked(mark)  # anything of this node's Ray that outlived ``ray start``
    remove_temp_dir(command)
    return 0


def announce_head(path: Path, info: dict[str, object], child: subprocess.Popen[bytes]) -> None:
    """Write the head's file as soon as its GCS answers, so that worker nodes join
    while the head starts the rest of its processes."""
    host, _, port = str(info["address"]).rpartition(":")
    while child.poll() is None:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        if not path.exists():
            write_json(path, info)
        return


def kill_marked(mark: str) -> None:
    """SIGKILL every process of this node whose environment carries ``mark`` (Ray's
    processes inherit it, even once re-parented)."""
    needle = f"{NODE_MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def remove_temp_dir(command: list[str]) -> None:
    """After Ray was stopped on purpose: remove its temporary directory on this node
    (kept when Ray failed, for its logs)."""
    if "--temp-dir" not in command:
        return
    path = Path(command[command.index("--temp-dir") + 1])
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the pilot's directory, once every node's is gone


if __name__ == "__main__":
    sys.exit(main())
