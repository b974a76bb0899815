"""The kr8s-backed client against a fake API server (a small HTTP server answering the
REST calls the app makes): which requests it sends (server-side apply, merge patches,
label selectors, grace periods) and how it reads the answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pilotkit_k3s.kr8s_api import Kr8sApi

from pilotkit.api import PilotkitError

NODE = {
    "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
    "status": {
        "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]
    },
}
NOT_READY = {"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
POD = {
    "metadata": {"name": "hello-abcde", "namespace": "default"},
    "spec": {"nodeName": "n1"},
    "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]},
}
SYSTEM_POD = {"metadata": {"name": "coredns", "namespace": "kube-system"}, "spec": {"nodeName": "n1"}}
VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.4+k3s1"}
ANSWERS: dict[tuple[str, str], Any] = {
    ("GET", "/version"): VERSION,
    ("GET", "/version/"): VERSION,
    ("GET", "/api/v1/nodes"): {"items": [NODE, NOT_READY]},
    ("GET", "/apis/batch/v1"): {"resources": [{"name": "jobs", "kind": "Job", "namespaced": True}]},
    ("GET", "/api/v1"): {"resources": [{"name": "namespaces", "kind": "Namespace", "namespaced": False}]},
    ("GET", "/apis/batch/v1/namespaces/work/jobs/hello"): {
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    },
    ("GET", "/api/v1/namespaces/work/pods"): {"items": [POD]},
    ("GET", "/api/v1/pods"): {"items": [POD, SYSTEM_POD]},
}


class Handler(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]]

    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.requests.append(  # type: ignore[attr-defined]
            {
                "method": self.command,
                "path": url.path,
                "query": parse_qs(url.query),
                "type": self.headers.get("Content-Type"),
                "body": body,
            }
        )
        if url.path.endswith("/log"):
            data = b"hello from the pod\n"
        elif (self.command, url.path) in ANSWERS:
            data = json.dumps(ANSWERS[(self.command, url.path)]).encode()
        elif self.command in ("PATCH", "DELETE"):
            data = body.encode() or b"{}"
        else:
            self.send_response(404)
            payload = json.dumps({"kind": "Status", "message": f"{url.path} not found", "code": 404}).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_DELETE = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- cluster: {{server: "http://127.0.0.1:{server.server_address[1]}"}}
  name: fake
contexts:
- context: {{cluster: fake, user: fake}}
  name: fake
current-context: fake
users:
- name: fake
  user: {{token: fake-token}}
"""
    )
    try:
        yield kubeconfig, server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


async def test_kr8s_client_against_a_fake_api_server(api_server: tuple[Path, list[dict[str, Any]]]) -> None:
    kubeconfig, requests = api_server
    api = Kr8sApi(kubeconfig)
    try:
        nodes = await api.nodes()
        assert [(n.name, n.ready) for n in nodes] == [("n1", True), ("n2", False)]
        assert nodes[0].labels == {"kubernetes.io/hostname": "n1"}

        await api.label_node("n1", {"pilotkit.io/pilot": "p-1"})
        patch = requests[-1]
        assert (patch["method"], patch["path"], patch["type"]) == (
            "PATCH",
            "/api/v1/nodes/n1",
            "application/merge-patch+json",
        )
        assert json.loads(patch["body"]) == {"metadata": {"labels": {"pilotkit.io/pilot": "p-1"}}}

        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hello"}, "spec": {}}
        ref = await api.apply(job, "work")
        assert (ref.kind, ref.name, ref.namespace) == ("Job", "hello", "work")
        applied = requests[-1]
        assert applied["path"] == "/apis/batch/v1/namespaces/work/jobs/hello"
        assert applied["type"] == "application/apply-patch+yaml"
        assert applied["query"] == {"fieldManager": ["pilotkit"], "force": ["true"]}
        namespace = await api.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "work"}}, "x"
        )
        assert namespace.namespace is None and requests[-1]["path"] == "/api/v1/namespaces/work"

        state = await api.job("work", "hello")
        assert state.finished and state.failed and state.reason == "BackoffLimitExceeded"
        (pod,) = await api.job_pods("work", "hello")
        assert (pod.name, pod.node, pod.phase, pod.exit_code) == ("hello-abcde", "n1", "Failed", 3)
        assert requests[-1]["query"] == {"labelSelector": ["job-name=hello"]}
        assert await api.pod_log("work", "hello-abcde") == "hello from the pod\n"

        await api.cordon("n1")
        assert json.loads(requests[-1]["body"]) == {"spec": {"unschedulable": True}}
        assert await api.delete_pods(7, node="n1") == 1, "kube-system pods are left to k3s"
        deleted = requests[-1]
        assert (deleted["method"], deleted["path"]) == (
            "DELETE",
            "/api/v1/namespaces/default/pods/hello-abcde",
        )
        assert deleted["query"] == {"gracePeriodSeconds": ["7"]}
        assert requests[-2]["query"] == {"fieldSelector": ["spec.nodeName=n1"]}

        with pytest.raises(PilotkitError, match="no kind Widget"):
            await api.apply({"apiVersion": "batch/v1", "kind": "Widget", "metadata": {"name": "w"}}, "x")
        with pytest.raises(PilotkitError, match=r"GET /apis/batch/v1/namespaces/x/jobs/absent.*not found"):
            await api.job("x", "absent")
    finally:
        await api.close()
    assert all(r["method"] != "POST" for r in requests)


async def test_kr8s_client_no_server_yet_is_a_pilotkit_error(tmp_path: Path) -> None:
    """While k3s starts, its port refuses connections: the app waits on a PilotkitError."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"apiVersion: v1\nkind: Config\nclusters:\n- cluster: {{server: 'http://127.0.0.1:{port}'}}\n  name: c\n"
        "contexts:\n- context: {cluster: c, user: u}\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n"
    )
    api = Kr8sApi(kubeconfig)
    with pytest.raises(PilotkitError, match="ConnectError"):
        await api.nodes()
    await api.close()
