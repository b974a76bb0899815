"""The ``validate`` call: a spec checked with the daemon's plugins, every problem listed.

A spec that is not valid is an answer, not an error: the result lists its problems
(file, line, key, message). Runs in a worker thread (parsing and the plugins' checks
may read files).
"""

from __future__ import annotations

from ..errors import PilotkitError, SpecError
from ..plugins import Plugins
from ..protocol import SpecProblemInfo, ValidateParams, ValidateResult
from ..spec import parse_spec


def validate(params: ValidateParams, plugins: Plugins) -> ValidateResult:
    """Parse, check and resolve ``params.spec`` as ``submit`` would."""
    try:
        resolved = parse_spec(params.spec, params.path, plugins, profile=params.profile)
    except SpecError as exc:
        return ValidateResult(valid=False, problems=[
            SpecProblemInfo(file=p.file, key=p.key, line=p.line, message=p.message, suggestion=p.suggestion)
            for p in exc.problems
        ])
    except PilotkitError as exc:  # the profile asked for is in none of the daemon's files
        from .faults import BadParams

        raise BadParams(exc.message) from None
    tasks: int | None = None
    groups = getattr(resolved.app_options, "groups", None)
    if groups is not None and resolved.app_cls.id == "tasks":
        from ..scan import count_tasks

        tasks = sum(count_tasks(g) for g in groups)
    return ValidateResult(
        valid=True, name=resolved.name, provider=resolved.provider_cls.id, app=resolved.app_cls.id, tasks=tasks,
    )
