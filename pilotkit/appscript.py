"""The user's program that an app runs in batch mode (``script`` or ``module``, with
``args``), as the Dask and Ray apps do: its checks, its interpreter, its command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol

from .errors import SpecProblem


class ScriptOptions(Protocol):
    """The options of an app that runs a script: what :func:`check_script` and
    :func:`script_argv` read."""

    @property
    def mode(self) -> str: ...
    @property
    def script(self) -> str | None: ...
    @property
    def module(self) -> str | None: ...
    @property
    def args(self) -> list[str]: ...


class PythonOption(Protocol):
    @property
    def python(self) -> str | None: ...


def check_script(options: ScriptOptions, base_dir: Path) -> list[SpecProblem]:
    """Problems with ``mode``, ``script``, ``module`` and ``args`` (batch mode runs exactly
    one of a script, which must exist, or a module; interactive mode runs neither)."""
    problems: list[SpecProblem] = []
    if options.mode == "batch":
        if (options.script is None) == (options.module is None):
            problems.append(SpecProblem("app", "batch mode needs exactly one of 'script' or 'module'"))
    elif options.script is not None or options.module is not None:
        problems.append(
            SpecProblem("app.mode", "interactive mode runs no script: remove 'script'/'module' or use batch")
        )
    if options.args and options.script is None and options.module is None:
        problems.append(SpecProblem("app.args", "'args' needs a 'script' or 'module'"))
    if options.script is not None:
        path = script_path(options.script, base_dir)
        if not path.is_file():
            problems.append(SpecProblem("app.script", f"no such file: {path}"))
    return problems


def script_path(script: str, base_dir: Path) -> Path:
    """The script's absolute path (relative paths are taken from the spec's folder)."""
    path = Path(script).expanduser()
    return path if path.is_absolute() else base_dir / path


def script_argv(python: str, options: ScriptOptions, base_dir: Path) -> list[str]:
    """The batch-mode command: the user's script or module with its arguments."""
    if options.module is not None:
        return [python, "-m", options.module, *options.args]
    assert options.script is not None
    return [python, str(script_path(options.script, base_dir)), *options.args]


def python_for(options: PythonOption, containerised: bool) -> str:
    """The interpreter an app runs on the nodes: the options' ``python``, else this one
    (``python3`` inside a container)."""
    if options.python:
        return options.python
    return "python3" if containerised else sys.executable
