""":class:`KubeApi` against a real API server, through kr8s's asyncio client (REST calls
made with its authenticated session: server-side apply, merge patches, pod logs)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from pilotkit.api import PilotkitError

from .kube import JobState, NodeState, ObjectRef, PodState

FIELD_MANAGER = "pilotkit"


class Kr8sApi:
    """The k3s cluster's API server, as the pilot's kubeconfig reaches it."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self._api: Any = None
        self._plurals: dict[tuple[str, str], tuple[str, bool]] = {}

    async def _client(self) -> Any:
        if self._api is None:
            import kr8s.asyncio

            self._api = await kr8s.asyncio.api(kubeconfig=str(self.kubeconfig))
        return self._api

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """One REST call; ``path`` is absolute (``/api/v1/nodes``)."""
        import httpx
        import kr8s

        base, _, rest = path.lstrip("/").partition("/")
        try:
            api = await self._client()
            async with api.call_api(method, version="", base=f"/{base}", url=rest, **kwargs) as response:
                if method == "GET" and path.endswith("/log"):
                    return response.text
                return response.json() if response.content else {}
        except kr8s.ServerError as exc:
            raise PilotkitError(f"Kubernetes API {method} {path}: {exc}") from None
        except httpx.HTTPError as exc:  # not answering (yet): connection refused, TLS, timeout
            raise PilotkitError(f"Kubernetes API {method} {path}: {type(exc).__name__}: {exc}") from None

    async def nodes(self) -> list[NodeState]:
        data = await self._json("GET", "/api/v1/nodes")
        out = []
        for item in data.get("items", []):
            conditions = item.get("status", {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            meta = item.get("metadata", {})
            out.append(NodeState(meta.get("name", ""), ready, dict(meta.get("labels") or {})))
        return out

    async def label_node(self, name: str, labels: dict[str, str]) -> None:
        await self._json(
            "PATCH",
            f"/api/v1/nodes/{name}",
            content=json.dumps({"metadata": {"labels": labels}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """The plural name of ``kind`` and whether it is namespaced."""
        key = (api_version, kind)
        if key not in self._plurals:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            data = await self._json("GET", path)
            for resource in data.get("resources", []):
                if "/" not in resource["name"]:
                    self._plurals[(api_version, resource["kind"])] = (
                        resource["name"],
                        resource["namespaced"],
                    )
        if key not in self._plurals:
            raise PilotkitError(f"the API server has no kind {kind} in {api_version}")
        return self._plurals[key]

    async def apply(self, manifest: dict[str, Any], namespace: str) -> ObjectRef:
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        name = manifest.get("metadata", {}).get("name")
        if not name:
            raise PilotkitError(f"a {kind} without metadata.name cannot be applied")
        plural, namespaced = await self._resource(api_version, kind)
        ns = (manifest.get("metadata", {}).get("namespace") or namespace) if namespaced else None
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{prefix}/namespaces/{ns}/{plural}/{name}" if ns else f"{prefix}/{plural}/{name}"
        await self._json(
            "PATCH",
            path,
            content=json.dumps(manifest),
            headers={"Content-Type": "application/apply-patch+yaml"},
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
        )
        return ObjectRef(kind, name, ns, api_version)

    async def job(self, namespace: str, name: str) -> JobState:
        data = await self._json("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
        conditions = data.get("status", {}).get("conditions") or []
        done = {c.get("type"): c for c in conditions if c.get("status") == "True"}
        failed = done.get("Failed")
        return JobState(
            name,
            namespace,
            finished="Complete" in done or failed is not None,
            failed=failed is not None,
            reason=(failed or {}).get("reason", ""),
        )

    async def job_pods(self, namespace: str, name: str) -> list[PodState]:
        data = await self._json(
            "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": f"job-name={name}"}
        )
        return [_pod(item) for item in data.get("items", [])]

    async def pod_log(self, namespace: str, pod: str) -> str:
        text = await self._json("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log")
        return str(text)

    async def cordon(self, node: str) -> None:
        await self._json(
            "PATCH",
            f"/api/v1/nodes/{node}",
            content=json.dumps({"spec": {"unschedulable": True}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def _pods(self, node: str | None, namespace: str | None) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        params = {"fieldSelector": f"spec.nodeName={node}"} if node else {}
        data = await self._json("GET", path, params=params)
        return [p for p in data.get("items", []) if p.get("metadata", {}).get("namespace") != "kube-system"]

    async def delete_pods(self, grace: int, node: str | None = None, namespace: str | None = None) -> int:
        pods = await self._pods(node, namespace)
        for pod in pods:
            meta = pod["metadata"]
            with contextlib.suppress(PilotkitError):  # gone meanwhile
                await self._json(
                    "DELETE",
                    f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                    params={"gracePeriodSeconds": str(grace)},
                )
        return len(pods)

    async def pods_left(self, node: str | None = None) -> int:
        return len(await self._pods(node, None))

    async def close(self) -> None:
        session = getattr(self._api, "_session", None)
        if session is not None:
            with contextlib.suppress(Exception):
                await session.aclose()
        self._api = None


def _pod(item: dict[str, Any]) -> PodState:
    status = item.get("status", {})
    code = None
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated is not None:
            code = int(terminated.get("exitCode", 0))
            break
    return PodState(
        item.get("metadata", {}).get("name", ""),
        item.get("spec", {}).get("nodeName"),
        status.get("phase", "Unknown"),
        code,
    )
