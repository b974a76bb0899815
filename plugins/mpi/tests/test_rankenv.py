"""The per-rank shim: rank variables from each launcher, GPU choice, and the real exec."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pilotkit_mpi.rankenv import parse_args, pick_gpu, rank_env
from pilotkit_mpi.trials import RANKENV_PY


def test_openmpi_rank_inside_a_slurm_step_ignores_the_stale_slurm_rank() -> None:
    env = {
        "OMPI_COMM_WORLD_RANK": "3",
        "OMPI_COMM_WORLD_SIZE": "6",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "3",
        "SLURM_LOCALID": "0",
    }
    assert rank_env(env) == {
        "RANK": "3",
        "WORLD_SIZE": "6",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "NODE_RANK": "1",
        "GROUP_RANK": "1",
    }


def test_srun_rank_uses_slurm_and_the_wrappers_sizes() -> None:
    env = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "6",
        "SLURM_LOCALID": "1",
        "PMIX_RANK": "5",
        "PILOTKIT_MPI_WORLD_SIZE": "6",
        "PILOTKIT_MPI_RANKS_PER_NODE": "2",
    }
    got = rank_env(env)
    assert (got["RANK"], got["WORLD_SIZE"], got["LOCAL_RANK"], got["LOCAL_WORLD_SIZE"], got["NODE_RANK"]) == (
        "5",
        "6",
        "1",
        "2",
        "2",
    )


def test_hydra_rank() -> None:
    env = {"PMI_RANK": "2", "PMI_SIZE": "4", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"}
    got = rank_env(env)
    assert (got["RANK"], got["WORLD_SIZE"], got["LOCAL_RANK"], got["NODE_RANK"]) == ("2", "4", "0", "1")


def test_no_launcher_is_a_world_of_one() -> None:
    got = rank_env({})
    assert (got["RANK"], got["WORLD_SIZE"], got["LOCAL_RANK"], got["LOCAL_WORLD_SIZE"]) == (
        "0",
        "1",
        "0",
        "1",
    )
    assert "CUDA_VISIBLE_DEVICES" not in got


def test_local_rank_falls_back_to_rank_modulo_ranks_per_node() -> None:
    got = rank_env({"PMIX_RANK": "7", "PILOTKIT_MPI_RANKS_PER_NODE": "4", "PILOTKIT_MPI_WORLD_SIZE": "8"})
    assert (got["LOCAL_RANK"], got["NODE_RANK"]) == ("3", "1")


def test_ranks_per_gpu_picks_the_ranks_gpu() -> None:
    visible = "GPU-a,GPU-b,GPU-c,GPU-d"
    env = {"OMPI_COMM_WORLD_LOCAL_RANK": "5", "CUDA_VISIBLE_DEVICES": visible}
    assert rank_env(env, ranks_per_gpu=2)["CUDA_VISIBLE_DEVICES"] == "GPU-c"
    assert rank_env({"OMPI_COMM_WORLD_LOCAL_RANK": "3"}, ranks_per_gpu=1)["CUDA_VISIBLE_DEVICES"] == "3"


@pytest.mark.parametrize(
    ("visible", "index", "expected"),
    [(None, 2, "2"), ("", 0, "0"), ("GPU-x", 3, None), ("0,1", 1, "1"), ("0,1", 3, "1")],
)
def test_pick_gpu(visible: str | None, index: int, expected: str | None) -> None:
    assert pick_gpu(visible, index) == expected


def test_arguments() -> None:
    assert parse_args(["--", "a", "b"]) == (None, ["a", "b"])
    assert parse_args(["--ranks-per-gpu", "2", "--", "a"]) == (2, ["a"])
    for bad in (["a"], ["--"], ["--ranks-per-gpu", "0", "--", "a"], ["--what", "--", "a"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_the_shim_execs_the_command_with_the_variables() -> None:
    probe = "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'KEEP')}))"
    env = {
        "OMPI_COMM_WORLD_RANK": "1",
        "OMPI_COMM_WORLD_SIZE": "2",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        "KEEP": "yes",
    }
    out = subprocess.run(
        [sys.executable, "-I", "-S", RANKENV_PY, "--", sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "KEEP": "yes"}


def test_the_shim_reports_a_missing_command() -> None:
    out = subprocess.run(
        [sys.executable, "-I", "-S", RANKENV_PY, "--", "/nonexistent/program"], capture_output=True, text=True
    )
    assert out.returncode == 127 and "cannot run '/nonexistent/program'" in out.stderr
