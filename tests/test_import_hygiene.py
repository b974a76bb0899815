"""The core, the daemon and the plugin API never load Textual; the dashboard
(``pilotkit.tui``) is only a client: it imports nothing of the daemon, the pilot or the
scheduler."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUI = ROOT / "pilotkit" / "tui"
FORBIDDEN_IN_TUI = ("pilotkit.daemon", "pilotkit.pilot", "pilotkit.scheduler")

CORE_MODULES = [
    "pilotkit",
    "pilotkit.cli.main",
    "pilotkit.pilot",
    "pilotkit.scheduler",
    "pilotkit.client",
    "pilotkit.protocol",
    "pilotkit.events",
    "pilotkit.hookspecs",
    "pilotkit.interfaces",
    "pilotkit.plugins",
    "pilotkit.testing",
    "pilotkit.tui",
    "pilotkit.cli.tui",
]


def _daemon_modules() -> list[str]:
    return ["pilotkit.daemon"] + [
        f"pilotkit.daemon.{p.stem}" for p in sorted((ROOT / "pilotkit" / "daemon").glob("*.py"))
        if p.stem != "__init__"
    ]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_importing_the_core_and_daemon_never_loads_textual() -> None:
    modules = CORE_MODULES + _daemon_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "    assert not loaded, f'importing {name} loaded {loaded[:3]}'\n"
        "from pilotkit.plugins import Plugins\n"
        "Plugins().load()\n"
        "assert 'textual' not in sys.modules, 'loading the plugins loaded textual'\n"
        "print('ok')\n"
    )
    result = _run(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("argv", [["run", "--help"], ["--help"], ["tui", "--help"]])
def test_cli_help_never_loads_textual(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from pilotkit.cli.main import cli\n"
        "try:\n"
        f"    cli.main({argv!r}, prog_name='pilotkit', standalone_mode=False)\n"
        "finally:\n"
        "    assert 'textual' not in sys.modules, 'the CLI loaded textual'\n"
        "print('ok')\n"
    )
    result = _run(code)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr


def _imports(text: str, package: str, filename: str = "<text>") -> list[tuple[int, str]]:
    """Absolute names of the modules some code imports, relative imports resolved
    against ``package`` (the package the code's module is in)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text, filename)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return out


def _file_imports(path: Path) -> list[tuple[int, str]]:
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    return _imports(path.read_text(), package, str(path))


def test_the_dashboard_imports_no_daemon_pilot_or_scheduler() -> None:
    files = sorted(TUI.rglob("*.py"))
    assert len(files) > 5
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in files
        for line, name in _file_imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_TUI)
    ]
    assert not bad, "pilotkit.tui must stay a client of the daemon's API:\n" + "\n".join(bad)


def test_the_scan_resolves_relative_imports() -> None:
    names = {n for _, n in _imports("from ...daemon.server import Daemon\nfrom ... import pilot\n",
                                     "pilotkit.tui.screens")}
    assert {"pilotkit.daemon.server", "pilotkit.pilot"} <= names


def test_parsing_a_spec_imports_no_plugin() -> None:
    """Reading a spec into typed data needs no plugin; only resolving it asks them."""
    code = (
        "import sys\n"
        "from pilotkit.specfile import parse\n"
        "parsed = parse('name = \"x\"\\n[provider]\\ntype = \"slurm\"\\npartition_x = 1\\n', 'spec.toml')\n"
        "assert parsed.spec.provider.type == 'slurm' and parsed.spec.provider.options == {'partition_x': 1}\n"
        "loaded = sorted(m for m in sys.modules if m in ('pilotkit.plugins', 'pilotkit.interfaces', 'pilotkit.spec')"
        " or m.startswith(('pilotkit.builtin', 'pilotkit_')))\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    result = _run(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


HEAVY = ("distributed", "dask", "ray", "optuna", "kr8s", "kubernetes_asyncio", "jupyter_server",
         "asyncssh", "pynvml", "packaging.requirements", "textual")  # fmt: skip
"""Libraries of single plugins or commands: loading the plugins must import none of them."""


def test_loading_every_plugin_imports_only_their_packages() -> None:
    """Every ``pilotkit`` command loads every installed plugin: each registers its classes
    lazily (``register.lazy``) and re-exports with ``lazy_exports``, so that loading them
    costs their ``__init__`` only and an unused plugin never slows a command down."""
    code = (
        "import sys\n"
        "from pilotkit.plugins import Plugins\n"
        "plugins = Plugins().load()\n"
        "assert not plugins.errors, plugins.errors\n"
        "names = sorted(plugins.info)\n"
        "assert len(names) >= 10, names\n"
        "sub = sorted(m for m in sys.modules if m.startswith('pilotkit_') and '.' in m)\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(sub, heavy)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    # pilotkit_mpi.watch: the mpi plugin's event hook (a few lines, no imports of its own)
    assert result.stdout.strip() == "['pilotkit_mpi.watch'] []", result.stdout


def test_lazy_registrations_name_what_their_classes_say() -> None:
    """A lazy registration's id and attributes (a stager's ``schemes``, a runtime's
    ``binaries``) are the class's own, once imported."""
    from pilotkit.plugins import Plugins

    plugins = Plugins().load()
    lazy = 0
    for kind, table in plugins.tables.items():
        for ident, entry in table.items():
            if entry.target is None:
                continue
            lazy += 1
            cls = plugins.resolve(kind, entry)
            assert cls.id == ident, entry.target
            for name, value in entry.attrs.items():
                assert getattr(cls, name) == value, f"{entry.target}.{name}"
    assert lazy >= 12
