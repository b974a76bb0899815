"""A fake PBS / LSF / HTCondor on this machine, for the providers' end-to-end tests.

No PBS server, LSF cluster or HTCondor pool can run here, so this program stands in for
their commands: ``qsub qstat qdel pbsdsh``, ``bsub bjobs bkill blaunch`` and
``condor_submit condor_q condor_history condor_rm`` (the test puts small wrappers by
those names on PATH; the name picks the command). Submitting really runs the job: a
detached runner (``fakebatch.py run ID``) starts the job script (or HTCondor's
executable) in the background with the batch system's environment (``PBS_NODEFILE``,
``LSB_MCPU_HOSTS``...) naming fake hosts ``fake1..fakeN``; ``pbsdsh``/``blaunch`` run
their command here. The runner enforces the walltime (and LSF's ``-wa``/``-wt``
warning), and a delete (qdel, bkill, condor_rm) or the walltime ends the job as the
system would: TERM to every process of the job, KILL after a delay. Status commands
answer from a state file per job (``$FAKEBATCH_STATE/jobs``), in each system's output
format (the one the golden files show).

Refusals: a queue named ``nope`` (PBS, LSF) and the accounting group ``nope`` (HTCondor).
Standard library and psutil only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

KILL_DELAY = 2.0
"""Seconds between TERM and KILL when a job is ended."""


# --------------------------------------------------------------------------- state


def state_dir() -> Path:
    return Path(os.environ["FAKEBATCH_STATE"])


@contextlib.contextmanager
def locked() -> Iterator[None]:
    root = state_dir()
    (root / "jobs").mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _path(num: int) -> Path:
    return state_dir() / "jobs" / f"{num}.json"


def load(num: int) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(_path(num).read_text())
    except (OSError, ValueError):
        return None
    return data


def save(record: dict[str, Any]) -> None:
    path = _path(record["num"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def update(num: int, **changes: Any) -> dict[str, Any]:
    with locked():
        record = load(num)
        assert record is not None
        record.update(changes)
        save(record)
        return record


def new_job(system: str, **fields: Any) -> dict[str, Any]:
    with locked():
        counter = state_dir() / "next"
        num = int(counter.read_text()) if counter.exists() else 100
        counter.write_text(str(num + 1))
        record = {"system": system, "num": num, "state": "queued", "killed": None, "pid": None, "warn": None}
        record.update(fields)
        save(record)
    return record


def spawn_runner(record: dict[str, Any]) -> None:
    subprocess.Popen(
        [sys.executable, __file__, "run", str(record["num"])],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def number(job_id: str) -> int | None:
    match = re.match(r"^(\d+)", job_id)
    return int(match.group(1)) if match else None


def hms(seconds: float) -> str:
    total = max(0, math.ceil(seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def elapsed(record: dict[str, Any]) -> float:
    if record.get("start") is None:
        return 0.0
    return float((record.get("end") or time.time()) - record["start"])


def fail(message: str, code: int = 1, *, stdout: bool = False) -> None:
    print(message, file=sys.stdout if stdout else sys.stderr)
    raise SystemExit(code)


def hosts(count: int) -> list[str]:
    return [f"fake{i}" for i in range(1, count + 1)]


def directives(script: str, prefix: str) -> list[list[str]]:
    return [shlex.split(line[len(prefix) :]) for line in script.splitlines() if line.startswith(prefix + " ")]


def exec_after(argv: list[str], skip: int) -> None:
    """Run the command that follows the launcher's own arguments (pbsdsh, blaunch)."""
    command = argv[skip:]
    os.execvp(command[0], command)


# --------------------------------------------------------------------------- PBS


def qsub(argv: list[str]) -> None:
    script = Path(argv[0]).read_text() if argv else sys.stdin.read()
    fields: dict[str, Any] = {"name": "job", "nodes": 1, "walltime": None, "out": None, "err": None}
    for words in directives(script, "#PBS"):
        option, value = words[0], words[1] if len(words) > 1 else ""
        if option == "-q" and value == "nope":
            fail("qsub: Unknown queue", 170)
        if option == "-N":
            fields["name"] = value
        elif option == "-o":
            fields["out"] = value
        elif option == "-e":
            fields["err"] = value
        elif option == "-l" and value.startswith("select="):
            fields["nodes"] = int(value.split("=", 1)[1].split(":", 1)[0])
        elif option == "-l" and value.startswith("walltime="):
            h, m, s = (int(x) for x in value.split("=", 1)[1].split(":"))
            fields["walltime"] = h * 3600 + m * 60 + s
    record = new_job("pbs", **fields, cwd=os.getcwd(), script=script)
    job_id = f"{record['num']}.fakepbs"
    update(record["num"], id=job_id, hosts=hosts(fields["nodes"]))
    spawn_runner(record)
    print(job_id)


def qstat(argv: list[str]) -> None:
    job_id = argv[-1]
    num = number(job_id)
    record = load(num) if num is not None else None
    if record is None or record["system"] != "pbs":
        fail(f"qstat: Unknown Job Id {job_id}", 153)
    assert record is not None
    attrs: dict[str, Any] = {
        "Job_Name": record["name"],
        "queue": "workq",
        "Resource_List": {"walltime": hms(record["walltime"] or 0), "nodect": len(record["hosts"])},
        "substate": 42,
    }
    if record["state"] == "queued":
        attrs["job_state"] = "Q"
    else:
        attrs["exec_host"] = "+".join(f"{h}/0" for h in record["hosts"])
        attrs["resources_used"] = {"walltime": hms(elapsed(record))}
        if record["state"] == "running":
            attrs["job_state"] = "E" if record["killed"] else "R"
        else:
            attrs["job_state"] = "F"
            code = record["exit_code"]
            status = 256 + record["signal"] if record.get("signal") else code
            if record["killed"] == "walltime":
                status = -29
            attrs["Exit_status"] = status
            attrs["substate"] = 91 if record["killed"] == "deleted" else 92
    print(
        json.dumps({"pbs_version": "fake", "pbs_server": "fakepbs", "Jobs": {record["id"]: attrs}}, indent=4)
    )


def qdel(argv: list[str]) -> None:
    job_id = argv[-1]
    num = number(job_id)
    record = load(num) if num is not None else None
    if record is None or record["system"] != "pbs" or record["state"] == "ended":
        fail(f"qdel: Unknown Job Id {job_id}", 153)
    assert num is not None
    update(num, killed="deleted")


def pbsdsh(argv: list[str]) -> None:
    exec_after(argv, argv.index("--") + 1)


# --------------------------------------------------------------------------- LSF


def bsub(argv: list[str]) -> None:
    script = sys.stdin.read()
    fields: dict[str, Any] = {"name": "job", "walltime": None, "warn": None, "out": None, "err": None}
    slots, ptile, nnodes, cwd, warn_action = 1, 1, None, os.getcwd(), None
    for words in directives(script, "#BSUB"):
        option, value = words[0], words[1] if len(words) > 1 else ""
        if option == "-q" and value == "nope":
            fail("nope: No such queue. Job not submitted.", 255)
        if option == "-J":
            fields["name"] = value
        elif option == "-cwd":
            cwd = value
        elif option == "-o":
            fields["out"] = value
        elif option == "-e":
            fields["err"] = value
        elif option == "-n":
            slots = int(value)
        elif option == "-nnodes":
            nnodes = int(value)
        elif option == "-R" and value.startswith("span[ptile="):
            ptile = int(value[len("span[ptile=") : -1])
        elif option == "-W":
            fields["walltime"] = int(value) * 60
        elif option == "-wa":
            warn_action = value
        elif option == "-wt":
            fields["warn"] = int(value) * 60
    if warn_action != "USR1":
        fields["warn"] = None
    count = nnodes or max(1, slots // ptile)
    record = new_job("lsf", **fields, cwd=cwd, script=script)
    job_id = str(record["num"])
    for key in ("out", "err"):
        if fields[key]:
            fields[key] = fields[key].replace("%J", job_id)
    update(record["num"], id=job_id, hosts=hosts(count), slots=ptile, out=fields["out"], err=fields["err"])
    spawn_runner(record)
    print(f"Job <{job_id}> is submitted to queue <normal>.")


def bjobs(argv: list[str]) -> None:
    job_id = argv[-1]
    num = number(job_id)
    record = load(num) if num is not None else None
    if record is None or record["system"] != "lsf":
        print(
            json.dumps(
                {
                    "COMMAND": "bjobs",
                    "JOBS": 1,
                    "RECORDS": [{"JOBID": job_id, "ERROR": f"Job <{job_id}> is not found"}],
                }
            )
        )
        return
    fields = {"JOBID": record["id"], "STAT": "PEND", "EXIT_CODE": "", "EXIT_REASON": "", "EXEC_HOST": "",
              "PEND_REASON": "", "TIME_LEFT": ""}  # fmt: skip
    if record["state"] != "queued":
        fields["EXEC_HOST"] = ":".join(f"{record['slots']}*{h}" for h in record["hosts"])
    if record["state"] == "running":
        fields["STAT"] = "RUN"
        if record["walltime"]:
            left = max(0.0, record["walltime"] - elapsed(record))
            fields["TIME_LEFT"] = f"{int(left // 3600)}:{int(left % 3600 // 60):02d} L"
    elif record["state"] == "ended":
        code = 128 + record["signal"] if record.get("signal") else record["exit_code"]
        if record["killed"] == "deleted":
            fields.update(STAT="EXIT", EXIT_CODE=str(code), EXIT_REASON="TERM_OWNER: job killed by owner")
        elif record["killed"] == "walltime":
            reason = "TERM_RUNLIMIT: job killed after reaching LSF run time limit"
            fields.update(STAT="EXIT", EXIT_CODE=str(code), EXIT_REASON=reason)
        elif code:
            fields.update(STAT="EXIT", EXIT_CODE=str(code))
        else:
            fields.update(STAT="DONE", EXIT_CODE="0")
    print(json.dumps({"COMMAND": "bjobs", "JOBS": 1, "RECORDS": [fields]}, indent=2))


def bkill(argv: list[str]) -> None:
    job_id = argv[-1]
    num = number(job_id)
    record = load(num) if num is not None else None
    if record is None or record["system"] != "lsf":
        fail(f"Job <{job_id}>: No matching job found", 255)
    assert record is not None and num is not None
    if record["state"] == "ended":
        fail(f"Job <{job_id}>: Job has already finished", 255)
    update(num, killed="deleted")
    print(f"Job <{job_id}> is being terminated")


def blaunch(argv: list[str]) -> None:
    exec_after(argv, 1)


# --------------------------------------------------------------------------- HTCondor


def unquote_args(text: str) -> list[str]:
    """HTCondor's double-quoted ``arguments`` syntax back into words."""
    text = text.strip()
    assert text.startswith('"') and text.endswith('"'), text
    body = text[1:-1].replace('""', '"')
    words: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == " ":
            i += 1
            continue
        word = ""
        while i < len(body) and body[i] != " ":
            if body[i] == "'":
                i += 1
                while True:
                    if body[i] == "'" and body[i + 1 : i + 2] == "'":
                        word += "'"
                        i += 2
                    elif body[i] == "'":
                        i += 1
                        break
                    else:
                        word += body[i]
                        i += 1
            else:
                word += body[i]
                i += 1
        words.append(word)
    return words


def condor_submit(argv: list[str]) -> None:
    commands: dict[str, str] = {}
    for line in sys.stdin.read().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            commands[key.strip().lower()] = value.strip().replace("$(DOLLAR)", "$")
    if commands.get("accounting_group") == "nope":
        fail("\nERROR: Submit requirement ValidGroup not met: no accounting group 'nope'\n")
    env = dict(word.split("=", 1) for word in unquote_args(commands.get("environment", '""')))
    count = int(commands.get("machine_count", "1"))
    duration = commands.get("allowed_execute_duration")
    record = new_job(
        "htcondor",
        name="job",
        argv=[commands["executable"], *unquote_args(commands.get("arguments", '""'))],
        cwd=commands.get("initialdir", os.getcwd()),
        out=commands.get("output"),
        err=commands.get("error"),
        walltime=int(duration) if duration else None,
        env=env,
        warn=None,
    )
    job_id = f"{record['num']}.0"
    update(record["num"], id=job_id, hosts=hosts(count), in_queue=True)
    spawn_runner(record)
    print(f"{job_id} - {job_id}")


def _ad(record: dict[str, Any]) -> dict[str, Any]:
    ad: dict[str, Any] = {"ClusterId": record["num"], "ProcId": 0, "JobStatus": 1}
    if record["walltime"]:
        ad["AllowedExecuteDuration"] = record["walltime"]
    if record["state"] != "queued":
        ad["RemoteHost"] = f"slot1@{record['hosts'][0]}"
        ad["JobCurrentStartDate"] = int(record["start"])
        ad["JobStatus"] = 2
    if record["killed"] == "deleted":
        ad.update(JobStatus=3, RemoveReason="via condor_rm (by user fake)")
    elif record["killed"] == "walltime":
        ad.update(
            JobStatus=5,
            HoldReasonCode=47,
            HoldReason="The job exceeded allowed execute duration of 0+00:01:00",
        )
    elif record["state"] == "ended":
        ad["JobStatus"] = 4
        if record.get("signal"):
            ad.update(ExitBySignal=True, ExitSignal=record["signal"])
        else:
            ad.update(ExitBySignal=False, ExitCode=record["exit_code"])
    return ad


def _condor_record(argv: list[str]) -> dict[str, Any] | None:
    num = number(argv[-1])
    record = load(num) if num is not None else None
    return record if record is not None and record["system"] == "htcondor" else None


def condor_q(argv: list[str]) -> None:
    record = _condor_record(argv)
    if record is not None and record["in_queue"]:
        print(json.dumps([_ad(record)], indent=2))


def condor_history(argv: list[str]) -> None:
    record = _condor_record(argv)
    if record is not None and not record["in_queue"]:
        print(json.dumps([_ad(record)], indent=2))


def condor_rm(argv: list[str]) -> None:
    record = _condor_record(argv)
    if record is None or not record["in_queue"]:
        fail(
            f"Couldn't find/remove all jobs matching constraint (ClusterId=={number(argv[-1])} && ProcId==0)"
        )
    assert record is not None
    if record["state"] == "ended":  # held at its time limit: leaves the queue now
        update(record["num"], in_queue=False)
    else:
        update(record["num"], killed=record["killed"] or "deleted")
    print(f"Job {record['id']} marked for removal")


# --------------------------------------------------------------------------- the runner


def job_environment(record: dict[str, Any]) -> dict[str, str]:
    names = " ".join(record["hosts"])
    if record["system"] == "htcondor":
        return {"PATH": "/usr/bin:/bin", "_CONDOR_JOB_AD": "", **record["env"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PBS_", "LSB_"))}
    if record["system"] == "pbs":
        nodefile = state_dir() / f"{record['num']}.nodes"
        nodefile.write_text("".join(f"{h}\n" for h in record["hosts"]))
        env.update(PBS_JOBID=record["id"], PBS_NODEFILE=str(nodefile), PBS_O_WORKDIR=record["cwd"])
    else:
        mcpu = " ".join(f"{h} {record['slots']}" for h in record["hosts"])
        env.update(LSB_JOBID=record["id"], LSB_HOSTS=names, LSB_MCPU_HOSTS=mcpu)
    return env


def kill_tree(pid: int, sig: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def run(num: int) -> None:
    record = update(num, state="running", start=time.time())
    if record["system"] == "htcondor":
        argv = record["argv"]
    else:
        script = state_dir() / f"{num}.sh"
        script.write_text(record["script"])
        argv = ["/bin/bash", str(script)]
    out = open(record["out"] or os.devnull, "ab")
    err = open(record["err"] or os.devnull, "ab")
    child = subprocess.Popen(
        argv, cwd=record["cwd"], env=job_environment(record), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
        start_new_session=True,
    )  # fmt: skip
    update(num, pid=child.pid)
    warned = False
    killing_since: float | None = None
    while child.poll() is None:
        time.sleep(0.1)
        current = load(num) or record
        spent = time.time() - current["start"]
        if current["warn"] and not warned and spent >= current["walltime"] - current["warn"]:
            warned = True
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGUSR1)
        if current["walltime"] and spent >= current["walltime"] and not current["killed"]:
            current = update(num, killed="walltime")
        if current["killed"] and killing_since is None:
            killing_since = time.time()
            kill_tree(child.pid, signal.SIGTERM)
        elif killing_since is not None and time.time() - killing_since > KILL_DELAY:
            kill_tree(child.pid, signal.SIGKILL)
    code = child.returncode
    kill_tree(child.pid, signal.SIGKILL)  # leftovers, as a batch system's cgroup would
    record = load(num) or record
    in_queue = record["system"] == "htcondor" and record["killed"] == "walltime"
    update(num, state="ended", end=time.time(), exit_code=max(code, 0), signal=-code if code < 0 else 0,
           in_queue=in_queue)  # fmt: skip


def cleanup() -> None:
    """Kill what is left of every job (the test's teardown)."""
    root = state_dir() / "jobs"
    for path in root.glob("*.json") if root.exists() else []:
        record = json.loads(path.read_text())
        if record.get("pid") and record["state"] != "ended":
            kill_tree(record["pid"], signal.SIGKILL)


COMMANDS = {
    "qsub": qsub, "qstat": qstat, "qdel": qdel, "pbsdsh": pbsdsh,
    "bsub": bsub, "bjobs": bjobs, "bkill": bkill, "blaunch": blaunch,
    "condor_submit": condor_submit, "condor_q": condor_q, "condor_history": condor_history,
    "condor_rm": condor_rm,
}  # fmt: skip


def main(argv: list[str]) -> None:
    name, rest = argv[0], argv[1:]
    if name == "run":
        run(int(rest[0]))
    elif name == "cleanup":
        cleanup()
    else:
        COMMANDS[name](rest)


if __name__ == "__main__":
    main(sys.argv[1:])
