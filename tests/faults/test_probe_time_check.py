"""A task asking for more GPUs or cores than the largest node reports at probe time fails
the pilot with a located line instead of waiting forever (the spec passed validate: the
nodes had not been probed)."""

from __future__ import annotations

from pilotkit.pilot import Pilot
from pilotkit.states import PilotState
from pilotkit.testing.plugin import RunSpec


async def test_gpus_no_probed_node_has_fail_the_pilot(run_spec: RunSpec) -> None:
    def ask_for_more(pilot: Pilot) -> None:
        # What validate could not know: the node, once probed, has no GPU.
        pilot.spec.app_options.groups[0].gpus = 64

    spec = 'name = "gpu"\n[resources]\ngpus = 0\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
    run = await run_spec(spec, on_pilot=ask_for_more)
    assert run.state is PilotState.FAILED
    assert run.reason == "app.groups[0].gpus: a task asks for 64 GPUs, the largest node has 0"
    assert run.results() == []  # nothing ran, nothing waited


async def test_cores_no_probed_node_has_fail_the_pilot(run_spec: RunSpec) -> None:
    def ask_for_more(pilot: Pilot) -> None:
        pilot.spec.app_options.groups[0].cores = 10_000

    spec = 'name = "cores"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
    run = await run_spec(spec, on_pilot=ask_for_more)
    assert run.state is PilotState.FAILED
    assert run.reason is not None and run.reason.startswith("app.groups[0].cores: a task asks for 10000 cores")
