"""The per-task wrapper: write a task's bundle, then become ``runc run``.

``OciRuntime.wrap()`` returns::

    python -I -S .../pilotkit_oci/run.py --runc RUNC --root ROOT --bundles DIR \\
        --config CONFIG_JSON [-- RUNC_RUN_ARGS...]

where CONFIG_JSON is the task's complete ``config.json``. Run, this

1. writes CONFIG_JSON to ``DIR/<id>/config.json``, ``<id>`` a new unique container id;
2. forks a janitor, in a session of its own, that waits for this process to end and
   then removes the bundle and, should runc have been killed, the container
   (``runc delete --force``);
3. ``exec``\\s ``runc --root ROOT run [RUNC_RUN_ARGS] --bundle DIR/<id> <id>`` (RUNC is
   looked up on ``PATH`` when it is a bare name).

So the wrapper *is* runc: its exit status is the task's (128+N when signal N ended it),
and a signal sent to it is forwarded by runc to the task. The task runs in a session of
its own, so a signal sent to the wrapper's process group reaches it once, through runc.

It runs once per task, so it is kept cheap: started as a file with ``-I -S`` (not
``-m``, which would import pilotkit), it imports nothing but ``os`` and ``sys``, and
never parses JSON.
"""

from __future__ import annotations

import os
import sys

USAGE = "usage: run.py --runc RUNC --root ROOT --bundles DIR --config JSON [-- RUNC_RUN_ARGS...]"
KEYS = ("--runc", "--root", "--bundles", "--config")


def parse_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """The four ``--key value`` pairs, and what follows ``--``."""
    head, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    opts = dict(zip(head[::2], head[1::2], strict=False))
    if len(head) != 2 * len(KEYS) or set(opts) != set(KEYS):
        raise SystemExit(USAGE)
    return opts, extra


def write_bundle(bundles: str, config: str) -> tuple[str, str]:
    """Write ``config`` in a new bundle directory; returns the container id and the bundle."""
    cid = f"pk-{os.getpid()}-{os.urandom(4).hex()}"
    os.makedirs(bundles, exist_ok=True)
    bundle = os.path.join(bundles, cid)
    os.mkdir(bundle)
    with open(os.path.join(bundle, "config.json"), "w") as stream:
        stream.write(config)
    return cid, bundle


def spawn_janitor(runc: str, root: str, cid: str, bundle: str) -> None:
    """Fork a process that cleans up once this one (runc, after exec) has ended."""
    parent = os.getpid()
    try:
        pidfd: int | None = os.pidfd_open(parent)
    except (AttributeError, OSError):  # Linux < 5.3: watch the parent pid instead
        pidfd = None
    if os.fork() != 0:
        if pidfd is not None:
            os.close(pidfd)
        return
    try:
        detach(pidfd)
        wait_for_exit(pidfd, parent)
        clean_up(runc, root, cid, bundle)
    finally:
        os._exit(0)


def detach(keep: int | None) -> None:
    """Leave the task's session and stdio: no signal to its group, no pipe held open."""
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if keep is None:
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    else:
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))


def wait_for_exit(pidfd: int | None, parent: int) -> None:
    if pidfd is not None:
        import select

        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll()
        return
    import time

    while os.getppid() == parent:
        time.sleep(0.1)


def clean_up(runc: str, root: str, cid: str, bundle: str) -> None:
    """Delete the container if runc left it behind (runc was killed), then the bundle."""
    if os.path.exists(os.path.join(root, cid)):
        import subprocess

        argv = [runc, "--root", root, "delete", "--force", cid]
        subprocess.run(argv, stdin=0, stdout=1, stderr=2, timeout=60, check=False)
    for name in os.listdir(bundle):
        os.unlink(os.path.join(bundle, name))
    os.rmdir(bundle)


def main(argv: list[str] | None = None) -> None:
    opts, run_args = parse_args(sys.argv[1:] if argv is None else argv)
    runc, root = opts["--runc"], opts["--root"]
    cid, bundle = write_bundle(opts["--bundles"], opts["--config"])
    spawn_janitor(runc, root, cid, bundle)
    try:
        os.execvp(runc, [runc, "--root", root, "run", *run_args, "--bundle", bundle, cid])
    except OSError as exc:
        sys.stderr.write(f"pilotkit-oci: cannot run {runc}: {exc.strerror}\n")
        raise SystemExit(127) from None


if __name__ == "__main__":
    main()
