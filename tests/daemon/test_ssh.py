"""``--host``: the daemon's unix socket reached through a real sshd (share/testsshd),
over a stream-local channel, with host keys checked."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pilotkit.client import EventItem, connect
from pilotkit.testing import need, need_binary

from .conftest import TESTSSHD, DaemonProcess, free_port, write_spec

pytestmark = pytest.mark.sshd


@dataclass
class Sshd:
    dir: Path
    port: int

    @property
    def config(self) -> Path:
        return self.dir / "ssh_config"

    alias = "pilotkit-test"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    need_binary("sshd", "install openssh-server with share/dev/install-system-deps")
    need_binary("ssh-keygen", "install openssh-client with share/dev/install-system-deps")
    need("root (testsshd runs sshd as root)", os.geteuid() == 0)
    directory = tmp_path_factory.mktemp("sshd")
    port = free_port()
    up = subprocess.run([str(TESTSSHD), "up", str(directory), str(port)], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"testsshd did not come up:\n{up.stdout}\n{up.stderr}", pytrace=False)
    try:
        yield Sshd(directory, port)
    finally:
        subprocess.run([str(TESTSSHD), "down", str(directory)], capture_output=True, text=True)


def remote_pilotkit(daemon: DaemonProcess) -> str:
    """The remote end is this machine: run this interpreter's pilotkit there, with the
    daemon's runtime dir (an SSH session does not carry our environment)."""
    return f"env XDG_RUNTIME_DIR={shlex.quote(str(daemon.runtime))} {shlex.quote(sys.executable)} -m pilotkit.cli.main"


def over_ssh(
    daemon: DaemonProcess, sshd: Sshd, *args: str, check: bool = True, discover: bool = False
) -> subprocess.CompletedProcess[str]:
    """``pilotkit ARGS --host ...``: the socket found by asking the remote pilotkit
    (``discover``), or given (quicker: no remote Python to start)."""
    env = dict(daemon.env)
    env["XDG_RUNTIME_DIR"] = str(daemon.base / "elsewhere")  # no local daemon to fall back on
    where = ["--remote-pilotkit", remote_pilotkit(daemon)] if discover else ["--remote-socket", str(daemon.socket)]
    return daemon.cli(*args, "--host", sshd.alias, "--ssh-config", str(sshd.config), *where, check=check, env=env)


def test_status_submit_events_logs_cancel_over_ssh(daemon: DaemonProcess, sshd: Sshd, tmp_path: Path) -> None:
    status = json.loads(over_ssh(daemon, sshd, "status", "--json", discover=True).stdout)
    assert status["daemon"]["pid"] == daemon.pid and status["pilots"] == []

    spec = write_spec(tmp_path, 'name = "remote"\n[[app.groups]]\nname = "g"\ncommands = ["echo over ssh"]\n')
    pilot = over_ssh(daemon, sshd, "submit", "--wait", str(spec)).stdout.strip()
    assert pilot.startswith("remote-")
    assert daemon.status(pilot)["state"] == "done"
    events = [json.loads(line) for line in over_ssh(daemon, sshd, "events", pilot, "--json").stdout.splitlines()]
    assert events[-1]["type"] == "pilot-state" and events[-1]["state"] == "done"
    assert over_ssh(daemon, sshd, "logs", pilot, "g-0").stdout == "over ssh\n"

    slow = write_spec(tmp_path, 'name = "far"\n[pilot]\ngrace = "1s"\n[[app.groups]]\nname = "g"\n'
                      'commands = ["sleep 30"]\n', "slow.toml")
    far = over_ssh(daemon, sshd, "submit", str(slow)).stdout.strip()
    daemon.wait_state(far, {"running"})
    assert "cancel" in over_ssh(daemon, sshd, "cancel", far).stdout
    daemon.wait_state(far, {"cancelled"})


def test_explicit_remote_socket_and_user(daemon: DaemonProcess, sshd: Sshd) -> None:
    env = dict(daemon.env, XDG_RUNTIME_DIR=str(daemon.base / "elsewhere"))
    result = daemon.cli(
        "status", "--json", "--host", f"root@{sshd.alias}", "--ssh-config", str(sshd.config),
        "--remote-socket", str(daemon.socket), env=env,
    )
    assert json.loads(result.stdout)["daemon"]["pid"] == daemon.pid


def test_no_remote_pilotkit_falls_back_to_the_default_socket(daemon: DaemonProcess, sshd: Sshd) -> None:
    result = daemon.cli(
        "status", "--host", sshd.alias, "--ssh-config", str(sshd.config), "--remote-pilotkit", "false",
        check=False,
    )
    if result.returncode == 0:
        pytest.skip("a real daemon runs on this machine's default socket")
    assert result.returncode == 2
    assert "no pilotkit daemon is running there" in result.stderr and "/tmp/pilotkit-" in result.stderr


def _config_with_known_hosts(sshd: Sshd, tmp_path: Path, known_hosts: str) -> Path:
    hosts = tmp_path / "known_hosts"
    hosts.write_text(known_hosts)
    config = tmp_path / "ssh_config"
    text = sshd.config.read_text().replace(str(sshd.dir / "known_hosts"), str(hosts))
    assert str(hosts) in text
    config.write_text(text)
    return config


def test_unknown_host_key_is_refused(daemon: DaemonProcess, sshd: Sshd, tmp_path: Path) -> None:
    config = _config_with_known_hosts(sshd, tmp_path, "")
    result = daemon.cli("status", "--host", sshd.alias, "--ssh-config", str(config), check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "host key is not trusted" in result.stderr


def test_changed_host_key_is_refused(daemon: DaemonProcess, sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    config = _config_with_known_hosts(sshd, tmp_path, f"[127.0.0.1]:{sshd.port} {key}\n")
    result = daemon.cli("status", "--host", sshd.alias, "--ssh-config", str(config), check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "host key is not trusted" in result.stderr


async def test_client_library_over_ssh(daemon: DaemonProcess, sshd: Sshd, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, 'name = "lib"\n[[app.groups]]\nname = "g"\ncommands = ["true", "true"]\n')
    async with connect(host=sshd.alias, ssh_config=str(sshd.config), socket=str(daemon.socket)) as client:
        submitted = await client.submit(spec.read_text(), path=str(spec))
        states = [
            getattr(item.event, "state", None)
            async for item in client.events(submitted.pilot, types=["pilot-state"])
            if isinstance(item, EventItem)
        ]
        assert states[-1] == "done"
        (summary,) = await client.status(submitted.pilot)
        assert summary.progress.done == 2


def test_validate_on_the_remote_daemon(daemon: DaemonProcess, sshd: Sshd, tmp_path: Path) -> None:
    good = write_spec(tmp_path, 'name = "far"\n[[app.groups]]\nname = "g"\ncommands = ["true", "true"]\n')
    result = over_ssh(daemon, sshd, "validate", str(good))
    assert result.stdout == f"{good}: valid: pilot 'far', provider local, app tasks, 2 tasks (checked on {sshd.alias})\n"
    as_json = json.loads(over_ssh(daemon, sshd, "validate", "--json", str(good)).stdout)
    assert as_json == {"valid": True, "problems": [], "name": "far", "provider": "local", "app": "tasks", "tasks": 2}

    bad = write_spec(tmp_path, 'name = "bad"\n[resources]\ncors = 2\n[[app.groups]]\nname = "g"\nretrys = 1\n'
                     'commands = ["true"]\n', "bad.toml")
    result = over_ssh(daemon, sshd, "validate", str(bad), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: {bad}:6: app.groups[0].retrys: unknown key (did you mean 'retries'?)",
        f"error: {bad}:3: resources.cors: unknown key (did you mean 'cores'?)",
    ]
    result = over_ssh(daemon, sshd, "validate", "--json", str(bad), check=False)
    assert result.returncode == 2
    assert {(p["line"], p["key"]) for p in json.loads(result.stdout)["problems"]} == {
        (3, "resources.cors"), (6, "app.groups[0].retrys"),
    }
    assert daemon.call("status")["pilots"] == [], "validating runs nothing"
