"""The test kit for plugin packages (and pilotkit's own tests).

Plugin code imports only :mod:`pilotkit.api`; plugin *tests* may import this package too
(and :mod:`pilotkit.testing.contracts`), nothing else of pilotkit.

- fixtures (``pytest -p pilotkit.testing.plugin``, loaded automatically once pilotkit is
  installed): ``pilotkit_plugins`` (a fresh plugin manager with the built-ins and the
  installed plugins) and ``run_spec`` (runs a spec in-process, returns a
  :class:`RunResult`: the outcome and the events);
- :mod:`pilotkit.testing.contracts`: the contract tests a plugin runs against its classes;
- :class:`Plugins`, :func:`plugins_with`, :func:`set_plugins`: plugin managers for a test;
  :func:`parse_spec`, :func:`load_spec`: a spec resolved against them;
  :func:`pilot_context`: a :class:`~pilotkit.api.PilotContext` for calling a stager,
  runtime or provider directly; :class:`Pilot`: run a pilot yourself; :data:`cli`: the
  ``pilotkit`` command line (for ``click.testing.CliRunner``); :func:`read_results`;
- :func:`need`, :func:`need_binary`, :func:`need_optional`: skip (or fail under
  ``PILOTKIT_REQUIRE_REAL=1``) when a real component is missing;
- the ``sshd`` fixture (:mod:`pilotkit.testing.sshd`): a real OpenSSH server on loopback
  (:class:`Sshd`; :func:`free_port`), for ``--host`` commands; :func:`wait_for`: poll a
  condition on the event loop until it holds;
- :mod:`pilotkit.testing.chromium`: a web page in headless Chromium, as a PNG;
  :mod:`pilotkit.testing.localdaemon`: a real ``pilotkit daemon`` of a test's own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .needs import REQUIRE_REAL_ENV, need, need_binary, need_optional, require_real

if TYPE_CHECKING:
    from ..events import Event
    from ..interfaces import PilotContext
    from ..plugins import Plugins

DEFAULT_APP = '[[app.groups]]\nname = "g"\ncommands = ["true"]\n'
"""A task group that makes a spec text complete (``name = ...`` + this is a valid spec)."""


def plugins_with(modules: dict[str, object] | None = None, *, entry_points: bool = False) -> Plugins:
    """A plugin manager with the built-ins and ``modules`` (plugin name -> a module or
    object with hook implementations); the installed plugins too with ``entry_points``."""
    from ..plugins import Plugins

    plugins = Plugins().load(entry_points=entry_points)
    for name, module in (modules or {}).items():
        plugins.register_module(name, module)
    return plugins


def pilot_context(
    workdir: Path,
    emit: Callable[[Event], None] = lambda event: None,
    spec: str | None = None,
    plugins: Plugins | None = None,
) -> PilotContext:
    """A :class:`~pilotkit.api.PilotContext` of pilot ``pilot-1`` working in ``workdir``:
    what a stager, runtime or provider gets. ``spec`` (TOML text; default: a pilot named
    ``test`` with one task group) is resolved against ``plugins`` (default: the built-ins)."""
    from ..interfaces import PilotContext
    from ..spec import parse_spec

    text = spec if spec is not None else 'name = "test"\n' + DEFAULT_APP
    resolved = parse_spec(text, workdir / "spec.toml", plugins or plugins_with())
    return PilotContext("pilot-1", resolved, workdir / "run", emit)


from ..cli.main import cli  # noqa: E402 - the kit's re-exports follow its helpers
from ..pilot import Pilot, PilotOutcome  # noqa: E402
from ..plugins import Plugins, set_plugins  # noqa: E402
from ..results import TaskResult, read_results  # noqa: E402
from ..spec import load_spec, parse_spec  # noqa: E402
from .plugin import RunResult, RunSpec  # noqa: E402
from .sshd import Sshd, free_port  # noqa: E402
from .waiting import wait_for  # noqa: E402

__all__ = [
    "DEFAULT_APP",
    "REQUIRE_REAL_ENV",
    "Pilot",
    "PilotOutcome",
    "Plugins",
    "RunResult",
    "RunSpec",
    "Sshd",
    "TaskResult",
    "cli",
    "free_port",
    "load_spec",
    "need",
    "need_binary",
    "need_optional",
    "parse_spec",
    "pilot_context",
    "plugins_with",
    "read_results",
    "require_real",
    "set_plugins",
    "wait_for",
]
