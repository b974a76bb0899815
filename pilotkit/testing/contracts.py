"""Contract tests a plugin runs against itself.

Subclass the class for your plugin's kind in your own tests and give the fixture it
names::

    from pilotkit.testing.contracts import RuntimeContract

    class TestMyRuntime(RuntimeContract):
        @pytest.fixture
        def runtime_cls(self):
            return MyRuntime
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ..errors import MissingBinaryError
from ..interfaces import (
    App,
    Bind,
    ContainerContext,
    ContainerRuntime,
    Launcher,
    Provider,
    StagedImage,
    Stager,
)
from ..plugins import Plugins


def _check_common(cls: type[Any], base: type[Any]) -> None:
    assert issubclass(cls, base)
    assert isinstance(cls.id, str) and cls.id and cls.id == cls.id.strip()
    assert issubclass(cls.Options, msgspec.Struct)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"surely_not_an_option_xyz": 1}, cls.Options)


def _check_registered(cls: type[Any], kind: str) -> None:
    plugins = Plugins().load()
    entry = plugins.tables[kind].get(cls.id)
    assert entry is not None, f"{cls.id} is not registered through an installed plugin"
    assert plugins.resolve(kind, entry) is cls


class RuntimeContract:
    """For container runtime plugins. Needs the fixture ``runtime_cls``."""

    kind = "runtimes"

    def test_identity(self, runtime_cls: type[ContainerRuntime]) -> None:
        _check_common(runtime_cls, ContainerRuntime)
        assert runtime_cls.binaries, "list the executables the runtime looks for"

    def test_registered(self, runtime_cls: type[ContainerRuntime]) -> None:
        _check_registered(runtime_cls, self.kind)

    def test_wrap_is_pure(self, runtime_cls: type[ContainerRuntime], tmp_path: Path) -> None:
        runtime = runtime_cls()
        ctx = ContainerContext(
            image=StagedImage("docker://example/image:1", tmp_path / "image", "dir"),
            binds=(Bind("/data", "/data", True),),
            env={"A": "1"},
            workdir="/work",
            gpus=("GPU-0000",),
            options=msgspec.convert({}, runtime_cls.Options),
        )
        argv = ["python3", "-c", "print(1)"]
        saved = copy.deepcopy((argv, ctx.env))
        first = runtime.wrap(argv, ctx)
        assert first == runtime.wrap(argv, ctx)
        assert (argv, ctx.env) == saved, "wrap must not change its inputs"
        assert all(isinstance(a, str) for a in first)
        assert first[-3:] == argv or "print(1)" in " ".join(first)

    async def test_missing_binary_is_clear(
        self, runtime_cls: type[ContainerRuntime], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(MissingBinaryError) as info:
            await runtime_cls().detect()
        assert info.value.binary in runtime_cls.binaries


class ProviderContract:
    """For provider plugins. Needs the fixture ``provider_cls``."""

    kind = "providers"

    def test_identity(self, provider_cls: type[Provider]) -> None:
        _check_common(provider_cls, Provider)

    def test_registered(self, provider_cls: type[Provider]) -> None:
        _check_registered(provider_cls, self.kind)


class AppContract:
    """For app plugins. Needs the fixture ``app_cls``."""

    kind = "apps"

    def test_identity(self, app_cls: type[App]) -> None:
        _check_common(app_cls, App)

    def test_registered(self, app_cls: type[App]) -> None:
        _check_registered(app_cls, self.kind)


class LauncherContract:
    """For launcher plugins. Needs the fixture ``launcher_cls``."""

    kind = "launchers"

    def test_identity(self, launcher_cls: type[Launcher]) -> None:
        _check_common(launcher_cls, Launcher)

    def test_registered(self, launcher_cls: type[Launcher]) -> None:
        _check_registered(launcher_cls, self.kind)

    def test_wrap_keeps_argv(self, launcher_cls: type[Launcher]) -> None:
        argv = ["hostname"]
        wrapped = launcher_cls().wrap(argv, ["node1", "node2"], 1)
        assert wrapped[-1] == "hostname" and argv == ["hostname"]


class StagerContract:
    """For stager plugins. Needs the fixture ``stager_cls``."""

    kind = "stagers"

    def test_identity(self, stager_cls: type[Stager]) -> None:
        _check_common(stager_cls, Stager)

    def test_registered(self, stager_cls: type[Stager]) -> None:
        _check_registered(stager_cls, self.kind)
