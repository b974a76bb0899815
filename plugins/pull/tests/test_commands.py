"""Golden argv of each runtime's pull, and the names they give images."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit_pull import PullPlan, plan_pull
from pilotkit_pull.commands import qualified_name, sif_name

from pilotkit.api import PilotkitError

CACHE = Path("/scratch/images")


@pytest.mark.parametrize(
    ("runtime", "ref", "plan"),
    [
        (
            "apptainer", "docker://python:3.11",
            PullPlan(
                ["apptainer", "pull", "--force", "/scratch/images/.python_3.11.sif.7.part", "docker://python:3.11"],
                "docker://python:3.11", "sif",
                CACHE / "python_3.11.sif", CACHE / ".python_3.11.sif.7.part",
            ),
        ),
        (
            "apptainer", "ghcr.io/org/tool:1.0",
            PullPlan(
                ["apptainer", "pull", "--force", "/scratch/images/.ghcr.io_org_tool_1.0.sif.7.part",
                 "docker://ghcr.io/org/tool:1.0"],
                "ghcr.io/org/tool:1.0", "sif",
                CACHE / "ghcr.io_org_tool_1.0.sif", CACHE / ".ghcr.io_org_tool_1.0.sif.7.part",
            ),
        ),
        (
            "apptainer", "oras://ghcr.io/org/img:2",
            PullPlan(
                ["apptainer", "pull", "--force", "/scratch/images/.oras_ghcr.io_org_img_2.sif.7.part",
                 "oras://ghcr.io/org/img:2"],
                "oras://ghcr.io/org/img:2", "sif",
                CACHE / "oras_ghcr.io_org_img_2.sif", CACHE / ".oras_ghcr.io_org_img_2.sif.7.part",
            ),
        ),
        ("sarus", "docker://python:3.11", PullPlan(["sarus", "pull", "python:3.11"], "docker://python:3.11", "name")),
        ("sarus", "ubuntu:22.04", PullPlan(["sarus", "pull", "ubuntu:22.04"], "ubuntu:22.04", "name")),
        (
            "shifter", "docker://python:3.11",
            PullPlan(["shifterimg", "pull", "docker:python:3.11"], "docker:python:3.11", "name"),
        ),
        (
            "podman-hpc", "docker://python:3.11",
            PullPlan(["podman-hpc", "pull", "docker.io/library/python:3.11"], "docker.io/library/python:3.11", "name"),
        ),
        (
            "podman-hpc", "docker://nvcr.io/nvidia/pytorch:24.01-py3",
            PullPlan(["podman-hpc", "pull", "nvcr.io/nvidia/pytorch:24.01-py3"],
                     "nvcr.io/nvidia/pytorch:24.01-py3", "name"),
        ),
    ],
)  # fmt: skip
def test_golden(runtime: str, ref: str, plan: PullPlan) -> None:
    assert plan_pull(runtime, ref, CACHE, token="7") == plan


def test_singularity_binary() -> None:
    plan = plan_pull("apptainer", "docker://alpine", CACHE, binary="singularity", token="1")
    assert plan.argv[:2] == ["singularity", "pull"]


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("docker://python:3.11", "python_3.11.sif"),
        ("docker://org/name", "org_name.sif"),
        ("library://alpine:3.19", "library_alpine_3.19.sif"),
        ("docker://alpine@sha256:" + "ab" * 32, "alpine_sha256_" + "ab" * 32 + ".sif"),
        ("docker://a b/c", "a_b_c.sif"),
    ],
)
def test_sif_name(ref: str, name: str) -> None:
    assert sif_name(ref) == name


@pytest.mark.parametrize(
    ("name", "qualified"),
    [
        ("python", "docker.io/library/python"),
        ("org/name:1", "docker.io/org/name:1"),
        ("quay.io/org/name:1", "quay.io/org/name:1"),
        ("localhost/name", "localhost/name"),
        ("localhost:5000/name", "localhost:5000/name"),
    ],
)
def test_qualified_name(name: str, qualified: str) -> None:
    assert qualified_name(name) == qualified


@pytest.mark.parametrize(
    ("runtime", "ref", "message"),
    [
        ("sarus", "oras://ghcr.io/x:1", "sarus pulls docker:// images, not 'oras://ghcr.io/x:1'"),
        ("shifter", "library://x", "shifter pulls docker:// images"),
        ("apptainer", "http://example.org/x.sif", "apptainer cannot pull 'http://example.org/x.sif'"),
        ("apptainer", "docker://", "names no image"),
        ("runc", "docker://x", "unknown pull runtime 'runc'"),
    ],
)
def test_refused(runtime: str, ref: str, message: str) -> None:
    with pytest.raises(PilotkitError, match=message):
        plan_pull(runtime, ref, CACHE)
