"""A k3s cluster made of pilot tasks: the server pinned to the first node, an agent pinned
to every other one, each under the node wrapper (:mod:`pilotkit_k3s.node`) that removes
what k3s leaves when it stops.

Order: the pilot writes the join token (``<workdir>/k3s/token``), runs the preflight on
every node, starts the server, waits for the server's kubeconfig (written once its API
server listens), writes ``<workdir>/kubeconfig`` (pointing at the first node), then starts
the agents and waits, through the Kubernetes API, until every node is Ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from pilotkit.api import (
    AppContext,
    Log,
    PilotkitError,
    Task,
    TaskStatus,
    attempt_log,
    parse_duration,
)

from .commands import (
    CONNECTION_FILE,
    KUBECONFIG_FILE,
    SERVICE_GROUP,
    NodePlan,
    join_url,
    k3s_argv,
    node_argv,
    plan_nodes,
    preflight_argv,
    report_file,
    server_kubeconfig,
    state_dir,
    token_file,
)
from .kube import KubeApi
from .node import CleanupReport
from .options import K3sOptions

log = logging.getLogger("pilotkit.k3s")
ACTIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)
POLL = 0.1


class ClusterInfo(msgspec.Struct, omit_defaults=True):
    """``<workdir>/k3s.json``: where the API server is and how the cluster is."""

    pilot: str
    server: str
    """``https://<first node>:6443``."""
    kubeconfig: str
    state: str = "running"
    mode: str = "batch"
    nodes: list[str] = []
    rootless: bool = False
    updated: float = msgspec.field(default_factory=time.time)


def read_cluster_info(data: bytes, where: str) -> ClusterInfo:
    try:
        return msgspec.json.decode(data, type=ClusterInfo)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PilotkitError(f"{where}: not a k3s connection file: {exc}") from None


class K3sCluster:
    """Deploys, watches and removes the k3s cluster of one pilot."""

    def __init__(
        self,
        ctx: AppContext,
        options: K3sOptions,
        make_api: Callable[[Path], KubeApi],
        images: list[Path] | None = None,
    ) -> None:
        self.ctx = ctx
        self.options = options
        self.make_api = make_api
        self.pilot = ctx.pilot.pilot_id
        self.workdir = ctx.pilot.workdir
        self.head = ctx.nodes[0]
        self.python = options.python or sys.executable
        self.images = images or []
        self.rootless = options.rootless if options.rootless is not None else os.geteuid() != 0
        self.plans = plan_nodes(ctx.nodes, options, self.pilot)
        self.server = join_url(self.head, options.api_port)
        self.kubeconfig = self.workdir / KUBECONFIG_FILE
        self.api: KubeApi | None = None
        self.ready_timeout = parse_duration(options.ready_timeout)
        self.poll = parse_duration(options.poll_interval)
        self.stop_timeout = parse_duration(options.stop_timeout)
        self.grace = parse_duration(options.grace)
        self.started: list[NodePlan] = []
        self.drained = False
        self.gpu_nodes = {n.name: n for n in ctx.nodes if n.gpus}
        self.nvidia = bool(self.gpu_nodes) if options.nvidia is None else options.nvidia

    # ------------------------------------------------------------------ reporting

    def say(self, level: str, message: str) -> None:
        log.log(logging.WARNING if level == "warn" else logging.getLevelName(level.upper()), message)
        self.ctx.emit(Log(pilot=self.pilot, level=level, message=message, source="k3s"))

    @property
    def tasks(self) -> Any:
        return self.ctx.pool.tasks

    def _stderr_tail(self, task_id: str, stream: str = "err") -> str:
        task = self.tasks[task_id]
        path = attempt_log(self.workdir, task_id, max(task.attempts, 1), "out" if stream == "out" else "err")
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return ""
        return text.strip()[-2000:]

    async def _ended(self, task_id: str, what: str) -> PilotkitError:
        task = self.tasks[task_id]
        code = f", exit code {task.exit_code}" if task.exit_code is not None else ""
        tail = await asyncio.to_thread(self._stderr_tail, task_id)
        last = tail.splitlines()[-1] if tail else ""
        return PilotkitError(
            f"{what} stopped ({task.outcome or 'exited'}{code}); see {self.workdir / 'tasks' / task_id}"
            + (f": {last}" if last else "")
        )

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        """Preflight, server, agents, every node Ready, labels, kubeconfig."""
        started = time.monotonic()
        deadline = started + self.ready_timeout
        await asyncio.to_thread(self._prepare)
        if self.options.preflight:
            await self._preflight()
        server = self.plans[0]
        self._start([server])
        await self._wait_for_server(server, deadline)
        await asyncio.to_thread(self._write_kubeconfig)
        self._start(self.plans[1:])
        self.api = self.make_api(self.kubeconfig)
        await self._wait_ready(deadline)
        for plan in self.plans:
            await self.api.label_node(plan.node, plan.labels)
        await self._deploy_device_plugin()
        await asyncio.to_thread(self.publish, "running")
        mode = "rootless" if self.rootless else "rootful"
        self.say(
            "info",
            f"k3s cluster ready in {time.monotonic() - started:.1f}s ({mode}): server {self.server}, "
            f"{len(self.plans)} node(s) Ready; kubeconfig {self.kubeconfig}",
        )

    async def _deploy_device_plugin(self) -> None:
        """The RuntimeClass ``nvidia`` and a device plugin DaemonSet per GPU node."""
        if not self.nvidia:
            return
        if not self.gpu_nodes:
            self.say("warn", "nvidia = true, but pilotkit's NVML probe found no GPU on any node")
            return
        from .nvidia import device_plugin, mig_strategy, runtime_class

        assert self.api is not None
        await self.api.apply(runtime_class(self.pilot), "kube-system")
        for plan in self.plans:
            node = self.gpu_nodes.get(plan.node)
            if node is not None:
                manifest = device_plugin(node, f"{plan.data_dir}/kubelet", self.options.device_plugin_image, self.pilot)
                await self.api.apply(manifest, "kube-system")
        strategies = sorted({mig_strategy([n]) for n in self.gpu_nodes.values()})
        self.say(
            "info",
            f"NVIDIA device plugin on {len(self.gpu_nodes)} GPU node(s) (MIG strategy {', '.join(strategies)}); "
            "pods ask for nvidia.com/gpu with runtimeClassName: nvidia",
        )

    def _prepare(self) -> None:
        directory = state_dir(self.workdir)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in (server_kubeconfig(self.workdir), self.kubeconfig, self.workdir / CONNECTION_FILE):
            stale.unlink(missing_ok=True)
        for plan in self.plans:
            report_file(self.workdir, plan.node).unlink(missing_ok=True)
        token = token_file(self.workdir)
        token.unlink(missing_ok=True)
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")

    async def _preflight(self) -> None:
        tasks = [
            Task(
                id=f"k3s-preflight-{plan.node}",
                group=SERVICE_GROUP,
                argv=preflight_argv(self.python, self.options, self.rootless),
                cores=0,
                pin=plan.node,
            )
            for plan in self.plans
        ]
        self.ctx.pool.add_group(SERVICE_GROUP, tasks)
        while any(self.tasks[t.id].status in ACTIVE for t in tasks):
            await asyncio.sleep(POLL)
        failed = [t for t in tasks if self.tasks[t.id].status is not TaskStatus.DONE]
        if failed:
            screens = [
                await asyncio.to_thread(self._stderr_tail, t.id, "out") or f"(no output: see {t.id})"
                for t in failed
            ]
            raise PilotkitError(
                f"k3s cannot run on {len(failed)} of {len(tasks)} node(s):\n" + "\n".join(screens)
            )

    def _start(self, plans: list[NodePlan]) -> None:
        tasks = [
            Task(
                id=plan.task_id,
                group=SERVICE_GROUP,
                argv=node_argv(
                    self.python,
                    plan,
                    k3s_argv(plan, self.options, self.rootless, self.workdir, self.head),
                    self.workdir,
                    self.stop_timeout,
                    self.images,
                    self.options.nvidia_runtime if self.nvidia and plan.node in self.gpu_nodes else None,
                ),
                cores=0,
                pin=plan.node,
            )
            for plan in plans
        ]
        if tasks:
            self.ctx.pool.add_group(SERVICE_GROUP, tasks)
            self.started.extend(plans)

    async def _raise_if_dead(self) -> None:
        for plan in self.started:
            if self.tasks[plan.task_id].status not in ACTIVE:
                raise await self._ended(plan.task_id, f"k3s {plan.role} on {plan.node}")

    async def _wait_for_server(self, server: NodePlan, deadline: float) -> None:
        path = server_kubeconfig(self.workdir)
        while not await asyncio.to_thread(path.is_file):
            await self._raise_if_dead()
            if time.monotonic() > deadline:
                raise PilotkitError(
                    f"the k3s server on {server.node} wrote no kubeconfig within {self.ready_timeout:g}s "
                    f"(see {self.workdir / 'tasks' / server.task_id})"
                )
            await asyncio.sleep(POLL)

    def _write_kubeconfig(self) -> None:
        """``<workdir>/kubeconfig``: the server's own, pointing at the first node."""
        import yaml

        data = yaml.safe_load(server_kubeconfig(self.workdir).read_text())
        for cluster in data.get("clusters") or []:
            cluster.setdefault("cluster", {})["server"] = self.server
        tmp = self.kubeconfig.with_name(f".{KUBECONFIG_FILE}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        os.replace(tmp, self.kubeconfig)

    async def _wait_ready(self, deadline: float) -> None:
        assert self.api is not None
        want = {plan.node for plan in self.plans}
        ready: set[str] = set()
        while True:
            try:
                ready = {n.name for n in await self.api.nodes() if n.ready}
            except (PilotkitError, OSError) as exc:
                log.debug("API server not answering yet: %s", exc)
            if want <= ready:
                return
            await self._raise_if_dead()
            if time.monotonic() > deadline:
                missing = sorted(want - ready)
                raise PilotkitError(
                    f"{len(missing)} of {len(want)} k3s node(s) not Ready within {self.ready_timeout:g}s: "
                    + ", ".join(missing)
                )
            await asyncio.sleep(self.poll)

    def publish(self, state: str) -> Path:
        info = ClusterInfo(
            pilot=self.pilot,
            server=self.server,
            kubeconfig=str(self.kubeconfig),
            state=state,
            mode=self.options.mode,
            nodes=[p.node for p in self.plans],
            rootless=self.rootless,
        )
        path = self.workdir / CONNECTION_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------------ watch

    async def supervise(self) -> None:
        """Until cancelled; raises when a node's k3s stops."""
        while True:
            await asyncio.sleep(self.poll)
            if self.ctx.draining.is_set():
                return
            await self._raise_if_dead()

    # ------------------------------------------------------------------ stop

    async def drain_workloads(self) -> None:
        """Cordon every node and stop every pod (outside ``kube-system``) with the grace."""
        if self.api is None or self.drained:
            return
        self.drained = True
        try:
            for plan in self.plans:
                await self.api.cordon(plan.node)
            asked = await self.api.delete_pods(int(self.grace))
            deadline = time.monotonic() + self.grace + 5.0
            while asked and await self.api.pods_left() and time.monotonic() < deadline:
                await asyncio.sleep(self.poll)
            if asked:
                self.say(
                    "info", f"drained the k3s nodes: {asked} pod(s) stopped with a {self.grace:g}s grace"
                )
        except (PilotkitError, OSError) as exc:
            self.say("warn", f"draining the k3s nodes failed: {exc}")

    async def shutdown(self) -> None:
        """Drain, stop k3s (agents, then the server), remove its data from every node.
        Never raises: problems are ``Log`` events."""
        await self.drain_workloads()
        if self.api is not None:
            await self.api.close()
        agents = [p for p in self.started if p.role == "agent"]
        servers = [p for p in self.started if p.role == "server"]
        for group in (agents, servers):
            for plan in group:
                self.ctx.pool.terminate(plan.task_id, grace=self.stop_timeout + 15.0)
            await self._wait_stopped([p.task_id for p in group])
        await self._check_reports()
        if server_kubeconfig(self.workdir).exists() or (self.workdir / CONNECTION_FILE).exists():
            await asyncio.to_thread(self.publish, "stopped")
        await asyncio.to_thread(token_file(self.workdir).unlink, True)

    async def _wait_stopped(self, task_ids: list[str]) -> None:
        deadline = time.monotonic() + self.stop_timeout + 20.0
        while time.monotonic() < deadline:
            if all(self.tasks[t].status is not TaskStatus.RUNNING for t in task_ids if t in self.tasks):
                return
            await asyncio.sleep(POLL)

    async def _check_reports(self) -> None:
        for plan in self.started:
            path = report_file(self.workdir, plan.node)
            try:
                report = msgspec.json.decode(await asyncio.to_thread(path.read_bytes), type=CleanupReport)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                self.say(
                    "warn", f"no cleanup report from {plan.node}: its k3s data may remain in {plan.data_dir}"
                )
                continue
            if report.left:
                self.say("warn", f"{plan.node} keeps {', '.join(report.left)}: remove by hand")
            else:
                self.say(
                    "info",
                    f"{plan.node} keeps nothing of k3s: removed {len(report.removed)} path(s), "
                    f"{len(report.unmounted)} mount(s), {len(report.interfaces)} interface(s), "
                    f"{len(report.killed)} leftover process(es)",
                )
