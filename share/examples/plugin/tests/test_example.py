"""The example plugin against pilotkit's contract tests, and one small pilot."""

from __future__ import annotations

import json

import pytest
from pilotkit_example import ForkProvider, SweepApp

from pilotkit.api import App, PilotState, Provider
from pilotkit.testing import RunSpec
from pilotkit.testing.contracts import AppContract, ProviderContract


class TestForkProvider(ProviderContract):
    @pytest.fixture
    def provider_cls(self) -> type[Provider]:
        return ForkProvider


class TestSweepApp(AppContract):
    @pytest.fixture
    def app_cls(self) -> type[App]:
        return SweepApp


SPEC = """name = "example"
[provider]
type = "example-fork"
[resources]
nodes = 2
[app]
type = "example-sweep"
command = "python3 -c 'import sys; sys.exit(int({value}) % 2)'"
values = [0, 1, 2, 3]
"""


async def test_a_sweep_on_pretend_nodes(run_spec: RunSpec) -> None:
    run = await run_spec(SPEC)
    assert run.state is PilotState.FAILED, "the odd values fail"
    summary = json.loads((run.workdir / "sweep.json").read_text())
    assert {task["value"]: task["status"] for task in summary.values()} == {
        0: "done", 1: "failed", 2: "done", 3: "failed"
    }
    assert {task["node"] for task in summary.values()} <= {"node1", "node2"}
