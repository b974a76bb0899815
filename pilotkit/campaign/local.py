"""Local allocations for campaigns: each one held by a process of its own.

A campaign on the local provider claims this machine once per allocation. So that an
allocation can be ended from outside, as ``scancel`` ends a batch job, each one is held
by a ``sleep`` process whose pid is the allocation's job id: ``kill PID`` ends that
allocation (its running tasks go back to the backlog and the campaign replaces it).
The holder dies with the campaign's process (where util-linux's ``setpriv`` is
installed)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal

from ..builtin.local import LocalProvider
from ..interfaces import PilotContext
from ..types import Allocation


class HeldLocalProvider(LocalProvider):
    """The local provider with a holder process per allocation."""

    async def claim(self, ctx: PilotContext) -> Allocation:
        allocation = await super().claim(ctx)
        hold = f"{self.spec.walltime + 60:.0f}" if self.spec.walltime else "infinity"
        # setpriv (util-linux) execs sleep with SIGKILL due at the campaign process's
        # death, so no holder outlives it, even after kill -9.
        dies = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
        self._holder = await asyncio.create_subprocess_exec(
            *dies, "sleep", hold, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
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

