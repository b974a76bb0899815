"""Check once, at prepare time, that runc can start a container from a bundle here.

The probe runs the real wrapper with a command that does not exist in the image, so it
needs nothing from the image: runc sets the whole container up (namespaces, mounts,
rlimits, capabilities) and fails only at the final exec, naming the missing command.
Seeing that name means the setup worked. A sandbox without ``CAP_SYS_RESOURCE`` fails
earlier, with "error setting rlimits"; the caller then drops ``process.rlimits``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pilotkit.api import run_command

PROBE_ARGV = ("/.pilotkit-probe-absent",)
RLIMIT_ERROR = "error setting rlimit"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    """runc set the container up; only the (absent) command failed."""
    rlimits_refused: bool
    """runc failed because it may not set the configured rlimits."""
    detail: str
    """runc's last line of output."""


def interpret(returncode: int, output: str) -> ProbeResult:
    """What a probe's exit status and output say."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else f"exit status {returncode}"
    refused = RLIMIT_ERROR in output
    ok = returncode == 0 or (not refused and PROBE_ARGV[0] in output)
    return ProbeResult(ok=ok, rlimits_refused=refused, detail=detail)


async def probe(argv: Sequence[str]) -> ProbeResult:
    """Run the wrapper's ``argv`` (for :data:`PROBE_ARGV`) and interpret the result."""
    done = await run_command(argv, timeout=60, check=False, purpose="probing runc")
    return interpret(done.returncode, done.stdout + done.stderr)
