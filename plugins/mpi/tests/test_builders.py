"""Golden tests of the launch argv: srun, OpenMPI's mpirun, MPICH's Hydra; the launcher
plugins and pilotkit's launcher contract."""

from __future__ import annotations

import pytest
from pilotkit_mpi import builders
from pilotkit_mpi.builders import LaunchConfig, build, hostfile_text
from pilotkit_mpi.launchers import MpirunLauncher, MpirunOptions, SrunLauncher, SrunOptions

from pilotkit.interfaces import Launcher
from pilotkit.testing.contracts import LauncherContract

from .conftest import Golden

NODES = ["node1", "node2", "node3"]
ENV = {"MASTER_ADDR": "node1", "MASTER_PORT": "29500", "OMP_NUM_THREADS": "2"}
CMD = ["python3", "train.py", "--lr", "0.1"]


def test_srun_one_rank_per_node(golden: Golden) -> None:
    config = LaunchConfig(launcher="srun", nodes=NODES, env=ENV, cpus_per_rank=2)
    golden.check("srun_pmix", build(config, CMD))


def test_srun_ranks_per_gpu_pmi2_label_and_a_comma_in_the_env(golden: Golden) -> None:
    config = LaunchConfig(
        launcher="srun",
        nodes=["gpu01", "gpu02"],
        ranks_per_node=4,
        env={"MASTER_ADDR": "gpu01", "NCCL_IB_HCA": "mlx5_0,mlx5_1"},
        pmi="pmi2",
        cpus_per_rank=8,
        gpus_per_rank=1,
        label=True,
        extra_args=["--cpu-bind=cores"],
    )
    golden.check("srun_pmi2_gpus_comma_env", build(config, CMD))


def test_openmpi_inside_slurm_as_root_with_interface(golden: Golden) -> None:
    config = LaunchConfig(
        nodes=NODES,
        ranks_per_node=2,
        env=ENV,
        hostfile="/run/trial/hostfile",
        interface="10.213.0.0/24",
        btl=["tcp", "self"],
        as_root=True,
        inside_slurm=True,
    )
    golden.check("openmpi_slurm_root", build(config, CMD))


def test_openmpi_plain_lists_hosts_when_no_hostfile(golden: Golden) -> None:
    config = LaunchConfig(nodes=["a", "b"], ranks_per_node=3, label=True, binary="/opt/ompi/bin/mpirun")
    golden.check("openmpi_plain", build(config, CMD))


def test_mpich_hydra_inside_slurm(golden: Golden) -> None:
    config = LaunchConfig(
        flavour="mpich",
        nodes=NODES,
        ranks_per_node=2,
        env=ENV,
        hostfile="/run/trial/hostfile",
        interface="ib0",
        inside_slurm=True,
    )
    golden.check("mpich_slurm", build(config, CMD))


def test_mpich_hydra_plain(golden: Golden) -> None:
    config = LaunchConfig(flavour="mpich", nodes=["a", "b"], ranks_per_node=1, label=True)
    golden.check("mpich_plain", build(config, CMD))


def test_hostfiles() -> None:
    assert hostfile_text(["a", "b"], 2) == "a slots=2\nb slots=2\n"
    assert hostfile_text(["a", "b"], 2, "mpich") == "a:2\nb:2\n"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"launcher": "aprun"}, "launcher must be"),
        ({"flavour": "intel"}, "flavour"),
        ({"pmi": "pmi1"}, "pmi must be"),
        ({"nodes": []}, "no nodes"),
        ({"ranks_per_node": 0}, "at least 1"),
        ({"flavour": "mpich", "interface": "10.0.0.0/8"}, "interface name"),
    ],
)
def test_impossible_configs_are_refused(changes: dict[str, object], message: str) -> None:
    config = LaunchConfig.from_dict({**LaunchConfig(nodes=["a"]).to_dict(), **changes})
    with pytest.raises(ValueError, match=message):
        build(config, CMD)


def test_config_round_trips_through_json() -> None:
    import json

    config = LaunchConfig(launcher="srun", nodes=NODES, env=ENV, btl=["tcp"])
    assert LaunchConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="unknown launch settings: colour"):
        LaunchConfig.from_dict({"colour": "red"})


def test_builders_import_only_the_standard_library() -> None:
    imported = {
        line.split()[1].split(".")[0]
        for line in open(builders.__file__).read().splitlines()
        if line.startswith(("import ", "from ")) and not line.startswith("from __future__")
    }
    assert imported <= {"dataclasses", "json", "collections", "typing"}


def test_launcher_plugins_give_the_builders_argv() -> None:
    srun = SrunLauncher(SrunOptions(pmi="pmi2", cpus_per_rank=4))
    assert srun.wrap(CMD, NODES, 2, ENV) == build(
        LaunchConfig(launcher="srun", nodes=NODES, ranks_per_node=2, env=ENV, pmi="pmi2", cpus_per_rank=4),
        CMD,
    )
    mpirun = MpirunLauncher(MpirunOptions(flavour="mpich", hostfile="/h"))
    assert mpirun.wrap(CMD, NODES, 1) == ["mpiexec", "-n", "3", "-ppn", "1", "-f", "/h", *CMD]


class TestSrunContract(LauncherContract):
    @pytest.fixture
    def launcher_cls(self) -> type[Launcher]:
        return SrunLauncher


class TestMpirunContract(LauncherContract):
    @pytest.fixture
    def launcher_cls(self) -> type[Launcher]:
        return MpirunLauncher
