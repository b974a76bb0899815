"""The mpi app launches through the launcher registry: a launcher a site plugin registers
(here a small test plugin, registered through pilotkit's plugin manager) is the one its
trials run with, with the real node names and master port put in on the node."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest
from pilotkit_mpi import launch, trials
from pilotkit_mpi.options import MpiOptions

from pilotkit.api import Launcher, PilotState, hookimpl
from pilotkit.errors import SpecError
from pilotkit.plugins import Plugins
from pilotkit.spec import parse_spec
from pilotkit.testing.plugin import RunSpec

RECORDER = (
    "import json, os, sys\n"
    "nodes, per_node, out = sys.argv[1].split(','), int(sys.argv[2]), sys.argv[3]\n"
    "seen = {k: os.environ.get(k) for k in ('SITE_TAG', 'MASTER_ADDR', 'MASTER_PORT', 'PILOTKIT_MPI_WORLD_SIZE')}\n"
    "json.dump({'nodes': nodes, 'per_node': per_node, 'env': seen}, open(out, 'w'))\n"
    "os.execvp(sys.argv[5], sys.argv[5:])\n"
)


class SiteOptions(msgspec.Struct, forbid_unknown_fields=True):
    tag: str = "none"


class SiteLauncher(Launcher):
    """What a site's ``flux run`` wrapper would look like: the nodes on its command line."""

    id = "site-run"
    Options = SiteOptions
    options = SiteOptions()

    def wrap(
        self, argv: Sequence[str], nodes: Sequence[str], per_node: int = 1, env: dict[str, str] | None = None
    ) -> list[str]:
        record = (env or {}).get("SITE_RECORD", "/dev/null")
        tagged = ["env", f"SITE_TAG={self.options.tag}"]
        return [*tagged, sys.executable, "-c", RECORDER, ",".join(nodes), str(per_node), record, "--", *argv]


@hookimpl
def pilotkit_register_launchers(register: object) -> None:
    register(SiteLauncher)  # type: ignore[operator]


@pytest.fixture
def site_plugin(pilotkit_plugins: Plugins) -> Plugins:
    module = types.ModuleType("pilotkit_site_launcher")
    module.pilotkit_register_launchers = pilotkit_register_launchers  # type: ignore[attr-defined]
    pilotkit_plugins.register_module("site-launcher", module)
    return pilotkit_plugins


def spec(record: Path, *, launcher: str = "site-run", options: str = 'tag = "flux"') -> str:
    return f"""name = "site"
[app]
type = "mpi"
launcher = "{launcher}"
command = "python3 -c 'import os; print(os.environ[\\"RANK\\"])'"
env = {{ SITE_RECORD = "{record}" }}
[app.launcher_options]
{options}
"""


async def test_a_plugin_launcher_runs_the_trial(site_plugin: Plugins, run_spec: RunSpec, tmp_path: Path) -> None:
    record = tmp_path / "launched.json"
    run = await run_spec(spec(record), workdir=tmp_path / "run")
    assert run.state is PilotState.DONE, run.reason
    (result,) = run.results()
    assert result.status == "ok"
    seen = json.loads(record.read_text())
    assert seen["nodes"] == [result.node], "the real node name replaced the stand-in"
    assert seen["per_node"] == 1
    env = seen["env"]
    assert env["SITE_TAG"] == "flux", "the launcher got its options from [app.launcher_options]"
    assert env["MASTER_ADDR"] == result.node and env["MASTER_PORT"].isdigit()
    assert env["PILOTKIT_MPI_WORLD_SIZE"] == "1"
    argv = json.loads((tmp_path / "run" / "tasks" / "mpi" / "launch.json").read_text())["argv"]
    assert argv[:2] == ["env", "SITE_TAG=flux"], "the trial ran the plugin's command line"
    assert not any("@PILOTKIT_" in arg for arg in argv)
    assert Path(result.stdout).read_text().strip() == "0", "the rank shim ran inside the launcher"


def test_unknown_launcher_and_bad_options_are_spec_problems(site_plugin: Plugins, tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    with pytest.raises(SpecError) as caught:
        parse_spec(spec(path, launcher="site-rn", options=""), path, site_plugin)
    (problem,) = caught.value.problems
    assert problem.key == "app.launcher" and "did you mean 'site-run'" in problem.message
    with pytest.raises(SpecError) as caught:
        parse_spec(spec(path, options='colour = "red"'), path, site_plugin)
    (problem,) = caught.value.problems
    assert problem.key == "app.launcher_options" and "colour" in problem.message
    with pytest.raises(SpecError) as caught:
        parse_spec(spec(path, launcher="mpirun"), path, site_plugin)
    (problem,) = caught.value.problems
    assert problem.key == "app.launcher_options" and "mpirun takes this app's own keys" in problem.message


def test_stand_ins_are_filled_per_node() -> None:
    lay = trials.Layout("site-run", 2, 0, 3, None, None, None, 1)
    argv = trials.plugin_argv(SiteLauncher(), lay, ["a.out"], {})
    assert trials.stand_in_nodes(2)[1] in argv[argv.index("-c") + 2]
    config = {"launch": {"ranks_per_node": 3, "env": {}}, "template": argv, "node_count": 2}
    final, env, hostfile = launch.plan(
        config, ["a.out"], environ={"PILOTKIT_NODES": "n1,n10"}, hostname="x", port=4242, as_root=False, cwd="/"
    )
    assert final[final.index("-c") + 2] == "n1,n10" and hostfile is None
    assert env["MASTER_ADDR"] == "n1" and env["PILOTKIT_MPI_WORLD_SIZE"] == "6"
    with pytest.raises(ValueError, match="planned for 2 node"):
        launch.plan(config, ["a.out"], environ={}, hostname="x", port=1, as_root=False, cwd="/")


def test_auto_still_means_srun_or_mpirun() -> None:
    options = msgspec.convert({"command": "x"}, MpiOptions)
    assert options.launcher == "auto" and options.launcher_options == {}
    assert trials.choose_launcher("auto", "slurm") == "srun"
    assert trials.choose_launcher("auto", "pbs") == "mpirun"
