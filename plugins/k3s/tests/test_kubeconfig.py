"""``pilotkit k3s kubeconfig``: here, and through a real SSH tunnel (share/testsshd) as from
a laptop, for a pilot running the app with the fake k3s and the fake API. A plain TCP
listener stands in for the API server's port, so the tunnel's bytes are real."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pilotkit.api import Event, Log, PilotState
from pilotkit.testing import Pilot, Plugins, Sshd, cli, free_port, parse_spec

from .conftest import FAKE_API_PLUGIN, FakeK3s

PILOTKIT = [sys.executable, "-m", "pilotkit.cli.main"]


async def _start(
    plugins: Plugins, tmp_path: Path, port: int
) -> tuple[Pilot, asyncio.Future[object], list[str]]:
    plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    text = (
        'name = "k3s-kc"\n[pilot]\ngrace = "3s"\n[app]\ntype = "k3s-fakeapi"\nmode = "interactive"\n'
        f'poll_interval = "0.1s"\napi_port = {port}\ndata_dir = "{tmp_path / "data"}"\n'
    )
    pilot = Pilot(parse_spec(text, tmp_path / "spec.toml", plugins), plugins, workdir=tmp_path / "run")
    logs: list[str] = []

    def watch(event: Event) -> None:
        if isinstance(event, Log):
            logs.append(event.message)

    pilot.bus.subscribe(watch)
    running: asyncio.Future[object] = asyncio.ensure_future(pilot.run())
    for _ in range(300):
        if running.done() or any(m.startswith("k3s cluster ready") for m in logs):
            break
        await asyncio.sleep(0.05)
    assert not running.done(), running.result()
    return pilot, running, logs


async def test_fake_k3s_kubeconfig_here_then_stopped(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, tmp_path: Path
) -> None:
    pilot, running, _ = await _start(pilotkit_plugins, tmp_path, 6443)
    try:
        workdir = tmp_path / "run"
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["k3s", "kubeconfig", str(workdir)])
        assert result.exit_code == 0, result.output
        assert yaml.safe_load(result.output) == yaml.safe_load((workdir / "kubeconfig").read_text())
        pilot.drain("test drains")
        await asyncio.wait_for(running, 60)
    finally:
        if not running.done():
            pilot.cancel("test failed")
            await running
    stopped = await asyncio.to_thread(CliRunner().invoke, cli, ["k3s", "kubeconfig", str(workdir)])
    assert stopped.exit_code == 2 and "is stopped" in stopped.output
    missing = await asyncio.to_thread(CliRunner().invoke, cli, ["k3s", "kubeconfig", str(tmp_path)])
    assert missing.exit_code == 2 and "not a k3s pilot" in missing.output


@pytest.mark.sshd
async def test_fake_k3s_kubeconfig_through_an_ssh_tunnel(
    sshd: Sshd, fake_k3s: FakeK3s, pilotkit_plugins: Plugins, tmp_path: Path
) -> None:
    port = free_port()

    async def api_stand_in(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"the API server's port\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(api_stand_in, "0.0.0.0", port)
    pilot, running, _ = await _start(pilotkit_plugins, tmp_path, port)
    tunnel: asyncio.subprocess.Process | None = None
    output = tmp_path / "laptop" / "kc.yaml"
    output.parent.mkdir()
    try:
        tunnel = await asyncio.create_subprocess_exec(
            *PILOTKIT, "k3s", "kubeconfig", "--host", "pilotkit-test", "--ssh-config", str(sshd.ssh_config),
            "-o", str(output), str(tmp_path / "run"),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert tunnel.stderr is not None
        line = (await asyncio.wait_for(tunnel.stderr.readline(), 60)).decode()
        assert line.startswith("forwarding https://127.0.0.1:"), line
        config = yaml.safe_load(output.read_text())
        cluster = config["clusters"][0]["cluster"]
        original = yaml.safe_load((tmp_path / "run" / "kubeconfig").read_text())["clusters"][0]["cluster"][
            "server"
        ]
        assert cluster["tls-server-name"] == original.split("//")[1].rsplit(":", 1)[0]
        assert oct(output.stat().st_mode & 0o777) == "0o600"
        local = int(cluster["server"].rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", local)
        assert await asyncio.wait_for(reader.readline(), 10) == b"the API server's port\n"
        writer.close()
        tunnel.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(tunnel.wait(), 30) == 0
        pilot.drain("test drains")
        outcome = await asyncio.wait_for(running, 60)
        assert getattr(outcome, "state", None) is PilotState.DONE
    finally:
        listener.close()
        if tunnel is not None and tunnel.returncode is None:
            tunnel.kill()
            await tunnel.wait()
        if not running.done():
            pilot.cancel("test failed")
            await running
