"""The per-task wrapper: write a task's bundle, then become ``runc run``.

``wrap()`` returns ``python -I -S .../run.py --bundle-base DIR --task JSON``. Run, this:

1. reads the base ``config.json`` and ``pilotkit.json`` that ``prepare`` wrote in DIR,
   merges the task's overlay (argv, env, cwd, binds...) into the config and writes it to
   a fresh bundle directory named after a unique container id;
2. forks a janitor, in its own session, that waits for this process to end and then
   removes the bundle and, should runc itself have been killed, the container
   (``runc delete --force``);
3. ``exec``\\s ``runc --root ROOT run --bundle BUNDLE ID`` in its own place.

So the wrapper *is* runc: its exit status is the task's (128+N when a signal N ended
it), and a signal sent to it is forwarded by runc to the container's process. The
container's process runs in a session of its own, so a signal sent to the wrapper's
process group reaches the task once, through runc.

Only the standard library is used, and nothing is imported that the happy path does not
need: the wrapper runs once per task and its start-up time is overhead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

META = "pilotkit.json"
"""Next to the base config: ``runc`` (path), ``root``, ``bundles``, ``run_args``."""


def apply_overlay(config: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """Merge a task overlay (see :func:`pilotkit_oci.config.task_overlay`) into ``config``."""
    process = config["process"]
    process["args"] = list(task["args"])
    if task.get("env"):
        env = dict(item.split("=", 1) for item in process.get("env", []))
        env.update(task["env"])
        process["env"] = [f"{key}={value}" for key, value in env.items()]
    if task.get("cwd"):
        process["cwd"] = task["cwd"]
    config["mounts"] = [*config.get("mounts", []), *task.get("mounts", [])]
    drop = set(task.get("drop_namespaces", ()))
    if drop:
        linux = config["linux"]
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] not in drop]
    for stage, hooks in task.get("hooks", {}).items():
        config.setdefault("hooks", {}).setdefault(stage, []).extend(hooks)
    return config


def write_bundle(base: Path, task: dict[str, Any]) -> tuple[dict[str, Any], str, Path]:
    """Write the task's bundle; returns pilotkit.json's content, the container id, the bundle."""
    meta = json.loads((base / META).read_text())
    config = apply_overlay(json.loads((base / "config.json").read_text()), task)
    cid = f"pk-{os.getpid()}-{os.urandom(4).hex()}"
    bundle = Path(meta["bundles"]) / cid
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(config))
    return meta, cid, bundle


def runc_argv(meta: dict[str, Any], cid: str, bundle: Path) -> list[str]:
    return [
        meta["runc"],
        "--root",
        meta["root"],
        "run",
        *meta.get("run_args", []),
        "--bundle",
        str(bundle),
        cid,
    ]


def spawn_janitor(meta: dict[str, Any], cid: str, bundle: Path) -> None:
    """Fork a process that cleans up once this one (runc, after exec) has ended."""
    pidfd = os.pidfd_open(os.getpid())
    if os.fork() != 0:
        os.close(pidfd)
        return
    try:
        janitor(pidfd, meta, cid, bundle)
    finally:
        os._exit(0)


def janitor(pidfd: int, meta: dict[str, Any], cid: str, bundle: Path) -> None:
    import select
    import shutil
    import signal
    import subprocess

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, pidfd)
    os.closerange(pidfd + 1, os.sysconf("SC_OPEN_MAX"))
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.poll()
    if (Path(meta["root"]) / cid).exists():
        argv = [meta["runc"], "--root", meta["root"], "delete", "--force", cid]
        subprocess.run(argv, stdin=0, stdout=1, stderr=2, timeout=60, check=False)
    shutil.rmtree(bundle, ignore_errors=True)


def parse_args(argv: list[str]) -> tuple[Path, dict[str, Any]]:
    """``--bundle-base DIR --task JSON``."""
    opts = dict(zip(argv[::2], argv[1::2], strict=False))
    if len(argv) != 4 or set(opts) != {"--bundle-base", "--task"}:
        raise SystemExit("usage: run.py --bundle-base DIR --task JSON")
    return Path(opts["--bundle-base"]), json.loads(opts["--task"])


def main(argv: list[str] | None = None) -> None:
    base, task = parse_args(sys.argv[1:] if argv is None else argv)
    meta, cid, bundle = write_bundle(base, task)
    spawn_janitor(meta, cid, bundle)
    command = runc_argv(meta, cid, bundle)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
