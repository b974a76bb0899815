"""Third-party plugins as their authors ship them: packages built and installed with pip
into a fresh virtual environment, then used through the ``pilotkit`` command line.

The environment is new and empty but for the packages under test; it sees the
dependencies (and this checkout's pilotkit, installed editable) through a ``.pth`` line
naming the development environment's site-packages, so nothing is downloaded. Marked
``packaging``: these tests build packages (about 10 s).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "share" / "examples" / "plugin"

FUTURE_PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "pilotkit-future"
version = "1.0"
dependencies = ["pilotkit>=0.3,<0.4"]

[project.entry-points.pilotkit]
future = "pilotkit_future"
"""
FUTURE_MODULE = 'raise RuntimeError("an incompatible plugin must not be imported")\n'


@dataclass
class Venv:
    root: Path
    python: Path
    example: Path
    """The example plugin's sources (a copy: building writes into them)."""

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PILOTKIT_LOAD", "PILOTKIT_DISABLE"))}
        env.pop("PYTHONPATH", None)
        env["COLUMNS"] = "300"  # tables unwrapped
        return subprocess.run(
            [str(self.python), *args], capture_output=True, text=True, cwd=cwd or self.root, env=env, timeout=timeout
        )

    def pilotkit(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "pilotkit.cli.main", *args, timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    root = tmp_path_factory.mktemp("plugin-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=60)
    python = root / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    dev = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "pilotkit-dev-env.pth").write_text(f"import site; site.addsitedir({dev!r})\n")

    example = root / "src" / "example"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    future = root / "src" / "future"
    (future / "pilotkit_future").mkdir(parents=True)
    (future / "pyproject.toml").write_text(FUTURE_PYPROJECT)
    (future / "pilotkit_future" / "__init__.py").write_text(FUTURE_MODULE)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-build-isolation",
         "--no-deps", "--no-index", str(example), str(future)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield Venv(root, python, example)


def _plugins(venv: Venv) -> dict[str, dict[str, object]]:
    listed = venv.pilotkit("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    return {entry["name"]: entry for entry in json.loads(listed.stdout)}


@pytest.mark.packaging
def test_the_example_plugin_installs_and_loads(venv: Venv) -> None:
    example = _plugins(venv)["example"]
    assert example["error"] is None
    assert example["source"] == "pilotkit-example" and example["version"] == "0.1.0"
    assert example["registered"] == {"providers": ["example-fork"], "apps": ["example-sweep"]}


@pytest.mark.packaging
def test_a_pilot_runs_on_the_example_provider_and_app(venv: Venv) -> None:
    spec = venv.root / "sweep.toml"
    spec.write_text(
        'name = "sweep"\n[provider]\ntype = "example-fork"\n[resources]\nnodes = 2\n'
        '[app]\ntype = "example-sweep"\ncommand = "echo value {value}"\nvalues = [1, 2, 3]\n'
    )
    workdir = venv.root / "run"
    done = venv.pilotkit("run", "-q", "--workdir", str(workdir), str(spec), timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((workdir / "sweep.json").read_text())
    assert sorted(task["value"] for task in summary.values()) == [1, 2, 3]
    assert {task["status"] for task in summary.values()} == {"done"}
    assert {task["node"] for task in summary.values()} <= {"node1", "node2"}


@pytest.mark.packaging
def test_the_example_passes_its_contract_tests(venv: Venv) -> None:
    tested = venv.run(
        "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "tests", cwd=venv.example, timeout=180
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert " passed" in tested.stdout and "skipped" not in tested.stdout


@pytest.mark.packaging
def test_a_plugin_for_another_plugin_api_is_reported_and_not_loaded(venv: Venv) -> None:
    future = _plugins(venv)["future"]
    assert future["error"] == (
        "pilotkit-future 1.0 requires pilotkit>=0.3,<0.4 (plugin API 0.3); "
        "this is pilotkit 0.2.0 (plugin API 0.2)"
    )
    assert future["registered"] == {} and future["hooks"] == []
    table = venv.pilotkit("plugins")
    assert table.returncode == 0 and "error: pilotkit-future 1.0 requires pilotkit>=0.3,<0.4" in table.stdout


def _pilotkit_imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "pilotkit" else [f"pilotkit.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name == "pilotkit" or name.startswith("pilotkit.")]
    return found


def test_the_example_imports_only_the_public_api() -> None:
    allowed = {"pilotkit.api", "pilotkit.testing", "pilotkit.testing.contracts"}
    files = sorted(EXAMPLE.rglob("*.py"))
    assert len(files) >= 4
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in files
        for line, name in _pilotkit_imports(path)
        if name not in allowed or (name != "pilotkit.api" and "tests" not in path.parts)
    ]
    assert not bad, "the example plugin imports private pilotkit modules:\n" + "\n".join(bad)


PLUGIN_PACKAGES = sorted(p for p in (ROOT / "plugins").glob("*/pilotkit_*") if p.is_dir() and p.suffix != ".egg-info")
@pytest.mark.parametrize(
    "package",
    PLUGIN_PACKAGES,
    ids=lambda p: p.parent.name,
)
def test_plugin_packages_import_only_the_public_api(package: Path) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted(package.rglob("*.py"))
        for line, name in _pilotkit_imports(path)
        if name != "pilotkit.api"
    ]
    assert not bad, "plugin code imports private pilotkit modules:\n" + "\n".join(bad)
