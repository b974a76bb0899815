"""Plugins with stand-in runtimes, and a pilot context whose events land in a list."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotkit.api import ContainerRuntime, Event, PilotContext, Register, ResolvedSpec, hookimpl
from pilotkit.testing import Plugins, parse_spec

GROUPS = '[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
"""A task group, so that a spec text is complete."""


def _runtime(ident: str) -> type[ContainerRuntime]:
    return type(f"Fake{ident.title()}", (ContainerRuntime,), {"id": ident})


class _FakeRuntimes:
    """Stand-ins named like the real runtimes, so specs can name them."""

    @staticmethod
    @hookimpl
    def pilotkit_register_runtimes(register: Register[ContainerRuntime]) -> None:
        for ident in ("apptainer", "sarus", "shifter", "podman-hpc", "runc"):
            register(_runtime(ident))


def plugins_with(stager_module: object, name: str) -> Plugins:
    """The built-ins, stand-in runtimes and one stager plugin module."""
    plugins = Plugins().load(entry_points=False)
    plugins.register_module("fake-runtimes", _FakeRuntimes)
    plugins.register_module(name, stager_module)
    return plugins


def spec_with(text: str, tmp_path: Path, plugins: Plugins) -> ResolvedSpec:
    return parse_spec('name = "pull-test"\n' + text + GROUPS, tmp_path / "spec.toml", plugins)


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def ctx(tmp_path: Path, events: list[Event]) -> PilotContext:
    spec = parse_spec('name = "pull-test"\n' + GROUPS, tmp_path / "spec.toml", Plugins().load(entry_points=False))
    return PilotContext("pilot-1", spec, tmp_path / "run", events.append)
