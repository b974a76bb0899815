"""Where a batch pilot meets its node agents: the agent server, the token file the
agents read, and the command line that starts an agent. Providers that start agents on
other nodes (Slurm, PBS, ...) use this; they differ only in how the command is run."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from .events import Log, NodeLost
from .interfaces import PilotContext
from .remote import AgentServer, RemoteAgent
from .spec import ResolvedSpec
from .vocab import PILOT_ADDRESS_FILE, PILOT_TOKEN_FILE


class Rendezvous:
    """Starts an agent server for one pilot and waits for its node agents."""

    REJOIN_WAIT = 20.0
    """Seconds a pilot that comes back waits for the agents it left (they try every 2 s);
    it goes on with those that came, the others' nodes lost."""

    def __init__(
        self, ctx: PilotContext, spec: ResolvedSpec, *, host: str, python: str | None = None, rejoin: bool = False
    ) -> None:
        """``rejoin``: the pilot comes back to agents that run already (re-attaching):
        the token in the run directory is kept, and the port of the address file is
        tried first."""
        self.ctx = ctx
        self.rejoin = rejoin
        pilot = spec.spec.pilot
        self.token_file = ctx.workdir / PILOT_TOKEN_FILE
        self.address_file = ctx.workdir / PILOT_ADDRESS_FILE
        token, port = None, 0
        if rejoin:
            token, port = self._earlier()
        self.server = AgentServer(
            ctx.pilot_id,
            host=host,
            heartbeat=spec.seconds(pilot.heartbeat) or 8.0,
            heartbeat_timeout=spec.seconds(pilot.heartbeat_timeout) or 16.0,
            on_signal=self._signalled,
            on_lost=self._lost,
            token=token,
            port=port,
            linger=ctx.linger,
            on_join=ctx.join,
        )
        self.python = python or sys.executable
        self.on_signal_hook: list[object] = []
        self.on_node_lost: list[Callable[[str], None]] = []
        """Called with the name of each node declared lost (a provider replacing it)."""
        self.job_label = "the batch job"
        """What the job is called in messages; a provider sets ``Slurm job 12`` once it
        has submitted it."""

    def _earlier(self) -> tuple[str, int]:
        """The token and port of the run this pilot comes back to."""
        from .errors import PilotkitError

        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise PilotkitError(f"cannot re-attach: {self.token_file}: {exc.strerror or exc}") from None
        try:
            port = int(self.address_file.read_text().strip().rpartition(":")[2])
        except (OSError, ValueError):
            port = 0
        return token, port

    async def start(self) -> None:
        await self.server.start()
        self.ctx.workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.server.token + "\n")
        # Written whole, then renamed: an agent never reads half an address.
        partial = self.address_file.with_name(self.address_file.name + ".new")
        partial.write_text(self.server.address + "\n")
        os.replace(partial, self.address_file)

    def node_agent_argv(self, node_name: str | None = None) -> list[str]:
        argv = [
            self.python, "-m", "pilotkit.cli.main", "agent",
            "--connect", self.server.address, "--token-file", str(self.token_file),
            "--pilot", self.ctx.pilot_id,
        ]  # fmt: skip
        if node_name is not None:
            argv += ["--node-name", node_name]
        return argv

    def head_agent_argv(self, launch: list[str]) -> list[str]:
        return [
            self.python, "-m", "pilotkit.cli.main", "agent", "--head",
            "--connect", self.server.address, "--token-file", str(self.token_file),
            "--pilot", self.ctx.pilot_id, "--", *launch,
        ]  # fmt: skip

    async def wait(self, count: int, timeout: float) -> list[RemoteAgent]:
        if self.rejoin:
            timeout = min(timeout, self.REJOIN_WAIT)
        try:
            agents = await self.server.wait_for(count, timeout)
        except TimeoutError:
            from .errors import PilotkitError

            have = sorted(self.server.agents)
            if self.rejoin and have:
                self.server.stop_waiting()
                self.ctx.emit(Log(pilot=self.ctx.pilot_id, level="warn", source="pilot", message=(
                    f"re-attached with {len(have)} of {count} node agents ({', '.join(have)}); "
                    f"the others did not come back within {timeout:g}s")))  # fmt: skip
                return sorted(self.server.agents.values(), key=lambda a: a.node.name)
            raise PilotkitError(
                f"only {len(have)} of {count} node agents connected within {timeout:g}s"
                + (f" ({', '.join(have)})" if have else "")
                + f"; agents connect back to {self.server.address}"
            ) from None
        return sorted(agents, key=lambda a: a.node.name)

    def _signalled(self, signame: str) -> None:
        self.ctx.emit(Log(pilot=self.ctx.pilot_id, level="info", message=f"batch system sent {signame}", source="head"))
        if signame == "SIGUSR1":
            self.ctx.request_drain(f"{signame}: the allocation ends soon")
        else:
            reason = f"{self.job_label} cancelled from outside the pilot ({signame} from the batch system)"
            self.ctx.request_drain(reason, terminate=True)

    def _lost(self, agent: RemoteAgent, reason: str) -> None:
        self.ctx.emit(NodeLost(pilot=self.ctx.pilot_id, node=agent.node.name, reason=reason))
        for hook in self.on_node_lost:
            hook(agent.node.name)

    async def close(self) -> None:
        await self.server.close()
        for path in (self.token_file, self.address_file):
            try:
                path.unlink()
            except OSError:
                pass

    async def detach(self) -> None:
        """Stop listening, keeping the token and address files: the agents wait for the
        pilot to come back (:attr:`PilotContext.linger`)."""
        await self.server.close()
