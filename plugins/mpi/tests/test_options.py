"""What ``pilotkit validate`` says about ``[app] type = "mpi"`` specs; the trial layout."""

from __future__ import annotations

import pytest
from pilotkit_mpi.app import MpiApp
from pilotkit_mpi.options import MpiOptions
from pilotkit_mpi.trials import choose_launcher, layout

from pilotkit.errors import PilotkitError, SpecError
from pilotkit.interfaces import App
from pilotkit.plugins import Plugins
from pilotkit.spec import ResolvedSpec, load_spec, parse_spec
from pilotkit.testing.contracts import AppContract
from pilotkit.types import GpuInfo, NodeInfo

from .conftest import EXAMPLES

HEAD = 'name = "t"\n[resources]\nnodes = {nodes}\nwalltime = "5m"\n[provider]\ntype = "{provider}"\n'


def resolve(
    app: str, plugins: Plugins, *, nodes: int = 3, provider: str = "slurm", extra: str = ""
) -> ResolvedSpec:
    return parse_spec(HEAD.format(nodes=nodes, provider=provider) + extra + app, "spec.toml", plugins)


def problems(app: str, plugins: Plugins, **kw: object) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        resolve(app, plugins, **kw)  # type: ignore[arg-type]
    return {p.key: p.message for p in info.value.problems}


def test_a_plain_run_and_a_scan_are_valid(pilotkit_plugins: Plugins) -> None:
    spec = resolve('[app]\ntype = "mpi"\ncommand = "python3 x.py"\nranks_per_node = 2\n', pilotkit_plugins)
    assert isinstance(spec.app_options, MpiOptions) and spec.app_options.ranks_per_node == 2
    scan = resolve(
        '[app]\ntype = "mpi"\nnodes = 1\ncommand = "x --lr {lr} --out {task_dir}/m"\n'
        '[app.scan]\noptimiser = "random"\ntrials = 5\n[app.scan.params]\nlr = { loguniform = [1e-4, 1e-1] }\n',
        pilotkit_plugins,
    )
    assert scan.app_options.scan.trials == 5


def test_placeholders_and_distributions_are_checked_as_in_the_tasks_app(pilotkit_plugins: Plugins) -> None:
    found = problems(
        '[app]\ntype = "mpi"\ncommand = "x {lr} {nope}"\n[app.scan]\noptimiser = "random"\ntrials = 2\n'
        "[app.scan.params]\nlr = { uniform = [2, 1] }\n",
        pilotkit_plugins,
    )
    assert "unknown placeholder '{nope}'" in found["app.command"]
    assert "low <= high" in found["app.scan.params.lr"]


def test_impossible_layouts(pilotkit_plugins: Plugins) -> None:
    found = problems(
        '[app]\ntype = "mpi"\ncommand = "x"\nnodes = 4\ngpus = 1\nranks_per_node = 2\nranks_per_gpu = 1\n',
        pilotkit_plugins,
    )
    assert "the pilot has 3" in found["app.nodes"]
    assert "not both" in found["app.gpus"]
    assert "not both" in found["app.ranks_per_gpu"]


def test_srun_needs_slurm_and_mpich_needs_an_interface_name(pilotkit_plugins: Plugins) -> None:
    found = problems(
        '[app]\ntype = "mpi"\ncommand = "x"\nlauncher = "srun"\nmpi = "mpich"\ninterface = "10.0.0.0/8"\n',
        pilotkit_plugins,
        nodes=1,
        provider="local",
    )
    assert "the provider is 'local'" in found["app.launcher"]
    assert "interface name" in found["app.interface"]


def test_scan_settings(pilotkit_plugins: Plugins) -> None:
    found = problems(
        '[app]\ntype = "mpi"\ncommand = "x {a}"\n[app.scan]\noptimiser = "bayes-magic"\n[app.scan.grid]\na = [1]\n',
        pilotkit_plugins,
    )
    assert "unknown optimiser 'bayes-magic'" in found["app.scan.optimiser"]
    assert "needs a number of trials" in found["app.scan.trials"]
    assert "search space" in found["app.scan.params"]
    empty = problems('[app]\ntype = "mpi"\ncommand = "x"\n[app.scan]\ntrials = 3\n', pilotkit_plugins)
    assert "set a 'grid'" in empty["app.scan"] and "only used with" in empty["app.scan.trials"]


def test_unknown_keys_get_a_suggestion(pilotkit_plugins: Plugins) -> None:
    with pytest.raises(SpecError) as info:
        resolve('[app]\ntype = "mpi"\ncommand = "x"\nranks_per_nod = 2\n', pilotkit_plugins)
    (problem,) = info.value.problems
    assert problem.key == "app.ranks_per_nod" and problem.suggestion == "ranks_per_node"


def test_containers_are_refused_until_the_pool_can_leave_the_launcher_outside(
    pilotkit_plugins: Plugins,
) -> None:
    if "apptainer" not in pilotkit_plugins.tables["runtimes"]:
        pytest.skip("the apptainer runtime plugin is not installed")
    found = problems(
        '[app]\ntype = "mpi"\ncommand = "x"\n',
        pilotkit_plugins,
        extra='[image]\nref = "/images/x.sif"\n[container]\nruntime = "apptainer"\n',
    )
    assert "cannot run ranks in a container" in found["container"]


# ---------------------------------------------------------------------- layout


def node(name: str, cores: int = 8, gpus: int = 0) -> NodeInfo:
    return NodeInfo(
        name=name, cores=cores, memory=1, gpus=[GpuInfo(index=i, uuid=f"GPU-{name}-{i}") for i in range(gpus)]
    )


def test_layout_of_whole_node_trials() -> None:
    nodes = [node("a"), node("b"), node("c")]
    lay = layout(MpiOptions(command="x", nodes=1, ranks_per_node=4), nodes, "slurm")
    assert (lay.launcher, lay.nodes, lay.ranks_per_node, lay.cpus_per_rank, lay.slots) == ("srun", 1, 4, 2, 3)
    assert layout(MpiOptions(command="x"), nodes, "local").nodes == 3
    with pytest.raises(PilotkitError, match="allocation has 3"):
        layout(MpiOptions(command="x", nodes=4), nodes, "slurm")


def test_layout_per_gpu() -> None:
    nodes = [node("a", 16, 4), node("b", 16, 4)]
    lay = layout(MpiOptions(command="x", ranks_per_gpu=1), nodes, "slurm", slurm_gpus=True)
    assert (lay.ranks_per_node, lay.gpus_per_rank, lay.cpus_per_rank) == (4, 1, 4)
    gpu_trials = layout(MpiOptions(command="x", gpus=2, ranks_per_gpu=2), nodes, "local")
    assert (gpu_trials.nodes, gpu_trials.gpus, gpu_trials.ranks_per_node, gpu_trials.slots) == (0, 2, 4, 4)
    with pytest.raises(PilotkitError, match="no GPUs"):
        layout(MpiOptions(command="x", ranks_per_gpu=1), [node("a")], "local")


def test_auto_launcher() -> None:
    assert choose_launcher("auto", "slurm") == "srun"
    assert choose_launcher("auto", "local") == "mpirun"
    assert choose_launcher("mpirun", "slurm") == "mpirun"


class TestAppContract(AppContract):
    @pytest.fixture
    def app_cls(self) -> type[App]:
        return MpiApp


@pytest.mark.parametrize("name", ["mpi-local.toml", "mpi-allreduce.toml", "mpi-scan.toml"])
def test_the_examples_are_valid(name: str, pilotkit_plugins: Plugins) -> None:
    resolved = load_spec(EXAMPLES / name, pilotkit_plugins)
    assert resolved.app_cls is MpiApp


def test_a_search_is_checked_as_in_the_tasks_app(pilotkit_plugins: Plugins) -> None:
    search = '[app.search]\nsampler = "{sampler}"\ntrials = 4\nobjective = "loss"\npruner = "{pruner}"\n'
    space = "[app.search.params]\nlr = { loguniform = [1e-4, 1e-1] }\n"
    app = '[app]\ntype = "mpi"\nnodes = 1\ncommand = "x --lr {lr} {nope}"\n'
    found = problems(app + search.format(sampler="nope", pruner="often") + space, pilotkit_plugins)
    assert "nope" in found["app.command"]
    assert "often" in found["app.search.pruner"]
    assert "nope" in found["app.search.sampler"]
    both = '[app.scan]\noptimiser = "random"\ntrials = 2\n[app.scan.params]\nlr = { uniform = [0, 1] }\n'
    found = problems(
        app.replace(" {nope}", "") + both + search.format(sampler="random", pruner="none") + space, pilotkit_plugins
    )
    assert found["app.search"] == "set 'scan' or 'search', not both"
    good = resolve(app.replace(" {nope}", "") + search.format(sampler="random", pruner="none") + space,
                   pilotkit_plugins)  # fmt: skip
    assert good.app_options.search.trials == 4
