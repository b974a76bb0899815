"""What a pip user gets: the wheels of pilotkit and its plugins, built from this checkout
and installed into a new virtual environment, run the README's first command from an
empty directory, with nothing from the checkout or the test environment visible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import ROOT

PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())


@dataclass
class Installed:
    wheels: Path
    venv: Path
    env: dict[str, str]

    def pilotkit(self, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "pilotkit"), *args],
            cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout,
        )


def _run(argv: list[str], **kwargs: object) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv[:4]}... exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    wheels = base / "wheels"
    # Build from a copy of the checkout (a build writes build/ folders beside the
    # sources), without isolation: setuptools and wheel are test dependencies, so this
    # needs no download.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "pilotkit-runs"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", str(wheels), str(source), *(str(source / "plugins" / p.name) for p in PLUGINS)], timeout=240)
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    core = next(wheels.glob("pilotkit-*.whl"))
    # Dependencies from the package index, at the pinned versions; pilotkit and its
    # plugins only from the wheels just built.
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          "-c", str(ROOT / "share" / "dev" / "constraints.txt"), "--find-links", str(wheels),
          f"{core}[examples]", *(f"pilotkit-{p.name}" for p in PLUGINS)], timeout=600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PILOTKIT_"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["XDG_STATE_HOME"] = str(base / "state")
    env["HOME"] = str(base / "home")
    yield Installed(wheels, venv, env)


def test_wheel_carries_examples_schemas_docs_unit_and_license(installed: Installed) -> None:
    core = next(installed.wheels.glob("pilotkit-*.whl"))
    names = zipfile.ZipFile(core).namelist()
    for shipped in ("pilotkit/_share/examples/scan.toml", "pilotkit/_share/examples/scan_fit.py",
                    "pilotkit/_share/schema/pilot-spec.schema.json", "pilotkit/_share/docs/plugins.md",
                    "pilotkit/_share/systemd/pilotkit.service"):
        assert shipped in names
    assert not [n for n in names if n.startswith(("tests/", "plugins/", "share/"))]
    for wheel in installed.wheels.glob("*.whl"):
        meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))
        text = zipfile.ZipFile(wheel).read(meta).decode()
        assert "BSD-3-Clause" in text, wheel.name
        if not wheel.name.startswith("pilotkit-0"):
            assert "Requires-Dist: pilotkit<0.3,>=0.2" in text, wheel.name


def test_readme_first_command_from_an_empty_directory(installed: Installed, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    copied = installed.pilotkit("examples", cwd=empty)
    assert copied.returncode == 0, copied.stderr
    assert "pilotkit run pilotkit-examples/scan.toml" in copied.stdout
    ran = installed.pilotkit("run", "-q", "--workdir", "run", "pilotkit-examples/scan.toml", cwd=empty, timeout=240)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    results = [json.loads(line) for line in (empty / "run" / "results.jsonl").read_text().splitlines()]
    assert len(results) == 18 and {r["exit_code"] for r in results} == {0}
    # Copying again refuses to overwrite what is there: one line, exit 2.
    again = installed.pilotkit("examples", cwd=empty)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--force" in again.stderr


def test_schema_docs_unit_and_plugins_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    schema = installed.pilotkit("schema", cwd=tmp_path)
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"]
    doc = installed.pilotkit("docs", "plugins", "--path", cwd=tmp_path)
    assert doc.returncode == 0 and str(installed.venv) in doc.stdout
    unit = installed.pilotkit("daemon", "--systemd-unit", cwd=tmp_path)
    assert f"ExecStart={installed.venv.resolve()}/bin/pilotkit daemon" in unit.stdout
    plugins = installed.pilotkit("plugins", "--json", cwd=tmp_path)
    assert plugins.returncode == 0, plugins.stderr
    loaded = {p["name"]: p for p in json.loads(plugins.stdout)}
    for plugin in PLUGINS:
        assert loaded[plugin.name]["error"] is None, loaded[plugin.name]
        assert loaded[plugin.name]["version"] == "0.2.0"
