"""pytest fixtures for pilotkit and plugin authors (loaded automatically as a pytest
plugin once pilotkit is installed).

- ``pilotkit_plugins``: a fresh plugin manager with the built-ins and the installed
  plugins, installed as the process's manager for the test.
- ``run_spec``: ``await run_spec(text_or_path, workdir=...)`` runs a pilot in-process
  and returns its :class:`~pilotkit.pilot.PilotOutcome` with the events it emitted.
- ``slurm_cluster``, ``slurm`` (:mod:`pilotkit.testing.slurm`) and ``sshd``
  (:mod:`pilotkit.testing.sshd`): the real Slurm test cluster and a real OpenSSH server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..events import Event
from ..pilot import Pilot, PilotOutcome
from ..plugins import Plugins, set_plugins
from ..spec import load_spec, parse_spec


@pytest.fixture
def pilotkit_plugins() -> Iterator[Plugins]:
    plugins = Plugins().load()
    set_plugins(plugins)
    try:
        yield plugins
    finally:
        set_plugins(None)


class RunResult:
    def __init__(self, outcome: PilotOutcome, events: list[Event]) -> None:
        self.outcome = outcome
        self.events = events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outcome, name)

    def results(self) -> list[Any]:
        from ..results import read_results

        return read_results(self.outcome.results)


RunSpec = Callable[..., Awaitable[RunResult]]


@pytest.fixture
def run_spec(pilotkit_plugins: Plugins, tmp_path: Path) -> RunSpec:
    async def run(
        spec: str | Path,
        *,
        workdir: Path | None = None,
        on_pilot: Callable[[Pilot], None] | None = None,
    ) -> RunResult:
        if isinstance(spec, Path):
            resolved = load_spec(spec, pilotkit_plugins)
        else:
            source = tmp_path / "spec.toml"
            source.write_text(spec)
            resolved = parse_spec(spec, source, pilotkit_plugins)
        pilot = Pilot(resolved, pilotkit_plugins, workdir=workdir or tmp_path / "run")
        events: list[Event] = []
        pilot.bus.subscribe(events.append)
        if on_pilot is not None:
            on_pilot(pilot)
        outcome = await pilot.run()
        return RunResult(outcome, events)

    return run


from .slurm import slurm, slurm_cluster  # noqa: E402 - fixtures re-exported for pytest
from .sshd import sshd  # noqa: E402

__all__ = ["RunResult", "pilotkit_plugins", "run_spec", "slurm", "slurm_cluster", "sshd"]
