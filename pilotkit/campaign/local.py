"""Local allocations for campaigns: each one held by a process of its own.

A campaign on the local provider claims this machine once per allocation. So that an
allocation can be ended from outside, as ``scancel`` ends a batch job, each one is held
by a ``sleep`` process whose pid is the allocation's job id: ``kill PID`` ends that
allocation (its running tasks go back to the backlog and the campaign replaces it).
The holder dies with the campaign's process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal

from ..builtin.local import LocalProvider
from ..interfaces import PilotContext
from ..types import Allocation


class HeldLocalProvider(LocalProvider):
    """The local provider with a holder process per allocation."""

    async def claim(self, ctx: PilotContext) -> Allocation:
        allocation = await super().claim(ctx)
        hold = f"{self.spec.walltime + 60:.0f}" if self.spec.walltime else "infinity"
        self._holder = await asyncio.create_subprocess_exec(
            "sleep", hold, stdin=asyncio.subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent
        )
        self._released = False
        return Allocation(
            provider=allocation.provider,
            nodes=allocation.nodes,
            job_id=str(self._holder.pid),
            walltime_end=allocation.walltime_end,
            data={"holder": "sleep"},
        )

    async def poll(self, allocation: Allocation) -> str | None:
        code = self._holder.returncode
        if code is None or self._released:
            return None
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return f"cancelled: local allocation {allocation.job_id} ended from outside ({how})"

    async def release(self, allocation: Allocation) -> None:
        self._released = True
        holder = getattr(self, "_holder", None)
        if holder is not None and holder.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                holder.kill()
            await holder.wait()


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the holder, before ``exec``: SIGKILL when the campaign's process dies (even
    by ``kill -9``), so no holder outlives its campaign."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
