"""Golden tests: the exact argv ``ApptainerRuntime.wrap`` builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit_apptainer import ApptainerOptions, ApptainerRuntime

from pilotkit.api import Bind, ContainerContext, StagedImage

SIF = StagedImage(ref="docker://python:3.11", path=Path("/cvmfs/img/python.sif"), format="sif")
GPU_A = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000001"
GPU_B = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000002"


def wrap(argv: list[str], **kw: object) -> list[str]:
    kw.setdefault("image", SIF)
    return ApptainerRuntime().wrap(argv, ContainerContext(**kw))  # type: ignore[arg-type]


def test_plain() -> None:
    assert wrap(["python", "-c", "print(1)"]) == [
        "apptainer", "exec", "/cvmfs/img/python.sif", "python", "-c", "print(1)",
    ]  # fmt: skip


def test_binds_env_workdir() -> None:
    got = wrap(
        ["./run.sh", "--n", "3"],
        binds=(Bind("/scratch/in", "/data", readonly=True), Bind("/scratch/out", "/out")),
        env={"OMP_NUM_THREADS": "4", "LIST": "a,b"},
        workdir="/out",
    )
    assert got == [
        "apptainer", "exec",
        "--bind", "/scratch/in:/data:ro",
        "--bind", "/scratch/out:/out",
        "--env", "OMP_NUM_THREADS=4",
        "--env", "LIST=a,b",
        "--pwd", "/out",
        "/cvmfs/img/python.sif", "./run.sh", "--n", "3",
    ]  # fmt: skip


def test_gpus_nv() -> None:
    got = wrap(["nvidia-smi"], gpus=(GPU_A, GPU_B))
    assert got == [
        "apptainer", "exec", "--nv",
        "--env", f"CUDA_VISIBLE_DEVICES={GPU_A},{GPU_B}",
        "--env", f"NVIDIA_VISIBLE_DEVICES={GPU_A},{GPU_B}",
        "/cvmfs/img/python.sif", "nvidia-smi",
    ]  # fmt: skip


def test_gpus_nvccli_contains_and_sets_host_env() -> None:
    got = wrap(["nvidia-smi"], gpus=(GPU_A,), options=ApptainerOptions(nvccli=True))
    assert got == [
        "env", f"NVIDIA_VISIBLE_DEVICES={GPU_A}",
        "apptainer", "exec", "--nv", "--nvccli", "--contain",
        "--env", f"CUDA_VISIBLE_DEVICES={GPU_A}",
        "--env", f"NVIDIA_VISIBLE_DEVICES={GPU_A}",
        "/cvmfs/img/python.sif", "nvidia-smi",
    ]  # fmt: skip


def test_no_gpu_flags_without_gpus() -> None:
    assert wrap(["true"], options=ApptainerOptions(nvccli=True)) == [
        "apptainer", "exec", "/cvmfs/img/python.sif", "true",
    ]  # fmt: skip


def test_all_switches_and_extra_args() -> None:
    opts = ApptainerOptions(
        rocm=True, contain=True, cleanenv=True, writable_tmpfs=True, extra_args=["--no-home"]
    )
    assert wrap(["true"], options=opts) == [
        "apptainer", "exec", "--rocm", "--contain", "--cleanenv", "--writable-tmpfs", "--no-home",
        "/cvmfs/img/python.sif", "true",
    ]  # fmt: skip


def test_mpi_bind_model() -> None:
    opts = {
        "mpi_binds": ["/opt/cray/pe/mpich/8.1.28:/opt/mpich:ro", "/usr/lib64/libfabric.so.1"],
        "mpi_library_path": ["/opt/mpich/lib", "/usr/lib64"],
    }
    got = wrap(["./ring"], mpi=True, options=opts, env={"LD_LIBRARY_PATH": "/app/lib"})
    assert got == [
        "apptainer", "exec",
        "--bind", "/opt/cray/pe/mpich/8.1.28:/opt/mpich:ro",
        "--bind", "/usr/lib64/libfabric.so.1:/usr/lib64/libfabric.so.1",
        "--env", "LD_LIBRARY_PATH=/opt/mpich/lib:/usr/lib64:/app/lib",
        "/cvmfs/img/python.sif", "./ring",
    ]  # fmt: skip


def test_mpi_options_ignored_for_non_mpi_tasks() -> None:
    opts = {"mpi_binds": ["/opt/mpich"], "mpi_library_path": ["/opt/mpich/lib"]}
    assert wrap(["./serial"], options=opts) == ["apptainer", "exec", "/cvmfs/img/python.sif", "./serial"]


def test_gpu_and_mpi_together() -> None:
    got = wrap(["./train"], gpus=(GPU_A,), mpi=True, options={"mpi_binds": ["/opt/mpich"]})
    assert got == [
        "apptainer", "exec", "--nv",
        "--bind", "/opt/mpich:/opt/mpich",
        "--env", f"CUDA_VISIBLE_DEVICES={GPU_A}",
        "--env", f"NVIDIA_VISIBLE_DEVICES={GPU_A}",
        "/cvmfs/img/python.sif", "./train",
    ]  # fmt: skip


def test_task_env_overrides_gpu_env() -> None:
    got = wrap(["x"], gpus=(GPU_A,), env={"CUDA_VISIBLE_DEVICES": "0"})
    assert got[3:7] == ["--env", "CUDA_VISIBLE_DEVICES=0", "--env", f"NVIDIA_VISIBLE_DEVICES={GPU_A}"]


def test_env_value_with_equals_and_comma_is_quoted() -> None:
    got = wrap(["x"], env={"OPTS": 'a=1,b="2"'})
    assert got[2:4] == ["--env", '"OPTS=a=1,b=""2"""']


def test_sandbox_dir_and_docker_ref() -> None:
    sandbox = StagedImage(ref="/images/py", path=Path("/images/py"), format="dir")
    named = StagedImage(ref="docker://alpine:3.19", path=Path("."), format="name")
    assert wrap(["sh"], image=sandbox) == ["apptainer", "exec", "/images/py", "sh"]
    assert wrap(["sh"], image=named) == ["apptainer", "exec", "docker://alpine:3.19", "sh"]


def test_singularity_binary_name_after_detect() -> None:
    runtime = ApptainerRuntime()
    runtime._binary = "singularity"
    assert runtime.wrap(["true"], ContainerContext(image=SIF))[0] == "singularity"


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(Exception, match="nvcli"):
        wrap(["true"], options={"nvcli": True})
