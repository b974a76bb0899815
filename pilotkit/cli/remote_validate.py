"""``pilotkit validate --host``: the spec checked by the daemon on another machine, with
the plugins installed there (its ``validate`` call)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
import msgspec

from ..errors import SpecError, SpecProblem
from ..protocol import ValidateResult


def validate_remote(spec: Path, as_json: bool, host: str, ssh_config: str | None, remote_socket: str | None,
                    remote_pilotkit: str | None, profile: str | None = None) -> None:
    """Print what local ``validate`` prints; exit 2 when the spec is not valid."""
    from ..client import Target, open_client
    from ..specfile.parsing import read_text

    try:
        text = read_text(spec)
    except SpecError as exc:
        if as_json:
            click.echo(json.dumps({"valid": False, "problems": [p.to_dict() for p in exc.problems]}, indent=2))
            sys.exit(2)
        raise
    target = Target(host=host, socket=remote_socket, ssh_config=ssh_config, remote_command=remote_pilotkit)

    async def main() -> ValidateResult:
        client = await open_client(target)
        try:
            # Paths resolve on the daemon's machine, as for 'submit'.
            return await client.validate(text, path=str(spec.resolve()), profile=profile)
        finally:
            await client.close()

    result = asyncio.run(main())
    if as_json:
        data = msgspec.to_builtins(result)
        data.setdefault("problems", [])
        click.echo(json.dumps(data, indent=2))
        if not result.valid:
            sys.exit(2)
        return
    if not result.valid:
        raise SpecError([
            SpecProblem(p.key, p.message, file=p.file, line=p.line, suggestion=p.suggestion) for p in result.problems
        ])
    click.echo(
        f"{spec}: valid: pilot '{result.name}', provider {result.provider}, app {result.app}"
        + (f", {result.tasks} tasks" if result.tasks is not None else "")
        + f" (checked on {host})"
    )
