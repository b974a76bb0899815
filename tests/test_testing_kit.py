"""pilotkit.testing, the plugin test kit: what it offers works as its docs say."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pilotkit.api as api
import pilotkit.testing as kit


class EchoStager(api.Stager):
    id = "kit-echo"

    async def stage(self, ref: str, ctx: api.PilotContext) -> api.StagedImage:
        ctx.emit(api.Log(pilot=ctx.pilot_id, level="info", message=f"staged {ref}", source=self.id))
        return api.StagedImage(ref, ctx.workdir / "image", "dir")


@api.hookimpl
def pilotkit_register_stagers(register: Any) -> None:
    register(EchoStager)


def test_the_kit_exports_what_its_all_names() -> None:
    assert len(set(kit.__all__)) == len(kit.__all__)  # (its order is ruff's RUF022)
    assert all(hasattr(kit, name) for name in kit.__all__)


async def test_plugins_with_and_pilot_context(tmp_path: Path) -> None:
    plugins = kit.plugins_with({"kit-echo": types.SimpleNamespace(pilotkit_register_stagers=pilotkit_register_stagers)})
    assert plugins.stager("kit-echo") is EchoStager
    assert "kit-echo" not in kit.plugins_with().tables["stagers"]
    events: list[api.Event] = []
    ctx = kit.pilot_context(tmp_path, events.append, plugins=plugins)
    assert ctx.pilot_id == "pilot-1" and ctx.spec.name == "test" and ctx.workdir == tmp_path / "run"
    image = await plugins.stager("kit-echo")(None).stage("docker://x", ctx)
    assert image.path == tmp_path / "run" / "image"
    assert [e.message for e in events if isinstance(e, api.Log)] == ["staged docker://x"]
