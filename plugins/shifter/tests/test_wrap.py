"""Golden tests: the exact argv ``ShifterRuntime.wrap`` builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit_shifter import ShifterOptions, ShifterRuntime

from pilotkit.api import Bind, ContainerContext, StagedImage

IMAGE = StagedImage(ref="docker:org/analysis:1.4", path=Path("."), format="name")
GPU_A = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000001"
GPU_B = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000002"


def wrap(argv: list[str], **kw: object) -> list[str]:
    kw.setdefault("image", IMAGE)
    return ShifterRuntime().wrap(argv, ContainerContext(**kw))  # type: ignore[arg-type]


def test_plain() -> None:
    assert wrap(["python3", "x.py"]) == [
        "shifter",
        "--image=docker:org/analysis:1.4",
        "--",
        "python3",
        "x.py",
    ]


def test_binds_env_workdir() -> None:
    got = wrap(
        ["./run.sh", "-v"],
        binds=(Bind("/global/cfs/in", "/data", readonly=True), Bind("/pscratch/out", "/out")),
        env={"OMP_NUM_THREADS": "4"},
        workdir="/out",
    )
    assert got == [
        "shifter", "--image=docker:org/analysis:1.4",
        "--volume=/global/cfs/in:/data:ro",
        "--volume=/pscratch/out:/out",
        "--workdir=/out",
        "--env=OMP_NUM_THREADS=4",
        "--", "./run.sh", "-v",
    ]  # fmt: skip


def test_gpu_and_mpi_modules() -> None:
    got = wrap(["./train"], gpus=(GPU_A, GPU_B), mpi=True)
    assert got == [
        "env", f"CUDA_VISIBLE_DEVICES={GPU_A},{GPU_B}", f"NVIDIA_VISIBLE_DEVICES={GPU_A},{GPU_B}",
        "shifter", "--image=docker:org/analysis:1.4", "--module=gpu,mpich",
        "--", "./train",
    ]  # fmt: skip


def test_site_modules_first_without_duplicates_and_extra_args() -> None:
    opts = ShifterOptions(modules=["cvmfs", "gpu"], extra_args=["--entrypoint"])
    got = wrap(["x"], gpus=(GPU_A,), options=opts)
    assert got == [
        "env", f"CUDA_VISIBLE_DEVICES={GPU_A}", f"NVIDIA_VISIBLE_DEVICES={GPU_A}",
        "shifter", "--image=docker:org/analysis:1.4", "--module=cvmfs,gpu", "--entrypoint",
        "--", "x",
    ]  # fmt: skip


def test_module_names_are_configurable() -> None:
    got = wrap(["x"], mpi=True, gpus=(GPU_A,), options={"gpu_module": "", "mpi_module": "cray-mpich"})
    assert got[3:] == ["shifter", "--image=docker:org/analysis:1.4", "--module=cray-mpich", "--", "x"]


@pytest.mark.parametrize(
    ("ref", "fmt", "path", "spec"),
    [
        ("ubuntu:22.04", "name", ".", "docker:ubuntu:22.04"),
        ("docker:ubuntu:22.04", "name", ".", "docker:ubuntu:22.04"),
        ("docker://ubuntu:22.04", "name", ".", "docker:ubuntu:22.04"),
        ("id:4f2b1c", "name", ".", "id:4f2b1c"),
        ("/images/py", "dir", "/images/py", "local:/images/py"),
    ],
)
def test_image_spec(ref: str, fmt: str, path: str, spec: str) -> None:
    image = StagedImage(ref=ref, path=Path(path), format=fmt)
    assert wrap(["true"], image=image)[1] == f"--image={spec}"


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(Exception, match="module"):
        wrap(["true"], options={"module": ["gpu"]})
