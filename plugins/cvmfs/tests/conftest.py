"""A pilot context whose events land in a list, and a CVMFS-like tree in tmp_path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from pilotkit.api import ContainerRuntime, Event, PilotContext, Register, hookimpl
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


FLAT = "a3/a3f0c4e1b2d3c4b5a6978897a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7"


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def ctx(tmp_path: Path, events: list[Event]) -> PilotContext:
    spec = parse_spec('name = "cvmfs-test"\n' + GROUPS, tmp_path / "spec.toml", Plugins().load(entry_points=False))
    return PilotContext("pilot-1", spec, tmp_path / "run", events.append)


@dataclass
class Tree:
    root: Path
    """What the ``root`` option points at (stands for ``/cvmfs``)."""
    repository: Path
    flat: Path
    """The unpacked image every link points to."""


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    """``<tmp>/cvmfs/unpacked.cern.ch`` laid out as the real repository is."""
    root = tmp_path / "cvmfs"
    repository = root / "unpacked.cern.ch"
    flat = repository / ".flat" / FLAT
    for sub in ("bin", "etc", "usr/lib"):
        (flat / sub).mkdir(parents=True)
    (flat / "usr/lib/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    os.symlink("../usr/lib/os-release", flat / "etc/os-release")
    hub = repository / "registry.hub.docker.com"
    (hub / "library").mkdir(parents=True)
    (hub / "atlas").mkdir()
    os.symlink(f"../../.flat/{FLAT}", hub / "library/python:3.11")
    os.symlink(f"../../.flat/{FLAT}", hub / "library/python:latest")
    os.symlink(f"../../.flat/{FLAT}", hub / "atlas/athena:22.0")
    (repository / "gitlab-registry.cern.ch/org").mkdir(parents=True)
    os.symlink(f"../../.flat/{FLAT}", repository / "gitlab-registry.cern.ch/org/img:v1")
    return Tree(root, repository, flat)
