"""Golden tests: the exact argv ``SarusRuntime.wrap`` builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit_sarus import SarusOptions, SarusRuntime

from pilotkit.api import Bind, ContainerContext, StagedImage

IMAGE = StagedImage(ref="ghcr.io/org/analysis:1.4", path=Path("."), format="name")
GPU_A = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000001"
GPU_B = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000002"


def wrap(argv: list[str], **kw: object) -> list[str]:
    kw.setdefault("image", IMAGE)
    return SarusRuntime().wrap(argv, ContainerContext(**kw))  # type: ignore[arg-type]


def test_plain() -> None:
    assert wrap(["python3", "x.py"]) == [
        "sarus", "run", "--entrypoint", "", "ghcr.io/org/analysis:1.4", "python3", "x.py",
    ]  # fmt: skip


def test_binds_env_workdir() -> None:
    got = wrap(
        ["./run.sh"],
        binds=(Bind("/scratch/in", "/data", readonly=True), Bind("/scratch/out", "/out")),
        env={"OMP_NUM_THREADS": "4", "A": "x=y"},
        workdir="/out",
    )
    assert got == [
        "sarus", "run",
        "--mount=type=bind,source=/scratch/in,destination=/data,readonly",
        "--mount=type=bind,source=/scratch/out,destination=/out",
        "--env=OMP_NUM_THREADS=4",
        "--env=A=x=y",
        "--workdir=/out",
        "--entrypoint", "",
        "ghcr.io/org/analysis:1.4", "./run.sh",
    ]  # fmt: skip


def test_gpus_through_the_host_environment() -> None:
    assert wrap(["nvidia-smi"], gpus=(GPU_A, GPU_B)) == [
        "env", f"CUDA_VISIBLE_DEVICES={GPU_A},{GPU_B}",
        "sarus", "run", "--entrypoint", "", "ghcr.io/org/analysis:1.4", "nvidia-smi",
    ]  # fmt: skip


def test_mpi() -> None:
    assert wrap(["./ring"], mpi=True) == [
        "sarus", "run", "--mpi", "--entrypoint", "", "ghcr.io/org/analysis:1.4", "./ring",
    ]  # fmt: skip


def test_mpi_type_gpu_and_extra_args() -> None:
    opts = SarusOptions(mpi_type="mpich", extra_args=["--pid=private", "--init"])
    got = wrap(["./train"], mpi=True, gpus=(GPU_A,), options=opts, workdir="/w")
    assert got == [
        "env", f"CUDA_VISIBLE_DEVICES={GPU_A}",
        "sarus", "run", "--mpi", "--mpi-type=mpich", "--workdir=/w",
        "--entrypoint", "", "--pid=private", "--init",
        "ghcr.io/org/analysis:1.4", "./train",
    ]  # fmt: skip


def test_mpi_hook_can_be_turned_off_and_entrypoint_kept() -> None:
    got = wrap(["--flag"], mpi=True, options={"mpi": False, "entrypoint": True})
    assert got == ["sarus", "run", "ghcr.io/org/analysis:1.4", "--flag"]


def test_docker_scheme_is_dropped() -> None:
    image = StagedImage(ref="docker://ghcr.io/org/analysis:1.4", path=Path("."), format="name")
    assert wrap(["x"], image=image)[-2:] == ["ghcr.io/org/analysis:1.4", "x"]


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(Exception, match="mpi_typ"):
        wrap(["true"], options={"mpi_typ": "x"})
