"""Batch mode: apply the manifests, follow every Job to its end, keep its pods' logs and
its exit code.

Each Job becomes a task of the pilot (``job-<name>``, pinned to the first node, using
no cores): the task waits for the pilot to record the Job's end, prints the pods' logs
and exits with the Job's exit code, so ``results.jsonl`` and ``tasks/job-<name>/`` hold
the Job's result and output like any other task's. Each pod's own log is kept in
``tasks/job-<name>/pods/<pod>.log``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotkit.api import PilotkitError, Task, TaskStatus, parse_duration, task_dir

from .cluster import K3sCluster
from .commands import JOB_GROUP, follow_argv, job_task_id
from .kube import JobState, ObjectRef, PodState, exit_code_of


@dataclass
class FollowedJob:
    ref: ObjectRef
    task_id: str
    directory: Path
    state: JobState | None = None
    exit_code: int | None = None

    @property
    def done_file(self) -> Path:
        return self.directory / "pods" / "exit-code"

    @property
    def log_file(self) -> Path:
        return self.directory / "pods" / "all.log"


async def apply_all(cluster: K3sCluster, objects: list[dict[str, Any]]) -> list[ObjectRef]:
    assert cluster.api is not None
    refs = []
    for obj in objects:
        ref = await cluster.api.apply(obj, cluster.options.namespace)
        refs.append(ref)
    kinds = ", ".join(f"{r.kind}/{r.name}" for r in refs)
    cluster.say("info", f"applied {len(refs)} object(s): {kinds}")
    return refs


async def run_jobs(cluster: K3sCluster, refs: list[ObjectRef]) -> list[FollowedJob]:
    """Follow every Job in ``refs`` until it ends, the pilot drains or ``job_timeout``."""
    assert cluster.api is not None
    jobs = [
        FollowedJob(
            r,
            job_task_id(r.namespace or "default", r.name),
            task_dir(cluster.workdir, job_task_id(r.namespace or "default", r.name)),
        )
        for r in refs
        if r.kind == "Job" and r.api_version.startswith("batch/")
    ]
    if not jobs:
        cluster.say("warn", "the manifests hold no Job: nothing to wait for")
        return []
    for job in jobs:
        await asyncio.to_thread((job.directory / "pods").mkdir, parents=True, exist_ok=True)
    cluster.ctx.pool.add_group(
        JOB_GROUP,
        [
            Task(
                id=j.task_id,
                group=JOB_GROUP,
                argv=follow_argv(j.done_file, j.log_file),
                cores=0,
                pin=cluster.head.name,
            )
            for j in jobs
        ],
    )
    timeout = parse_duration(cluster.options.job_timeout) if cluster.options.job_timeout else None
    deadline = None if timeout is None else time.monotonic() + timeout
    while any(j.exit_code is None for j in jobs):
        if cluster.ctx.draining.is_set():
            break
        if deadline is not None and time.monotonic() > deadline:
            cluster.say(
                "error", f"the Jobs ran past job_timeout ({cluster.options.job_timeout}): stopping them"
            )
            break
        for job in jobs:
            if job.exit_code is None:
                await _look(cluster, job)
        await asyncio.sleep(cluster.poll)
    unfinished = [j for j in jobs if j.exit_code is None]
    if unfinished:
        await cluster.drain_workloads()
        for job in unfinished:
            cluster.ctx.pool.terminate(job.task_id)
    await _wait_tasks(cluster, [j.task_id for j in jobs])
    return jobs


async def _look(cluster: K3sCluster, job: FollowedJob) -> None:
    assert cluster.api is not None
    namespace = job.ref.namespace or "default"
    try:
        state = await cluster.api.job(namespace, job.ref.name)
    except (PilotkitError, OSError) as exc:
        cluster.say("warn", f"cannot read Job {job.ref.name}: {exc}")
        return
    job.state = state
    if not state.finished:
        return
    try:
        pods = await cluster.api.job_pods(namespace, job.ref.name)
    except (PilotkitError, OSError) as exc:
        cluster.say("warn", f"cannot list the pods of Job {job.ref.name}: {exc}")
        return  # asked again next round
    logs = []
    for pod in pods:
        try:
            text = await cluster.api.pod_log(namespace, pod.name)
        except (PilotkitError, OSError) as exc:
            text = f"(no log: {exc})\n"
        logs.append((pod, text))
    code = exit_code_of(pods, state)
    await asyncio.to_thread(_store, job, logs, code, state)
    job.exit_code = code
    how = f"failed ({state.reason or 'failed'}), exit code {code}" if state.failed else "completed"
    cluster.say(
        "error" if state.failed else "info", f"Job {job.ref.name} {how}; logs in {job.directory / 'pods'}"
    )


def _store(job: FollowedJob, logs: list[tuple[PodState, str]], code: int, state: JobState) -> None:
    pods_dir = job.directory / "pods"
    combined = []
    for pod, text in logs:
        (pods_dir / f"{pod.name}.log").write_text(text)
        if len(logs) > 1:
            combined.append(
                f"==> pod {pod.name} on {pod.node or '?'} ({pod.phase}, exit code {pod.exit_code}) <==\n"
            )
        combined.append(text if text.endswith("\n") or not text else text + "\n")
    if state.failed and state.reason:
        combined.append(f"Job {job.ref.name} failed: {state.reason}\n")
    job.log_file.write_text("".join(combined))
    tmp = job.done_file.with_name(".exit-code.tmp")
    tmp.write_text(f"{code}\n")
    tmp.replace(job.done_file)


async def _wait_tasks(cluster: K3sCluster, task_ids: list[str]) -> None:
    deadline = time.monotonic() + cluster.ctx.pool.grace + 10.0
    while time.monotonic() < deadline:
        if all(cluster.tasks[t].status not in (TaskStatus.QUEUED, TaskStatus.RUNNING) for t in task_ids):
            return
        await asyncio.sleep(0.1)
