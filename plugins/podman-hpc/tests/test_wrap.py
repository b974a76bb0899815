"""Golden tests: the exact argv ``PodmanHpcRuntime.wrap`` builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit_podman_hpc import PodmanHpcOptions, PodmanHpcRuntime

from pilotkit.api import Bind, ContainerContext, StagedImage

IMAGE = StagedImage(ref="registry.nersc.gov/org/analysis:1.4", path=Path("."), format="name")
GPU_A = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000001"
GPU_B = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000002"


def wrap(argv: list[str], **kw: object) -> list[str]:
    kw.setdefault("image", IMAGE)
    return PodmanHpcRuntime().wrap(argv, ContainerContext(**kw))  # type: ignore[arg-type]


def test_plain() -> None:
    assert wrap(["python3", "x.py"]) == [
        "podman-hpc", "run", "--rm", "--network=host", "--entrypoint", "",
        "registry.nersc.gov/org/analysis:1.4", "python3", "x.py",
    ]  # fmt: skip


def test_binds_env_workdir() -> None:
    got = wrap(
        ["./run.sh"],
        binds=(Bind("/global/cfs/in", "/data", readonly=True), Bind("/pscratch/out", "/out")),
        env={"OMP_NUM_THREADS": "4"},
        workdir="/out",
    )
    assert got == [
        "podman-hpc", "run", "--rm", "--network=host",
        "-v", "/global/cfs/in:/data:ro",
        "-v", "/pscratch/out:/out",
        "-e", "OMP_NUM_THREADS=4",
        "-w", "/out",
        "--entrypoint", "",
        "registry.nersc.gov/org/analysis:1.4", "./run.sh",
    ]  # fmt: skip


def test_gpu_and_mpi() -> None:
    got = wrap(["./train"], gpus=(GPU_A, GPU_B), mpi=True)
    assert got == [
        "podman-hpc", "run", "--rm", "--gpu", "--mpi", "--network=host",
        "-e", f"CUDA_VISIBLE_DEVICES={GPU_A},{GPU_B}",
        "-e", f"NVIDIA_VISIBLE_DEVICES={GPU_A},{GPU_B}",
        "--entrypoint", "",
        "registry.nersc.gov/org/analysis:1.4", "./train",
    ]  # fmt: skip


def test_switches_off_and_extra_args() -> None:
    opts = PodmanHpcOptions(gpu=False, mpi=False, network=None, entrypoint=True, extra_args=["--shm-size=8g"])
    got = wrap(["x"], gpus=(GPU_A,), mpi=True, options=opts)
    assert got == [
        "podman-hpc", "run", "--rm",
        "-e", f"CUDA_VISIBLE_DEVICES={GPU_A}",
        "-e", f"NVIDIA_VISIBLE_DEVICES={GPU_A}",
        "--shm-size=8g",
        "registry.nersc.gov/org/analysis:1.4", "x",
    ]  # fmt: skip


def test_unpacked_directory_runs_with_rootfs() -> None:
    image = StagedImage(ref="/images/py", path=Path("/images/py"), format="dir")
    got = wrap(["sh"], image=image, options={"network": None})
    assert got == ["podman-hpc", "run", "--rm", "--entrypoint", "", "--rootfs", "/images/py", "sh"]


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(Exception, match="gpus"):
        wrap(["true"], options={"gpus": True})
