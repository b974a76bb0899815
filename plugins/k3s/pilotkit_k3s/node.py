"""What runs on each node: ``python -m pilotkit_k3s.node --data-dir DIR --report FILE -- k3s ...``.

It starts k3s (the server or an agent) as its child and, when k3s ends or this process
is told to stop (SIGTERM or SIGINT from the pilot's task pool), stops k3s and removes
everything it left on the node:

- processes started from the data directory (containerd shims and the pods under them:
  k3s leaves containers running when it stops, by design);
- mounts under the data directory (deepest first);
- as root: the network interfaces k3s makes (``cni0``, ``flannel.1``, ...), its CNI and
  flannel state, ``/run/k3s``, and ``/etc/rancher`` when k3s created it;
- the data directory itself.

On a GPU node (``--nvidia-runtime``) it first writes k3s's containerd templates with the
NVIDIA runtime (:mod:`pilotkit_k3s.nvidia`), and refuses to start k3s without it.

What it removed, and anything it could not, goes to ``--report`` (JSON) for the pilot.
Exit status: k3s's own when it ended by itself, 0 when it was told to stop.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec

INTERFACES = ("cni0", "flannel.1", "flannel-v6.1", "flannel-wg", "flannel-wg-v6", "kube-ipvs0")
"""Network interfaces k3s (flannel, kube-proxy) creates on a node, as root."""
ROOT_STATE = ("/run/k3s", "/run/flannel", "/var/lib/cni/networks/cbr0")
"""State k3s keeps outside its data directory, as root."""
ETC_RANCHER = "/etc/rancher"
STOP_TIMEOUT = 20.0
"""Seconds k3s gets to stop after SIGTERM before SIGKILL."""


class CleanupReport(msgspec.Struct, omit_defaults=True):
    """What one node's cleanup did."""

    node: str
    data_dir: str
    exit_code: int | None = None
    """k3s's exit status (negative: the signal that ended it)."""
    stopped: bool = False
    """True when the pilot stopped it (not k3s ending by itself)."""
    killed: list[int] = []
    unmounted: list[str] = []
    interfaces: list[str] = []
    removed: list[str] = []
    left: list[str] = []
    """What could not be removed (empty: the node keeps nothing)."""


def processes_under(data_dir: str, exclude: set[int]) -> list[int]:
    """Processes whose executable or command line lies in ``data_dir``."""
    found = []
    prefix = data_dir.rstrip("/") + "/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].decode(errors="replace").startswith(prefix):
            found.append(int(entry.name))
    return found


def mounts_under(data_dir: str) -> list[str]:
    """Mount points in ``data_dir``, deepest first."""
    prefix = data_dir.rstrip("/")
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 1:
                point = fields[1].encode().decode("unicode_escape")
                if point == prefix or point.startswith(prefix + "/"):
                    out.append(point)
    return sorted(out, key=len, reverse=True)


def cleanup(report: CleanupReport, rootful: bool, made_etc: bool) -> None:
    """Remove what k3s left on this node; fill in ``report``."""
    data_dir = report.data_dir
    me = {os.getpid(), os.getppid()}
    for _ in range(3):  # a shim may start a child while the first ones die
        pids = processes_under(data_dir, me)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                report.killed.append(pid)
        time.sleep(0.2)
    for point in mounts_under(data_dir):
        done = subprocess.run(["umount", "-l", point], capture_output=True)
        if done.returncode == 0:
            report.unmounted.append(point)
    if rootful:
        ip = shutil.which("ip") or ""
        for name in INTERFACES if ip else ():
            if _has_link(ip, name):
                subprocess.run([ip, "link", "delete", name], capture_output=True)
                (report.left if _has_link(ip, name) else report.interfaces).append(name)
        for path in (*ROOT_STATE, *((ETC_RANCHER,) if made_etc else ())):
            _remove(Path(path), report)
    _remove(Path(data_dir), report)
    parent = Path(data_dir).parent
    if parent.name.startswith("pilotkit-k3s-"):  # the pilot's folder, once no node uses it
        with contextlib.suppress(OSError):
            parent.rmdir()
            report.removed.append(str(parent))


def _has_link(ip: str, name: str) -> bool:
    """Whether this network namespace has interface ``name`` (asked over netlink:
    ``/sys/class/net`` shows the namespace sysfs was mounted in, not necessarily ours)."""
    return subprocess.run([ip, "link", "show", name], capture_output=True).returncode == 0


def _remove(path: Path, report: CleanupReport) -> None:
    if not path.exists() and not path.is_symlink():
        return
    shutil.rmtree(path, ignore_errors=True)
    (report.left if path.exists() else report.removed).append(str(path))


def link_images(folder: Path, archives: list[Path]) -> None:
    """k3s imports every archive in ``<data-dir>/agent/images`` into containerd as it
    starts: link the pilot's archives there (no copy on the node)."""
    from .archives import link_name

    folder.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        link = folder / link_name(archive)
        link.unlink(missing_ok=True)
        link.symlink_to(archive)


def write_nvidia_templates(folder: Path, runtime: str) -> Path:
    """Write k3s's containerd templates with the NVIDIA runtime into ``folder``
    (``<data-dir>/agent/etc/containerd``); ``runtime``: a name on PATH or a path. Raises
    FileNotFoundError naming it when it is not there."""
    from .nvidia import containerd_templates

    found = shutil.which(runtime)
    if found is None:
        raise FileNotFoundError(
            f"no NVIDIA container runtime '{runtime}' on this GPU node (install nvidia-container-toolkit, "
            "set [app] nvidia_runtime to its path, or nvidia = false)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in containerd_templates(os.path.abspath(found)).items():
        (folder / name).write_text(text)
    return Path(found)


def write_report(path: Path, report: CleanupReport) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(msgspec.json.encode(report))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pilotkit_k3s.node")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--node", default=os.uname().nodename)
    parser.add_argument("--stop-timeout", type=float, default=STOP_TIMEOUT)
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="ARCHIVE",
        help="an image archive to link into k3s's agent/images (imported at start)",
    )
    parser.add_argument(
        "--nvidia-runtime",
        metavar="RUNTIME",
        help="add this NVIDIA container runtime to k3s's containerd (a GPU node)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no k3s command after --")
    rootful = os.geteuid() == 0
    made_etc = rootful and not Path(ETC_RANCHER).exists()
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    if args.preload:
        link_images(Path(args.data_dir) / "k3s" / "agent" / "images", [Path(p) for p in args.preload])
    report = CleanupReport(node=args.node, data_dir=args.data_dir)
    if args.nvidia_runtime:
        try:
            write_nvidia_templates(Path(args.data_dir) / "k3s" / "agent" / "etc" / "containerd", args.nvidia_runtime)
        except FileNotFoundError as exc:
            sys.stderr.write(f"{args.node}: {exc}\n")
            cleanup(report, rootful, made_etc)
            write_report(Path(args.report), report)
            return 2
    stop = {"asked": False}

    def asked(signum: int, frame: object) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGTERM, asked)
    signal.signal(signal.SIGINT, asked)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        sys.stderr.write(f"cannot start {command[0]}: {exc.strerror or exc}\n")
        cleanup(report, rootful, made_etc)
        write_report(Path(args.report), report)
        return 127
    while child.poll() is None and not stop["asked"]:
        time.sleep(0.1)
    report.stopped = stop["asked"]  # k3s may have had the pool's SIGTERM too, and ended first
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(args.stop_timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    report.exit_code = child.returncode
    cleanup(report, rootful, made_etc)
    write_report(Path(args.report), report)
    if report.left:
        sys.stderr.write(f"left on {args.node}: {', '.join(report.left)}\n")
    return 0 if report.stopped else (child.returncode if child.returncode >= 0 else 128 - child.returncode)


if __name__ == "__main__":
    sys.exit(main())
