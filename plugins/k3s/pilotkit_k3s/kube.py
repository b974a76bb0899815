"""What the app asks of the Kubernetes API: the :class:`KubeApi` protocol, the plain data
it answers with, and reading manifest files. :mod:`.kr8s_api` implements it with kr8s."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pilotkit.api import SpecError, SpecProblem


@dataclass(frozen=True)
class NodeState:
    name: str
    ready: bool
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectRef:
    """One applied object."""

    kind: str
    name: str
    namespace: str | None
    api_version: str


@dataclass(frozen=True)
class PodState:
    name: str
    node: str | None
    phase: str
    """``Pending``, ``Running``, ``Succeeded``, ``Failed``, ``Unknown``."""
    exit_code: int | None = None
    """The first container's exit code, once it terminated."""


@dataclass(frozen=True)
class JobState:
    name: str
    namespace: str
    finished: bool
    failed: bool
    reason: str = ""
    """Why a failed Job failed (``BackoffLimitExceeded``, ``DeadlineExceeded``...)."""


class KubeApi(Protocol):
    """The calls the k3s app makes; :class:`~pilotkit_k3s.kr8s_api.Kr8sApi` makes them
    against a real API server."""

    async def nodes(self) -> list[NodeState]:
        """Every node the API server knows, with its Ready condition and labels."""
        ...

    async def label_node(self, name: str, labels: dict[str, str]) -> None: ...

    async def apply(self, manifest: dict[str, Any], namespace: str) -> ObjectRef:
        """Server-side apply of one object (``namespace`` where it names none)."""
        ...

    async def job(self, namespace: str, name: str) -> JobState: ...

    async def job_pods(self, namespace: str, name: str) -> list[PodState]: ...

    async def pod_log(self, namespace: str, pod: str) -> str: ...

    async def cordon(self, node: str) -> None: ...

    async def delete_pods(self, grace: int, node: str | None = None, namespace: str | None = None) -> int:
        """Delete pods (on ``node``, in ``namespace``; all when None) with a termination
        grace of ``grace`` seconds; how many were asked to stop. System pods
        (``kube-system``) are left to k3s."""
        ...

    async def pods_left(self, node: str | None = None) -> int:
        """Pods outside ``kube-system`` that still exist (on ``node``)."""
        ...

    async def close(self) -> None: ...


def load_manifests(path: Path, where: str) -> list[dict[str, Any]]:
    """The objects of one YAML file (``---`` separated; ``kind: List`` expanded).
    Raises :class:`SpecError` naming ``where`` and the document when one is no object."""
    import yaml

    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except OSError as exc:
        raise SpecError([SpecProblem(where, f"cannot read {path}: {exc.strerror or exc}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise SpecError(
            [SpecProblem(where, f"{path}{line}: not YAML: {getattr(exc, 'problem', exc)}")]
        ) from None
    out: list[dict[str, Any]] = []
    for index, doc in enumerate(documents):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise SpecError(
                [
                    SpecProblem(
                        where, f"{path} document {index + 1}: not a Kubernetes object (kind, apiVersion)"
                    )
                ]
            )
        if doc["kind"] == "List":
            out.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
        else:
            out.append(doc)
    return out


def exit_code_of(pods: list[PodState], job: JobState) -> int:
    """A Job's exit code: its last terminated pod's, else 0 for a finished Job, 1 for a failed one."""
    codes = [p.exit_code for p in pods if p.exit_code is not None]
    if job.failed:
        nonzero = [c for c in codes if c != 0]
        return nonzero[-1] if nonzero else 1
    return 0
