"""``pilotkit attach``: come back to a batch pilot that ``pilotkit run`` let go of.

``pilotkit run`` writes ``attach.json`` in the run directory once its batch job runs
(pilot id, job id, spec, profile, its own pid). When its terminal goes away (SIGHUP) it
*detaches*: the pilot stays in the allocation, whose node agents keep running their
tasks and keep their results, and ``run`` exits saying how to come back. ``pilotkit
attach WORKDIR`` re-attaches to the job: the agents connect to it, hand over what they
ran meanwhile, and the scan goes on in this terminal, every result recorded once. A
client that is still attached (``pilotkit run --detach`` in the background) is asked to
let go first (SIGHUP).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import msgspec
import psutil

from ..errors import PilotkitError
from ..vocab import ATTACH_FILE

TAKE_OVER_WAIT = 30.0
"""Seconds an attached client gets to let go of the pilot."""


class AttachRecord(msgspec.Struct, omit_defaults=True):
    """What ``pilotkit attach`` needs to come back to a pilot (``attach.json``)."""

    pilot: str
    job_id: str
    spec: str
    """The spec file the pilot was started from (absolute)."""
    profile: str | None = None
    client_pid: int = 0
    """The process attached to the pilot now (``pilotkit run`` or ``attach``)."""
    client_started: float = 0.0
    """That process's start time (psutil), so a reused pid is not taken for it."""
    detached: str | None = None
    """When and why the last client let go."""


def write_record(workdir: Path, record: AttachRecord) -> None:
    path = workdir / ATTACH_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgspec.json.encode(record) + b"\n")
    os.replace(tmp, path)


def this_client(record: AttachRecord) -> AttachRecord:
    """``record`` naming this process as the attached client."""
    return msgspec.structs.replace(
        record, client_pid=os.getpid(), client_started=psutil.Process().create_time(), detached=None
    )


def find_workdir(target: str) -> Path:
    """The run directory ``target`` names: a directory with ``attach.json``, or a pilot
    id under ``./pilotkit-runs``."""
    for candidate in (Path(target), Path("pilotkit-runs") / target):
        if (candidate / ATTACH_FILE).is_file():
            return candidate.absolute()
    also = f" (nor in pilotkit-runs/{target})" if "/" not in target else ""
    raise PilotkitError(
        f"{target}: no {ATTACH_FILE} there{also}: not the run directory of a batch pilot started by pilotkit run"
    )


def read_record(workdir: Path) -> AttachRecord:
    path = workdir / ATTACH_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=AttachRecord)
    except OSError as exc:
        raise PilotkitError(f"{path}: {exc.strerror or exc}") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PilotkitError(f"{path}: not an attach record: {exc}") from None


def take_over(record: AttachRecord) -> bool:
    """Ask the client attached to the pilot now, if it lives, to let go (SIGHUP) and
    wait until it has; True when there was one."""
    pid = record.client_pid
    if not pid or pid == os.getpid():
        return False
    try:
        proc = psutil.Process(pid)
        if record.client_started and abs(proc.create_time() - record.client_started) > 1.0:
            return False  # the pid was reused
        proc.send_signal(signal.SIGHUP)
    except psutil.Error:
        return False
    deadline = time.monotonic() + TAKE_OVER_WAIT
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return True
        if not psutil.pid_exists(pid):
            return True
        time.sleep(0.1)
    raise PilotkitError(f"the client attached to pilot {record.pilot} (pid {pid}) did not let go within "
                        f"{TAKE_OVER_WAIT:g}s")  # fmt: skip
