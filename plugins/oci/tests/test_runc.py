"""Real containers: runc on the busybox test image, through ``wrap()`` and a subprocess."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pilotkit_oci import OciOptions, OciRuntime
from pilotkit_oci import runtime as runtime_module
from pilotkit_oci.busybox import BUSYBOX, build_busybox_rootfs
from pilotkit_oci.config import Host
from pilotkit_oci.runtime import Prepared

from pilotkit.api import Bind, ContainerContext, Event, Log, PilotContext, StagedImage
from pilotkit.testing import need, need_binary

pytestmark = pytest.mark.runc

TIMEOUT = 30


@dataclass
class Pilot:
    """A prepared image, and helpers to run tasks in it."""

    runtime: OciRuntime
    image: StagedImage
    options: OciOptions
    events: list[Event] = field(default_factory=list)

    def argv(self, argv: list[str], **ctx: Any) -> list[str]:
        return self.runtime.wrap(argv, ContainerContext(image=self.image, options=self.options, **ctx))

    def run(self, argv: list[str], **ctx: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(argv, **ctx), capture_output=True, text=True, timeout=TIMEOUT)

    def start(self, script: str, **popen: Any) -> subprocess.Popen[str]:
        """Start ``sh -c script`` and wait for the line ``ready`` it must print first."""
        proc = subprocess.Popen(self.argv(["sh", "-c", script]), stdout=subprocess.PIPE, text=True, **popen)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        return proc

    @property
    def prepared(self) -> Prepared:
        return self.runtime.prepared(self.image)

    def containers(self) -> list[str]:
        """Ids of containers runc still has state for."""
        root = Path(self.prepared.root)
        return sorted(p.name for p in root.iterdir()) if root.exists() else []

    def bundles(self) -> list[str]:
        return sorted(p.name for p in Path(self.prepared.bundles).iterdir())


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def gone(pid: int) -> bool:
    """Whether a process has ended (it may linger as a zombie of an orphan reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def has_cap_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    need_binary("runc", "apt-get install runc")
    need("busybox-static", BUSYBOX.is_file(), f"{BUSYBOX} missing: apt-get install busybox-static")
    return build_busybox_rootfs(tmp_path / "rootfs")


@pytest.fixture
def make_pilot(rootfs: Path, tmp_path: Path) -> Callable[..., Awaitable[Pilot]]:
    counter = itertools.count()

    async def make(**options: Any) -> Pilot:
        opts = OciOptions(**options)
        events: list[Event] = []
        spec = SimpleNamespace(runtime_options=opts)
        ctx = PilotContext("test", spec, tmp_path / f"work{next(counter)}", events.append)  # type: ignore[arg-type]
        runtime = OciRuntime()
        image = await runtime.prepare(StagedImage(ref="busybox", path=rootfs, format="dir"), ctx)
        return Pilot(runtime, image, opts, events)

    return make


@pytest.fixture
async def pilot(make_pilot: Callable[..., Awaitable[Pilot]]) -> Pilot:
    return await make_pilot()


@pytest.mark.parametrize("code", [0, 3])
def test_exit_status_propagates(pilot: Pilot, code: int) -> None:
    assert pilot.run(["sh", "-c", f"exit {code}"]).returncode == code


def test_environment_is_the_tasks(pilot: Pilot) -> None:
    done = pilot.run(["sh", "-c", 'echo "$PK_VALUE|$PATH|${HOST_ONLY-unset}"'], env={"PK_VALUE": "a b=c"})
    assert done.stdout == "a b=c|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|unset\n"


def test_working_directory(pilot: Pilot) -> None:
    assert pilot.run(["pwd"], workdir="/etc").stdout == "/etc\n"
    assert pilot.run(["pwd"]).stdout == "/\n"


def test_binds(pilot: Pilot, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_text("payload\n")
    (tmp_path / "out").mkdir()
    binds = (Bind(str(tmp_path / "in"), "/in", readonly=True), Bind(str(tmp_path / "out"), "/out"))
    assert pilot.run(["cat", "/in/data.txt"], binds=binds).stdout == "payload\n"
    refused = pilot.run(["touch", "/in/new"], binds=binds)
    assert refused.returncode != 0
    assert "Read-only file system" in refused.stderr
    assert not (tmp_path / "in" / "new").exists()
    assert pilot.run(["sh", "-c", "echo written > /out/result"], binds=binds, workdir="/out").returncode == 0
    assert (tmp_path / "out" / "result").read_text() == "written\n"


def test_root_filesystem_is_read_only_but_tmp_is_writable(pilot: Pilot, rootfs: Path) -> None:
    assert "Read-only file system" in pilot.run(["touch", "/etc/x"]).stderr
    assert pilot.run(["sh", "-c", "echo x > /tmp/x && cat /tmp/x"]).stdout == "x\n"
    assert not (rootfs / "etc" / "x").exists()


def test_namespaces_and_host_network(pilot: Pilot) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        received: list[bytes] = []

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                received.append(conn.recv(100))

        thread = threading.Thread(target=serve)
        thread.start()
        done = pilot.run(["sh", "-c", f"echo $$; echo hello | nc 127.0.0.1 {port}"])
        thread.join(TIMEOUT)
    assert done.stdout.split()[0] == "1", "the task is PID 1 of its own PID namespace"
    assert received == [b"hello\n"], "the task reached the pilot's loopback address"


def test_mpi_tasks_share_pid_and_ipc_with_the_host(pilot: Pilot) -> None:
    done = pilot.run(["sh", "-c", "echo $$; ls /dev/shm >/dev/null && echo shm"], mpi=True)
    pid, shm = done.stdout.split()
    assert int(pid) > 1
    assert shm == "shm"


def test_sigterm_to_the_wrapper_reaches_the_task(pilot: Pilot) -> None:
    proc = pilot.start("trap 'echo got-term; exit 143' TERM; echo ready; while :; do sleep 0.05; done")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, out) == (143, "got-term\n")


def test_sigterm_to_the_process_group_is_delivered_once(pilot: Pilot) -> None:
    script = (
        "n=0; trap 'n=$((n+1))' TERM; echo ready;"
        " while [ $n -eq 0 ]; do sleep 0.05; done; sleep 0.5; echo terms=$n; exit 143"
    )
    proc = pilot.start(script, start_new_session=True)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, out) == (143, "terms=1\n")


async def test_sigterm_stops_a_task_without_a_handler(make_pilot: Callable[..., Awaitable[Pilot]]) -> None:
    """Outside a PID namespace the default action applies (as PID 1, SIGTERM would be ignored)."""
    pilot = await make_pilot(namespaces=["ipc", "uts", "mount"])
    proc = pilot.start("echo ready; exec sleep 60")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=TIMEOUT)
    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - started < 10


def test_sigkill_of_the_wrapper_removes_the_container(pilot: Pilot) -> None:
    proc = pilot.start("echo ready; exec sleep 60")
    [cid] = pilot.containers()
    state = subprocess.run(
        [pilot.prepared.runc, "--root", pilot.prepared.root, "state", cid],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    )
    task_pid = json.loads(state.stdout)["pid"]
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    wait_until(lambda: gone(task_pid) and not pilot.containers() and not pilot.bundles())


def test_unique_ids_and_cleanup(pilot: Pilot) -> None:
    procs = [pilot.start("echo ready; sleep 0.3; echo done") for _ in range(3)]
    running = pilot.containers()
    assert len(running) == len(set(running)) == 3
    for proc in procs:
        out, _ = proc.communicate(timeout=TIMEOUT)
        assert (proc.returncode, out) == (0, "done\n")
    wait_until(lambda: not pilot.containers() and not pilot.bundles())


async def test_rlimit_probe_matches_this_machine(make_pilot: Callable[..., Awaitable[Pilot]]) -> None:
    """Raising RLIMIT_NOFILE needs CAP_SYS_RESOURCE: kept where it is held, dropped elsewhere."""
    pilot = await make_pilot(rlimits={"RLIMIT_NOFILE": 1048576})
    config = json.loads((pilot.image.path / "config.json").read_text())
    nofile = pilot.run(["sh", "-c", "ulimit -n"]).stdout.strip()
    warnings = [e for e in pilot.events if isinstance(e, Log) and e.level == "warning"]
    if has_cap_sys_resource():
        assert pilot.runtime.rlimits_supported is True
        assert nofile == "1048576"
        assert warnings == []
    else:
        assert pilot.runtime.rlimits_supported is False
        assert "rlimits" not in config["process"]
        assert nofile == str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        assert "rlimits" in warnings[0].message


async def test_rlimits_that_need_no_privilege_are_kept(make_pilot: Callable[..., Awaitable[Pilot]]) -> None:
    pilot = await make_pilot(rlimits={"RLIMIT_NOFILE": 256})
    assert pilot.runtime.rlimits_supported is True
    assert pilot.run(["sh", "-c", "ulimit -n"]).stdout == "256\n"


def test_cleanup_without_pidfd_open(pilot: Pilot) -> None:
    """On kernels before 5.3 the janitor watches its parent's pid instead of a pidfd."""
    argv = pilot.argv(["sh", "-c", "exit 6"])
    python, wrapper, args = argv[0], argv[3], argv[4:]
    script = f"import os, runpy, sys; del os.pidfd_open; sys.argv = [{wrapper!r}, *sys.argv[1:]]; "
    script += f"runpy.run_path({wrapper!r}, run_name='__main__')"
    done = subprocess.run(
        [python, "-I", "-S", "-c", script, *args], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 6, done.stderr
    wait_until(lambda: not pilot.containers() and not pilot.bundles())


def test_a_directory_image_runs_without_prepare(
    rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    ctx = ContainerContext(image=StagedImage(ref="busybox", path=rootfs, format="dir"), env={"A": "1"})
    argv = OciRuntime().wrap(["sh", "-c", 'echo "$A"; exit 2'], ctx)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    assert (done.returncode, done.stdout) == (2, "1\n"), done.stderr
    bundles = tmp_path / f"pilotkit-oci-{os.geteuid()}" / "bundles"
    wait_until(lambda: not any(bundles.iterdir()))


@pytest.fixture
def no_leftovers(pilot: Pilot) -> Iterator[None]:
    yield
    wait_until(lambda: not pilot.containers() and not pilot.bundles())


def test_missing_command_fails_like_a_shell(pilot: Pilot, no_leftovers: None) -> None:
    done = pilot.run(["/no/such/command"])
    assert done.returncode != 0
    assert "/no/such/command" in done.stderr


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A scratch directory an unprivileged user can reach (pytest's tmp_path is private)."""
    path = Path(tempfile.mkdtemp(prefix="pilotkit-rootless-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_rootless(world_readable_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As an unprivileged user: a user namespace maps the container's root to that user."""
    need_binary("runc", "apt-get install runc")
    need("busybox-static", BUSYBOX.is_file(), f"{BUSYBOX} missing: apt-get install busybox-static")
    setpriv, python3 = shutil.which("setpriv"), shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or setpriv is None or python3 is None:
        pytest.skip("needs root, setpriv and a system python3 to become an unprivileged user")
    nobody = 65534
    base = world_readable_dir
    rootfs = build_busybox_rootfs(base / "rootfs")
    (rootfs / "data").mkdir()
    (base / "data").mkdir()
    (base / "data" / "in.txt").write_text("payload\n")
    for path in (base / "data", base / "state"):
        path.mkdir(exist_ok=True)
        os.chown(path, nobody, nobody)
    real_host_of = runtime_module.host_of

    def host_of(rootfs: Path, opts: OciOptions) -> Host:
        return dataclasses.replace(real_host_of(rootfs, opts), uid=nobody, gid=nobody)

    monkeypatch.setattr(runtime_module, "host_of", host_of)
    opts = OciOptions(state_dir=str(base / "state"))
    ctx = PilotContext("test", SimpleNamespace(runtime_options=opts), base, lambda event: None)  # type: ignore[arg-type]
    runtime = OciRuntime()
    image = await runtime.prepare(StagedImage(ref="busybox", path=rootfs, format="dir"), ctx)
    for path in (base / "state", *(base / "state").rglob("*")):
        os.chown(path, nobody, nobody)  # prepare() ran as root here, the task will not
    config = runtime.prepared(image).config
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": nobody, "size": 1}]
    argv = runtime.wrap(
        ["sh", "-c", "id -u; cat in.txt; echo out > result; exit 4"],
        ContainerContext(
            image=image, options=opts, binds=(Bind(str(base / "data"), "/data"),), workdir="/data"
        ),
    )
    argv[0] = python3
    as_nobody = [setpriv, f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", *argv]
    done = subprocess.run(as_nobody, capture_output=True, text=True, timeout=TIMEOUT)
    assert (done.returncode, done.stdout) == (4, "0\npayload\n"), done.stderr
    assert (base / "data" / "result").stat().st_uid == nobody
    bundles = Path(runtime.prepared(image).bundles)
    wait_until(lambda: not any(bundles.iterdir()))
