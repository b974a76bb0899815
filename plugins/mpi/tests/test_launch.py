"""The per-trial wrapper: nodes and master from the environment, the hostfile, the exec."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from pilotkit_mpi.builders import LaunchConfig
from pilotkit_mpi.launch import parse_args, plan, trial_nodes
from pilotkit_mpi.trials import LAUNCH_PY

SHIM = ["shim", "--"]


def config(**launch: object) -> dict[str, object]:
    data = LaunchConfig(**launch).to_dict()  # type: ignore[arg-type]
    del data["nodes"]
    return {"launch": data, "shim": SHIM, "master_port": None}


def test_srun_trial_on_the_gang_nodes() -> None:
    environ = {"PILOTKIT_NODES": "node2,node3", "SLURM_JOB_ID": "17"}
    argv, env, hostfile = plan(
        config(launcher="srun", ranks_per_node=2, env={"A": "1"}),
        ["prog"],
        environ=environ,
        hostname="node2",
        port=4242,
        as_root=True,
        cwd="/t",
    )
    assert hostfile is None
    assert env == {
        "MASTER_ADDR": "node2",
        "MASTER_PORT": "4242",
        "PILOTKIT_MPI_WORLD_SIZE": "4",
        "PILOTKIT_MPI_RANKS_PER_NODE": "2",
        "A": "1",
    }
    assert argv[:7] == [
        "srun",
        "--overlap",
        "--mpi=pmix",
        "--nodes=2",
        "--ntasks=4",
        "--ntasks-per-node=2",
        "--nodelist=node2,node3",
    ]
    assert argv[-3:] == ["shim", "--", "prog"]


def test_mpirun_trial_outside_slurm_gets_a_hostfile_and_no_overlap() -> None:
    argv, env, hostfile = plan(
        {**config(launcher="mpirun", ranks_per_node=2), "master_port": 29500},
        ["prog", "x"],
        environ={},
        hostname="laptop",
        port=1,
        as_root=False,
        cwd="/t",
    )
    assert hostfile == "laptop slots=2\n"
    assert env["MASTER_ADDR"] == "laptop" and env["MASTER_PORT"] == "29500"
    assert "--allow-run-as-root" not in argv and "plm_slurm_args" not in argv
    assert argv[argv.index("--hostfile") + 1] == "/t/hostfile"
    assert "-x" in argv and "MASTER_PORT=29500" in argv


def test_nodes_fall_back_to_the_host() -> None:
    assert trial_nodes({}, "me") == ["me"]
    assert trial_nodes({"PILOTKIT_NODES": "a,b"}, "me") == ["a", "b"]


def test_bad_arguments_exit() -> None:
    import pytest

    for bad in ([], ["--config", "{}", "--", "x"], ["--config", "nope", "--", "x"], ["-c", "{}", "--", "x"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_wrapper_writes_its_files_and_becomes_the_launcher(tmp_path: Path) -> None:
    fake = tmp_path / "fake-mpirun"
    fake.write_text(
        "#!/bin/sh\n"
        'printf "%s\\n" "$@" > argv.txt\n'
        'echo "$MASTER_ADDR $MASTER_PORT $PILOTKIT_MPI_WORLD_SIZE" > env.txt\n'
        "exit 7\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    run = tmp_path / "trial"
    run.mkdir()
    cfg = config(launcher="mpirun", ranks_per_node=1, binary=str(fake))
    env = {**os.environ, "PILOTKIT_NODES": "n1,n2,n3"}
    env.pop("SLURM_JOB_ID", None)
    out = subprocess.run(
        [sys.executable, "-I", "-S", LAUNCH_PY, "--config", json.dumps(cfg), "--", "prog", "arg"],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 7, out.stderr
    assert (run / "hostfile").read_text() == "n1 slots=1\nn2 slots=1\nn3 slots=1\n"
    record = json.loads((run / "launch.json").read_text())
    assert record["nodes"] == ["n1", "n2", "n3"] and record["argv"][0] == str(fake)
    passed = (run / "argv.txt").read_text().split("\n")
    assert passed[-4:-1] == ["--", "prog", "arg"]
    addr, port, size = (run / "env.txt").read_text().split()
    assert addr == "n1" and int(port) > 0 and size == "3"
    assert "pilotkit-mpi: exec " in out.stderr
