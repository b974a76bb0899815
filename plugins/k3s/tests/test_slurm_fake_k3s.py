"""The multi-node bootstrap on the project's real 3-node Slurm cluster (share/testcluster),
with the fake k3s on PATH (k3s cannot run here) and the fake Kubernetes API: which node
runs what, the token, the join URL, the order, the end (every node keeps nothing), and
a node's k3s failing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pilotkit.api import Event, Log, PilotState
from pilotkit.testing import Pilot, Plugins, RunSpec, parse_spec

from .conftest import FAKE_API_PLUGIN, FakeK3s, job_manifest

pytestmark = [pytest.mark.slurm]

NODES = {"node1": "10.213.0.11", "node2": "10.213.0.12", "node3": "10.213.0.13"}
SLURM = """
[provider]
type = "slurm"
[resources]
nodes = 3
walltime = "10m"
[pilot]
heartbeat = "0.5s"
heartbeat_timeout = "5s"
grace = "3s"
"""


@pytest.fixture
def no_cni0_after() -> Iterator[None]:
    """Whatever the test's outcome, the test cluster's nodes keep no cni0 (the fake makes
    one in each node's network namespace; the cleanup under test should remove it)."""
    yield
    for node in NODES:
        if (
            subprocess.run(
                ["ip", "netns", "exec", node, "ip", "link", "show", "cni0"], capture_output=True
            ).returncode
            == 0
        ):
            subprocess.run(["ip", "netns", "exec", node, "ip", "link", "delete", "cni0"], capture_output=True)


def spec(tmp_path: Path, app: str) -> str:
    return (
        f'name = "k3s-slurm"\n{SLURM}\n[app]\ntype = "k3s-fakeapi"\npoll_interval = "0.1s"\n'
        f'data_dir = "{tmp_path / "node-local"}"\ngrace = "2s"\nready_timeout = "60s"\n{app}'
    )


def reports(workdir: Path) -> dict[str, dict[str, object]]:
    return {
        p.stem.removeprefix("cleanup-"): json.loads(p.read_text())
        for p in (workdir / "k3s").glob("cleanup-*.json")
    }


def assert_nodes_keep_nothing(workdir: Path, data_root: Path, made: bool = False) -> None:
    found = reports(workdir)
    assert sorted(found) == sorted(NODES)
    for node, report in found.items():
        assert not report.get("left"), (node, report)
        assert report.get("killed"), f"the shim k3s left on {node} was killed"
        if made:
            assert report.get("interfaces") == ["cni0"], (node, report)
            assert [m.rsplit("/", 1)[1] for m in report.get("unmounted", [])] == ["pod-volume"], (
                node,
                report,
            )
    assert not data_root.exists() or not any(data_root.rglob("*")), list(data_root.rglob("*"))


async def test_three_nodes_fake_k3s_bootstrap_job_and_evict(
    no_cni0_after: None,
    slurm: dict[str, str],
    fake_k3s: FakeK3s,
    pilotkit_plugins: Plugins,
    run_spec: RunSpec,
    tmp_path: Path,
) -> None:
    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    (tmp_path / "job.yaml").write_text(job_manifest("count", "echo one; echo two"))
    # As root, the fake makes a real mount and a real cni0 interface (each node has its own
    # network namespace): the cleanup must remove both.
    (fake_k3s.state / "make-mounts").write_text("")
    (fake_k3s.state / "make-interfaces").write_text("")
    with tarfile.open(tmp_path / "app.tar", "w"):
        pass  # an (empty) image archive to preload
    workdir = tmp_path / "run"
    app = f'manifests = ["{tmp_path}/job.yaml"]\nimages = ["app.tar"]\n'
    run = await run_spec(spec(tmp_path, app), workdir=workdir)
    assert run.state is PilotState.DONE, run.reason
    calls = fake_k3s.calls()
    assert sorted(calls) == ["agent-node2", "agent-node3", "server-node1"]
    server = calls["server-node1"]
    for name, call in calls.items():
        node = name.split("-", 1)[1]
        assert call["host"] == node, f"{name} ran on its own node"
        argv = call["argv"]
        assert (
            argv[argv.index("--data-dir") + 1]
            == f"{tmp_path}/node-local/pilotkit-k3s-{run.pilot_id}/{node}/k3s"
        )
        assert argv[argv.index("--token-file") + 1] == str(workdir / "k3s" / "token")
        assert call["token"] == server["token"] and len(server["token"]) == 64
        assert "--rootless" not in argv, "rootful as root"
        assert call["images"] == {"app.tar": str(tmp_path / "app.tar")}, (
            "the archive is in agent/images at start"
        )
    for agent in ("agent-node2", "agent-node3"):
        argv = calls[agent]["argv"]
        assert argv[argv.index("--server") + 1] == "https://node1:6443"
        assert calls[agent]["server_up"], "the agent started after the server was up"
        assert calls[agent]["start"] > server["start"]
    assert not server["server_up"]
    assert server["argv"][server["argv"].index("--tls-san") + 1] == "node1"
    kubeconfig = yaml.safe_load((workdir / "kubeconfig").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://node1:6443"
    api = fake_k3s.api_calls()
    labelled = {c["node"]: c["labels"] for c in api if c["call"] == "label"}
    assert sorted(labelled) == sorted(NODES)
    assert all(labels["pilotkit.io/pilot"] == run.pilot_id for labels in labelled.values())
    by_task = {r.task: r for r in run.results()}
    assert by_task["job-count"].exit_code == 0
    assert (workdir / "tasks" / "job-count" / "attempt-1.out").read_text() == "one\ntwo\n"
    assert {by_task[f"k3s-{'server' if n == 'node1' else 'agent'}-{n}"].node for n in NODES} == set(NODES)
    assert_nodes_keep_nothing(workdir, tmp_path / "node-local", made=True)
    assert not (workdir / "k3s" / "token").exists()


async def test_three_nodes_fake_k3s_server_failing_ends_the_pilot_and_cleans(
    slurm: dict[str, str], fake_k3s: FakeK3s, pilotkit_plugins: Plugins, tmp_path: Path
) -> None:
    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    resolved = parse_spec(spec(tmp_path, 'mode = "interactive"\n'), tmp_path / "spec.toml", pilotkit_plugins)
    workdir = tmp_path / "run"
    pilot = Pilot(resolved, pilotkit_plugins, workdir=workdir)
    logs: list[str] = []

    def watch(event: Event) -> None:
        if isinstance(event, Log) and event.source == "k3s":
            logs.append(event.message)

    pilot.bus.subscribe(watch)
    running = asyncio.ensure_future(pilot.run())
    try:
        for _ in range(600):
            if running.done() or any(m.startswith("k3s cluster ready") for m in logs):
                break
            await asyncio.sleep(0.1)
        assert not running.done(), running.result().reason
        assert json.loads((workdir / "k3s.json").read_text())["nodes"] == list(NODES)
        (fake_k3s.state / "crash-node1").write_text("")
        outcome = await asyncio.wait_for(running, 90)
    finally:
        if not running.done():
            pilot.cancel("test failed")
            await running
    assert outcome.state is PilotState.FAILED
    assert "k3s server on node1 stopped" in (outcome.reason or ""), outcome.reason
    assert "crashed on purpose" in (outcome.reason or "")
    assert_nodes_keep_nothing(workdir, tmp_path / "node-local")
