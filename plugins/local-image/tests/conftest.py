"""A pilot context whose events land in a list."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotkit.api import ContainerRuntime, Event, PilotContext, Register, Stager, hookimpl
from pilotkit.testing import Plugins, parse_spec

GROUPS = '[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
"""A task group, so that a spec text is complete."""


class FakeRuntime(ContainerRuntime):
    """Completes specs that need a ``[container]`` section."""

    id = "fake-runtime"


class _FakeRuntimePlugin:
    @staticmethod
    @hookimpl
    def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
        register(FakeRuntime)


def plugins_with(stager_module: object, name: str) -> Plugins:
    """The built-ins, the fake runtime and one stager plugin module."""
    plugins = Plugins().load(entry_points=False)
    plugins.register_module("fake-runtime", _FakeRuntimePlugin)
    plugins.register_module(name, stager_module)
    return plugins


def stagers(plugins: Plugins) -> dict[str, type[Stager]]:
    return {ident: plugins.resolve("stagers", entry) for ident, entry in plugins.tables["stagers"].items()}


class Recorder(list[Event]):
    """The events a context emitted."""

    def of(self, tag: str) -> list[Event]:
        return [e for e in self if e.__struct_config__.tag == tag]


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def ctx(tmp_path: Path, events: Recorder) -> PilotContext:
    spec = parse_spec('name = "local-image-test"\n' + GROUPS, tmp_path / "spec.toml", Plugins().load(entry_points=False))
    return PilotContext("pilot-1", spec, tmp_path / "run", events.append)
