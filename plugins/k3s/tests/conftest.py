"""The two stand-ins k3s tests need because k3s itself cannot run here (it is in neither
Debian nor PyPI):

- a fake ``k3s`` executable (:func:`write_fake_k3s`), put on PATH by a test: it records
  how it was called (on which node, with which flags, whether the server was up when an
  agent joined) and plays the server's part: the node token, the kubeconfig (written a
  moment after start, like the real server once its API listens) and each node's
  readiness; like the real k3s it leaves a "container shim" running in its data
  directory when it stops;
- :class:`FakeKube`, the :class:`~pilotkit_k3s.kube.KubeApi` protocol without an API
  server: node readiness from what the fake k3s wrote, and Jobs whose "pod" runs the
  container's command as a local process (a fake kubelet). Every call is recorded in
  ``<state>/api.jsonl`` for the test to read.

:class:`FakeApiK3sApp` is the real app with :class:`FakeKube` in place of the kr8s client
(``[app] type = "k3s-fakeapi"``; register it with :data:`FAKE_API_PLUGIN`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pilotkit_k3s import K3sApp
from pilotkit_k3s.kube import JobState, NodeState, ObjectRef, PodState

from pilotkit.api import Register, hookimpl

FAKE_K3S = r'''#!/usr/bin/env python3
"""A stand-in for k3s in pilotkit's tests (the real one cannot run there)."""
import json, os, shutil, signal, socket, subprocess, sys, time

STATE = __STATE__
args = sys.argv[1:]
role = args[0] if args else ""


def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default


node, data = opt("--node-name"), opt("--data-dir")
token_path = opt("--token-file")
os.makedirs(f"{STATE}/calls", exist_ok=True)
os.makedirs(f"{STATE}/nodes", exist_ok=True)
record = {"role": role, "argv": sys.argv, "node": node, "host": socket.gethostname(), "euid": os.geteuid(),
          "start": time.time(), "server_up": os.path.exists(f"{STATE}/server-up")}
token = open(token_path).read().strip() if token_path and os.path.exists(token_path) else None
images = f"{data}/agent/images" if data else ""
record["images"] = {n: os.path.realpath(f"{images}/{n}") for n in sorted(os.listdir(images))} if images and os.path.isdir(images) else {}
record["token"] = token
containerd = f"{data}/agent/etc/containerd" if data else ""
record["containerd"] = {n: open(f"{containerd}/{n}").read() for n in sorted(os.listdir(containerd))} if containerd and os.path.isdir(containerd) else {}


def save():
    with open(f"{STATE}/calls/{role}-{node}.json", "w") as f:
        json.dump(record, f)


if role not in ("server", "agent") or not node or not data or not token:
    print(f"fake k3s: bad call {sys.argv}", file=sys.stderr)
    sys.exit(2)
if role == "agent":
    up = f"{STATE}/server-up"
    if not os.path.exists(up) or open(up).read().strip() != token:
        save()
        print("fake k3s agent: cannot join: no server with this token at " + opt("--server", "?"), file=sys.stderr)
        sys.exit(1)
os.makedirs(f"{data}/data/bin", exist_ok=True)
for arg in args:
    if arg.startswith("root-dir="):
        os.makedirs(arg[len("root-dir="):] + "/pods", exist_ok=True)
if os.path.exists(f"{STATE}/make-mounts") and os.geteuid() == 0:  # like k3s as root: a pod volume
    os.makedirs(f"{data}/pod-volume", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "fake-k3s", f"{data}/pod-volume"], check=True)
if os.path.exists(f"{STATE}/make-interfaces") and os.geteuid() == 0:  # and a CNI bridge
    subprocess.run(["ip", "link", "add", "cni0", "type", "bridge"], check=True)
shim = f"{data}/data/bin/containerd-shim"
shutil.copy("/bin/sleep", shim)
record["shim"] = subprocess.Popen([shim, "3600"], start_new_session=True).pid
if role == "server":
    os.makedirs(f"{data}/server", exist_ok=True)
    with open(f"{data}/server/node-token", "w") as f:
        f.write(token + "\n")
    time.sleep(0.3)
    port = opt("--https-listen-port", "6443")
    config = opt("--write-kubeconfig")
    with open(config + ".tmp", "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: ZmFrZQ==
    server: https://127.0.0.1:{port}
  name: default
contexts:
- context: {{cluster: default, user: default}}
  name: default
current-context: default
preferences:
  fake-k3s-state: {STATE}
users:
- name: default
  user: {{token: fake}}
""")
    os.replace(config + ".tmp", config)
    with open(f"{STATE}/server-up", "w") as f:
        f.write(token)
with open(f"{STATE}/nodes/{node}.json", "w") as f:
    json.dump({"role": role, "ready": not os.path.exists(f"{STATE}/notready-{node}")}, f)
save()


def stop(signum, frame):
    record["stopped"] = time.time()
    save()
    if os.path.exists(f"{STATE}/nodes/{node}.json"):
        os.unlink(f"{STATE}/nodes/{node}.json")
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
while not os.path.exists(f"{STATE}/crash-{node}"):  # a test makes this node's k3s fail
    time.sleep(0.1)
print(f"fake k3s {role}: crashed on purpose", file=sys.stderr)
sys.exit(1)
'''


FAKE_HELM = r'''#!/usr/bin/env python3
"""A stand-in for helm in pilotkit's tests: records each call; "installs" a local chart
by leaving its templates/*.yaml (as they are: no templating) where the fake API finds
them, and prints them back for `get manifest`."""
import glob, json, os, sys

STATE = __STATE__
args = sys.argv[1:]
with open(f"{STATE}/helm.jsonl", "a") as f:
    f.write(json.dumps(args) + "\n")
os.makedirs(f"{STATE}/helm-releases", exist_ok=True)
if os.path.exists(f"{STATE}/helm-fails"):
    print("Error: INSTALLATION FAILED: fake helm failing on purpose", file=sys.stderr)
    sys.exit(1)
if args[:2] == ["upgrade", "--install"]:
    name, chart = args[2], args[3]
    docs = [open(p).read() for p in sorted(glob.glob(f"{chart}/templates/*.yaml"))]
    with open(f"{STATE}/helm-releases/{name}.yaml", "w") as f:
        f.write("\n---\n".join(docs))
    print(f'Release "{name}" has been upgraded. Happy Helming!')
elif args[:2] == ["get", "manifest"]:
    print(open(f"{STATE}/helm-releases/{args[2]}.yaml").read())
else:
    print(f"fake helm: unexpected call {args}", file=sys.stderr)
    sys.exit(2)
'''


def write_fake_helm(fake: FakeK3s) -> Path:
    """A fake ``helm`` next to the fake k3s (so on PATH too)."""
    script = fake.bin / "helm"
    script.write_text(FAKE_HELM.replace("__STATE__", repr(str(fake.state))))
    script.chmod(0o755)
    return script


@dataclass
class FakeK3s:
    """The fake k3s of one test: ``bin`` goes on PATH, ``state`` holds what it recorded."""

    bin: Path
    state: Path

    def calls(self) -> dict[str, dict[str, Any]]:
        """``{"server-node1": {...}, "agent-node2": {...}}``."""
        return {p.stem: json.loads(p.read_text()) for p in sorted((self.state / "calls").glob("*.json"))}

    def api_calls(self) -> list[dict[str, Any]]:
        path = self.state / "api.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def write_fake_k3s(directory: Path) -> FakeK3s:
    bin_dir = directory / "bin"
    state = directory / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir()
    script = bin_dir / "k3s"
    script.write_text(FAKE_K3S.replace("__STATE__", repr(str(state))))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return FakeK3s(bin_dir, state)


@pytest.fixture
def fake_k3s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeK3s:
    """The fake k3s, first on PATH."""
    fake = write_fake_k3s(tmp_path / "fake-k3s")
    monkeypatch.setenv("PATH", f"{fake.bin}:{Path(sys.executable).parent}:" + os.environ["PATH"])
    return fake


@dataclass
class FakePod:
    name: str
    node: str
    process: asyncio.subprocess.Process
    output: list[bytes] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None


class FakeKube:
    """The KubeApi protocol without an API server (see the module's docstring)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        self.state = Path(config["preferences"]["fake-k3s-state"])
        self.server = config["clusters"][0]["cluster"]["server"]
        self.labels: dict[str, dict[str, str]] = {}
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.record("connect", server=self.server, kubeconfig=str(kubeconfig))

    def record(self, call: str, **details: Any) -> None:
        with open(self.state / "api.jsonl", "a") as f:
            f.write(json.dumps({"call": call, "time": time.time(), **details}) + "\n")

    async def nodes(self) -> list[NodeState]:
        out = []
        for path in sorted((self.state / "nodes").glob("*.json")):
            data = json.loads(path.read_text())
            out.append(NodeState(path.stem, bool(data.get("ready")), self.labels.get(path.stem, {})))
        return out

    async def label_node(self, name: str, labels: dict[str, str]) -> None:
        self.labels.setdefault(name, {}).update(labels)
        self.record("label", node=name, labels=labels)

    async def apply(self, manifest: dict[str, Any], namespace: str) -> ObjectRef:
        meta = manifest.get("metadata", {})
        ns = meta.get("namespace") or namespace
        ref = ObjectRef(manifest["kind"], meta["name"], ns, manifest["apiVersion"])
        self.record("apply", kind=ref.kind, name=ref.name, namespace=ns, manifest=manifest)
        if ref.kind == "Job":
            container = manifest["spec"]["template"]["spec"]["containers"][0]
            argv = [*container.get("command", []), *container.get("args", [])]
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            pod = FakePod(f"{ref.name}-fake0", "node-of-" + ref.name, process)
            pod.reader = asyncio.ensure_future(self._read(pod))
            self.pods[(ns, ref.name)] = pod
        return ref

    @staticmethod
    async def _read(pod: FakePod) -> None:
        assert pod.process.stdout is not None
        pod.output.append(await pod.process.stdout.read())
        await pod.process.wait()

    async def job(self, namespace: str, name: str) -> JobState:
        if (namespace, name) not in self.pods:  # a Job the fake helm "installed"
            for path in sorted((self.state / "helm-releases").glob("*.yaml")):
                for doc in yaml.safe_load_all(path.read_text()):
                    if isinstance(doc, dict) and doc.get("kind") == "Job" and doc["metadata"]["name"] == name:
                        await self.apply(doc, namespace)
        pod = self.pods[(namespace, name)]
        code = pod.process.returncode
        if code is None or (pod.reader is not None and not pod.reader.done()):
            return JobState(name, namespace, finished=False, failed=False)
        return JobState(name, namespace, True, code != 0, "BackoffLimitExceeded" if code else "")

    async def job_pods(self, namespace: str, name: str) -> list[PodState]:
        pod = self.pods[(namespace, name)]
        code = pod.process.returncode
        phase = "Running" if code is None else ("Succeeded" if code == 0 else "Failed")
        return [PodState(pod.name, pod.node, phase, code)]

    async def pod_log(self, namespace: str, pod: str) -> str:
        for item in self.pods.values():
            if item.name == pod:
                return b"".join(item.output).decode()
        raise KeyError(pod)

    async def cordon(self, node: str) -> None:
        self.record("cordon", node=node)

    async def delete_pods(self, grace: int, node: str | None = None, namespace: str | None = None) -> int:
        running = [p for p in self.pods.values() if p.process.returncode is None]
        for pod in running:
            _signal(pod.process, signal.SIGTERM)
            asyncio.get_running_loop().call_later(grace, _kill, pod.process)
        self.record("delete_pods", grace=grace, pods=[p.name for p in running])
        return len(running)

    async def pods_left(self, node: str | None = None) -> int:
        return sum(1 for p in self.pods.values() if p.process.returncode is None)

    async def close(self) -> None:
        for pod in self.pods.values():
            _kill(pod.process)
            if pod.reader is not None:
                await pod.reader
        self.record("close")


def _signal(process: asyncio.subprocess.Process, signum: int) -> None:
    """Signal the pod's whole process group (its container)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _kill(process: asyncio.subprocess.Process) -> None:
    _signal(process, signal.SIGKILL)


class FakeApiK3sApp(K3sApp):
    """The k3s app with :class:`FakeKube` behind its client interface."""

    id = "k3s-fakeapi"

    def make_api(self, kubeconfig: Path) -> Any:
        return FakeKube(kubeconfig)


class _FakeApiPlugin:
    @hookimpl
    def pilotkit_register_apps(self, register: Register[Any]) -> None:
        register(FakeApiK3sApp)


FAKE_API_PLUGIN = _FakeApiPlugin()


def job_manifest(name: str, script: str) -> str:
    """A Job whose container runs ``sh -c SCRIPT``."""
    return yaml.safe_dump(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
                    }
                },
            },
        }
    )
