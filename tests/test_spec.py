"""Spec loading: strict keys, typed values, every problem at once with file, key, line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotkit.errors import SpecError
from pilotkit.plugins import Plugins
from pilotkit.spec import KeyLines, load_spec, parse_spec

from .conftest import EXAMPLES


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins().load()


def problems(text: str, plugins: Plugins) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "spec.toml", plugins)
    return [p.format() for p in info.value.problems]


def test_examples_are_valid(plugins: Plugins) -> None:
    for path in sorted(EXAMPLES.glob("*.toml")):
        resolved = load_spec(path, plugins)
        assert resolved.name


def test_misspelt_key_names_file_key_line_and_suggestion(plugins: Plugins) -> None:
    text = 'name = "x"\n\n[resources]\nnodse = 1\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
    assert problems(text, plugins) == ["spec.toml:4: resources.nodse: unknown key (did you mean 'nodes'?)"]


def test_wrong_type(plugins: Plugins) -> None:
    text = 'name = "x"\n[resources]\ncores = "two"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
    assert problems(text, plugins) == ["spec.toml:3: resources.cores: expected an integer, got a string"]


def test_every_problem_at_once(plugins: Plugins) -> None:
    text = """name = "x"
[resources]
cores = 512
walltime = "soon"
[pilot]
grace = "10 parsecs"
[app]
type = "tasks"
retires = 2
[[app.groups]]
name = "g"
command = "echo {missing}"
gpus = -1
"""
    found = problems(text, plugins)
    assert "spec.toml:9: app.retires: unknown key (did you mean 'retries'?)" in found
    assert any(p.startswith("spec.toml:4: resources.walltime: 'soon' is not a duration") for p in found)
    assert any(p.startswith("spec.toml:6: pilot.grace:") for p in found)
    assert any(p.startswith("spec.toml:13: app.groups[0].gpus:") for p in found)
    assert any("spec.toml:12: app.groups[0].command: unknown placeholder '{missing}'" in p for p in found)
    assert "spec.toml:3: resources.cores: 512 cores asked for, this machine has" in "\n".join(found)


def test_unknown_plugin_suggests(plugins: Plugins) -> None:
    text = 'name = "x"\n[provider]\ntype = "locl"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
    (line,) = problems(text, plugins)
    assert line.startswith("spec.toml:3: provider.type: unknown provider 'locl' (did you mean 'local'?)")


def test_missing_required(plugins: Plugins) -> None:
    assert problems('[[app.groups]]\nname = "g"\ncommands = ["true"]\n', plugins) == [
        "spec.toml: name: required key is missing"
    ]


def test_task_that_cannot_fit_is_refused_at_validate_time(plugins: Plugins) -> None:
    text = 'name = "x"\n[resources]\ncores = 1\n[[app.groups]]\nname = "g"\ncommands = ["true"]\ncores = 2\n'
    assert problems(text, plugins) == [
        "spec.toml:7: app.groups[0].cores: a task asks for 2 cores, a node has 1"
    ]


def test_toml_syntax_error_has_line(plugins: Plugins) -> None:
    (line,) = problems('name = "x"\n[resources\n', plugins)
    assert line.startswith("spec.toml:2: not valid TOML")


def test_missing_file(tmp_path: Path, plugins: Plugins) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.toml", plugins)
    assert "no such file" in str(info.value)


def test_key_lines_arrays_of_tables() -> None:
    lines = KeyLines("[[a.g]]\nx = 1\n[[a.g]]\nx = 2\n[a.g.grid]\ny = 3\n")
    assert lines.find("a.g[1].x") == 4
    assert lines.find("a.g[1].grid.y") == 6
    assert lines.find("a.g[0].nothing") == 1


def test_parse_needs_no_plugin_and_resolve_checks_plugin_options(plugins: Plugins) -> None:
    from pilotkit.spec import resolve
    from pilotkit.specfile import parse

    text = 'name = "x"\n[provider]\ntype = "local"\nslcie = 1\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
    parsed = parse(text, "spec.toml")
    assert parsed.spec.provider.options == {"slcie": 1}
    with pytest.raises(SpecError) as info:
        resolve(parsed, plugins)
    (line,) = [p.format() for p in info.value.problems]
    assert line.startswith("spec.toml:4: provider.slcie: unknown key")


def test_parse_then_resolve_is_parse_spec(plugins: Plugins) -> None:
    from pilotkit.spec import resolve
    from pilotkit.specfile import load

    for path in sorted(EXAMPLES.glob("*.toml")):
        assert resolve(load(path), plugins) == load_spec(path, plugins)


def test_an_image_needs_a_container_runtime_unless_the_app_runs_images() -> None:
    from pilotkit.api import App, AppContext, hookimpl

    class ImageApp(App):
        id = "runs-images"
        runs_images = True

        async def run(self, ctx: AppContext) -> None:
            return None

    @hookimpl
    def register(register: object) -> None:
        register(ImageApp)  # type: ignore[operator]

    import types

    plugins = Plugins().load()
    plugins.register_module("runs-images", types.SimpleNamespace(pilotkit_register_apps=register))
    image = '\n[image]\nref = "/tmp/app.sif"\nstager = "local"\n'
    found = problems('name = "x"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n' + image, plugins)
    assert any("container: an image is set but no [container] runtime" in p for p in found), found
    spec = parse_spec('name = "x"\n[app]\ntype = "runs-images"\n' + image, None, plugins)
    assert spec.stager_cls is not None and spec.runtime_cls is None
