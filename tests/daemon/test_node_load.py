"""A batch pilot's nodes show their agents' load, per CPU too: node agents in separate
processes over real TCP (a provider installed for the daemon through an entry point on
PYTHONPATH, the local machine standing in for the nodes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psutil

from .conftest import DaemonProcess, wait_for, write_spec

PLUGIN = '''
import asyncio, contextlib, os, signal, time
import pilotkit
from pilotkit.interfaces import Provider
from pilotkit.rendezvous import Rendezvous
from pilotkit.types import Allocation


class ProcNodes(Provider):
    id = "procnodes"
    description = "test stand-in: node agents as local processes"

    async def claim(self, ctx):
        self.rdv = Rendezvous(ctx, self.spec, host="127.0.0.1")
        await self.rdv.start()
        self.names = [f"node{i + 1}" for i in range(self.spec.spec.resources.nodes)]
        self.procs = [await asyncio.create_subprocess_exec(*self.rdv.node_agent_argv(n)) for n in self.names]
        return Allocation(self.id, self.names)

    async def agents(self, allocation, ctx):
        return list(await self.rdv.wait(len(self.names), 30))

    async def release(self, allocation):
        await self.rdv.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pilotkit.hookimpl
def pilotkit_register_providers(register):
    register(ProcNodes)
'''


def _install_plugin(site: Path) -> None:
    site.mkdir()
    (site / "procnodes_plugin.py").write_text(PLUGIN)
    info = site / "pilotkit_procnodes-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pilotkit-procnodes\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pilotkit]\nprocnodes = procnodes_plugin\n")


def test_batch_nodes_show_their_agents_load_per_cpu(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _install_plugin(tmp_path / "site")
    d: DaemonProcess = daemon_factory()
    d.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "site"), d.env.get("PYTHONPATH")]))
    d.env.pop("PILOTKIT_LOAD_PLUGINS", None)
    d.start()
    pilot = d.submit(write_spec(tmp_path, """
name = "loaded"
[provider]
type = "procnodes"
[resources]
nodes = 2
[pilot]
heartbeat = "0.3s"
grace = "1s"
[[app.groups]]
name = "g"
commands = ["sleep 30"]
"""))
    try:
        def loaded() -> list[dict[str, Any]]:
            nodes = json.loads(d.cli("nodes", pilot, "--json").stdout)["nodes"]
            return nodes if all(n.get("core_percent") for n in nodes) else []

        nodes = wait_for(loaded, 30, "both agents' load")
        assert {n["name"] for n in nodes} == {"node1", "node2"}
        assert all(len(n["core_percent"]) == psutil.cpu_count() and n["cpu_percent"] is not None
                   and n["memory_used"] > 0 for n in nodes)
        assert "load per CPU" in d.cli("nodes", pilot).stdout
    finally:
        d.cli("cancel", pilot, check=False)
        d.wait_state(pilot, {"cancelled", "done", "failed"})
