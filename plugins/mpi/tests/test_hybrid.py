"""Golden tests of the hybrid model: the host's launcher starts each rank in the image,
built as launcher + rank shim + ``runtime.wrap(argv, ContainerContext(mpi=True))`` with
the runtime plugins' own classes (installed, or from this checkout's ``plugins/``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pilotkit_mpi.hybrid import hybrid_argv, rank_command
from pilotkit_mpi.launchers import MpirunLauncher, MpirunOptions, SrunLauncher, SrunOptions
from pilotkit_mpi.trials import RANKENV_PY

from pilotkit.interfaces import Bind, ContainerContext, StagedImage

from .conftest import Golden, runtime_module

NODES = ["node1", "node2", "node3"]
ENV = {"MASTER_ADDR": "node1", "MASTER_PORT": "29500"}
CMD = ["python3", "/work/train.py", "--epochs", "3"]
SHIM = [sys.executable, "-I", "-S", RANKENV_PY, "--"]
SRUN = SrunLauncher(SrunOptions(cpus_per_rank=2))
MPIRUN = MpirunLauncher(MpirunOptions(hostfile="/run/trial/hostfile", as_root=True, inside_slurm=True))


def context(image: StagedImage, options: Any = None) -> ContainerContext:
    return ContainerContext(
        image=image,
        binds=(Bind("/scratch/data", "/data", readonly=True), Bind("/scratch/run", "/scratch/run")),
        env={"OMP_NUM_THREADS": "2"},
        workdir="/scratch/run/tasks/mpi-0",
        options=options,
    )


NAMED = StagedImage("docker://acme/train:1.0", Path("acme/train:1.0"), "name")


def test_apptainer_with_srun_and_mpirun(golden: Golden) -> None:
    mod = runtime_module("pilotkit_apptainer", "apptainer")
    runtime = mod.ApptainerRuntime()
    options = mod.ApptainerOptions(
        mpi_binds=["/opt/hostmpi:/opt/hostmpi:ro"], mpi_library_path=["/opt/hostmpi/lib"]
    )
    ctx = context(StagedImage("docker://acme/train:1.0", Path("/images/train.sif"), "sif"), options)
    golden.check(
        "hybrid_apptainer_srun", hybrid_argv(SRUN, CMD, NODES, 1, ENV, runtime=runtime, ctx=ctx, shim=SHIM)
    )
    golden.check(
        "hybrid_apptainer_mpirun",
        hybrid_argv(MPIRUN, CMD, NODES, 2, ENV, runtime=runtime, ctx=ctx, shim=SHIM),
    )


def test_sarus(golden: Golden) -> None:
    mod = runtime_module("pilotkit_sarus", "sarus")
    ctx = context(NAMED, mod.SarusOptions(mpi_type="mpich"))
    argv = hybrid_argv(SRUN, CMD, NODES, 1, ENV, runtime=mod.SarusRuntime(), ctx=ctx, shim=SHIM)
    assert "--mpi" in argv
    golden.check("hybrid_sarus_srun", argv)


def test_shifter(golden: Golden) -> None:
    mod = runtime_module("pilotkit_shifter", "shifter")
    ctx = context(NAMED, mod.ShifterOptions())
    argv = hybrid_argv(SRUN, CMD, NODES, 1, ENV, runtime=mod.ShifterRuntime(), ctx=ctx, shim=SHIM)
    assert "--module=mpich" in argv
    golden.check("hybrid_shifter_srun", argv)


def test_podman_hpc(golden: Golden) -> None:
    mod = runtime_module("pilotkit_podman_hpc", "podman-hpc")
    ctx = context(NAMED, mod.PodmanHpcOptions())
    argv = hybrid_argv(MPIRUN, CMD, NODES, 1, ENV, runtime=mod.PodmanHpcRuntime(), ctx=ctx, shim=SHIM)
    assert "--mpi" in argv
    golden.check("hybrid_podman_hpc_mpirun", argv)


def test_oci(golden: Golden) -> None:
    """runc's wrapper carries the rank's whole config.json: the argv up to it is golden,
    the config is checked for what MPI needs (the command, /dev/shm shared)."""
    mod = runtime_module("pilotkit_oci", "oci")
    from pilotkit_oci.config import Host, base_config
    from pilotkit_oci.runtime import Prepared

    image = StagedImage("busybox", Path("/work/oci/busybox-1a2b"), "oci-bundle")
    runtime = mod.OciRuntime()
    config = base_config(Path("/images/busybox"), mod.OciOptions(), Host(uid=0, gid=0, host_files=()))
    runtime._prepared[str(image.path)] = Prepared(
        config, "/usr/sbin/runc", "/work/oci/runc", "/work/oci/bundles", [], mod.OciOptions()
    )
    argv = hybrid_argv(SRUN, CMD, NODES, 1, ENV, runtime=runtime, ctx=context(image), shim=SHIM)
    cut = argv.index("--config") + 1
    golden.check("hybrid_oci_srun_head", argv[:cut])
    assert cut == len(argv) - 1
    rank_config = json.loads(argv[cut])
    assert rank_config["process"]["args"] == CMD
    assert any(m["destination"] == "/dev/shm" for m in rank_config["mounts"])


def test_rank_command_marks_the_context_mpi_and_leaves_it_alone() -> None:
    seen: list[ContainerContext] = []

    class Recorder:
        def wrap(self, argv: list[str], ctx: ContainerContext) -> list[str]:
            seen.append(ctx)
            return ["run-in-image", *argv]

    ctx = context(NAMED)
    assert rank_command(CMD, Recorder(), ctx) == ["run-in-image", *CMD]  # type: ignore[arg-type]
    assert seen[0].mpi is True and ctx.mpi is False
    assert rank_command(CMD) == CMD
    with pytest.raises(ValueError, match="ContainerContext"):
        rank_command(CMD, Recorder())  # type: ignore[arg-type]
