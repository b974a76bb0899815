"""``pilotkit probe`` shows the lines plugins add through ``pilotkit_probe_checks``; a
plugin whose hook raises gives one error line naming it, and the probe goes on."""

from __future__ import annotations

import json
import types

from click.testing import CliRunner

from pilotkit.api import ProbeCheck, hookimpl
from pilotkit.plugins import Plugins
from pilotkit.testing import cli


@hookimpl
def _good_checks() -> list[ProbeCheck]:
    return [
        ProbeCheck("widget", "ok", "widget 1.2 at /usr/bin/widget"),
        ProbeCheck("gadget", "warning", "no /dev/gadget", hint="ask the site for /dev/gadget"),
    ]


@hookimpl
def _raising_checks() -> list[ProbeCheck]:
    raise OSError("cannot read /proc/widgets")


@hookimpl
def _wrong_checks() -> list[ProbeCheck]:
    return ["not a check"]  # type: ignore[list-item]


def _plugins() -> Plugins:
    plugins = Plugins().load(entry_points=False)
    plugins.register_module("widgets", types.SimpleNamespace(pilotkit_probe_checks=_good_checks))
    plugins.register_module("broken", types.SimpleNamespace(pilotkit_probe_checks=_raising_checks))
    plugins.register_module("sloppy", types.SimpleNamespace(pilotkit_probe_checks=_wrong_checks))
    return plugins


def test_plugins_lines_in_order_and_a_raising_hook_is_one_error_line() -> None:
    lines = _plugins().probe_checks()
    assert [(plugin, c.name, c.level) for plugin, c in lines] == [
        ("widgets", "widget", "ok"),
        ("widgets", "gadget", "warning"),
        ("broken", "broken", "error"),
        ("sloppy", "sloppy", "error"),
    ]
    assert lines[2][1].message == "pilotkit_probe_checks raised OSError: cannot read /proc/widgets"
    assert "other than ProbeCheck" in lines[3][1].message


def test_probe_shows_them_in_text_and_json() -> None:
    from pilotkit import plugins as plugins_module

    plugins = _plugins()
    plugins_module.set_plugins(plugins)
    try:
        result = CliRunner().invoke(cli, ["probe", "--no-gpu", "--json"])
        assert result.exit_code == 0, result.output
        checks = json.loads(result.output)["checks"]
        assert checks[1] == {
            "plugin": "widgets",
            "name": "gadget",
            "level": "warning",
            "message": "no /dev/gadget",
            "hint": "ask the site for /dev/gadget",
        }
        assert checks[2]["plugin"] == "broken" and checks[2]["level"] == "error"
        result = CliRunner().invoke(cli, ["probe", "--no-gpu"])
        assert result.exit_code == 0, result.output
        assert "no /dev/gadget; ask the site for /dev/gadget" in result.output
        assert "cannot read /proc/widgets" in result.output
        assert "Traceback" not in result.output
    finally:
        plugins_module.set_plugins(None)
