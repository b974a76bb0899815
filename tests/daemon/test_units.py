"""The daemon's parts in-process: store, migrations, files, subscriptions, the seam for
batch pilots."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from pilotkit.daemon.migrations import Migrations, migrations
from pilotkit.daemon.reattach import detachable
from pilotkit.daemon.runtime_dir import DaemonLock, RuntimeFiles, ensure_private_dir
from pilotkit.daemon.store import Store, check_local_filesystem, mount_of
from pilotkit.daemon.stream_methods import tail_offset
from pilotkit.daemon.streams import Dropped, Hub, Subscription
from pilotkit.daemon.workdir import repair_results
from pilotkit.errors import PilotkitError
from pilotkit.results import ResultsWriter, TaskResult, read_results

MOUNTS = """\
sysfs /sys sysfs rw 0 0
/dev/sda1 / ext4 rw,relatime 0 0
server:/export/home /home nfs4 rw,vers=4.2 0 0
lustre@o2ib:/scratch /scratch lustre rw 0 0
/dev/sdb1 /home/me/local\\040disk xfs rw 0 0
gpfs0 /gpfs gpfs rw 0 0
"""


# --------------------------------------------------------------------------- store


def test_mount_of_picks_the_deepest_mount() -> None:
    assert mount_of(Path("/home/me/x"), MOUNTS) == ("/home", "nfs4")
    assert mount_of(Path("/home/me/local disk/state"), MOUNTS) == ("/home/me/local disk", "xfs")
    assert mount_of(Path("/var/lib"), MOUNTS) == ("/", "ext4")
    assert mount_of(Path("/scratchy"), MOUNTS) == ("/", "ext4")


@pytest.mark.parametrize("where, fstype", [("/home/me/.local/state", "nfs4"), ("/scratch/u", "lustre"),
                                           ("/gpfs/u/state", "gpfs")])
def test_network_filesystems_are_refused(tmp_path: Path, where: str, fstype: str) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    with pytest.raises(PilotkitError) as info:
        check_local_filesystem(Path(where), mounts)
    assert fstype in str(info.value) and "XDG_STATE_HOME" in str(info.value)
    check_local_filesystem(Path("/home/me/local disk/x"), mounts)


async def test_store_refuses_a_database_on_nfs(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/x {tmp_path} nfs rw 0 0\n")
    store = Store(tmp_path / "state" / "state.db", mounts=mounts)
    with pytest.raises(PilotkitError, match="network filesystem"):
        await store.open()
    assert not (tmp_path / "state" / "state.db").exists()


async def test_store_wal_migrations_group_commit(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = Store(path)
    await store.open()
    assert store.migrated == [name for name, _ in migrations.steps]
    try:
        for i in range(5000):
            store.write("INSERT INTO events (seq, pilot, t, type, data) VALUES (?, ?, ?, ?, ?)",
                        (i + 1, "p", time.time(), "log", b"{}"))
        await store.commit("UPDATE daemon_runs SET clean = 1")  # waits for all of the above
        ((count,),) = await store.query("SELECT count(*) FROM events")
        assert count == 5000
        assert store.commits < 50, "thousands of writes share a few transactions"
        with pytest.raises(sqlite3.IntegrityError):
            await store.commit("INSERT INTO events (seq, pilot, t, type, data) VALUES (1, 'p', 0, 'x', x'')")
        store.write("INSERT INTO events (seq, pilot, t, type, data) VALUES (1, 'dup', 0, 'x', x'')")
        store.write("INSERT INTO events (seq, pilot, t, type, data) VALUES (9999, 'p', 0, 'x', x'')")
        await store.barrier()
        ((count,),) = await store.query("SELECT count(*) FROM events")
        assert count == 5001, "a bad write does not take its batch with it"
        ((mode,),) = await store.query("PRAGMA journal_mode")
        assert mode == "wal"
    finally:
        await store.close()
    again = Store(path)
    await again.open()
    assert again.migrated == []
    await again.close()


def test_migrations_apply_once_and_refuse_unknown(tmp_path: Path) -> None:
    registry = Migrations()

    @registry
    def m001_one(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE one (x)")

    db = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    assert registry.apply(db) == ["m001_one"]
    assert registry.apply(db) == []

    @registry
    def m002_two(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE two (x)")

    assert registry.apply(db) == ["m002_two"]
    with pytest.raises(ValueError):
        registry(m001_one)
    older = Migrations()
    older(m001_one)
    with pytest.raises(PilotkitError, match="newer version"):
        older.apply(db)


# --------------------------------------------------------------------------- files


def _result(task: str, status: str = "ok") -> TaskResult:
    return TaskResult(task=task, group="g", params={}, status=status, exit_code=0, attempts=1, node="n",
                      start=0.0, end=1.0, duration=1.0, stdout=None, stderr=None)


def test_torn_last_result(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    writer = ResultsWriter(path)
    writer.write(_result("a"))
    writer.write(_result("b"))
    writer.close()
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(msgspec.json.encode(_result("c"))[:25])
    assert [r.task for r in read_results(path)] == ["a", "b"], "read_results skips a torn last line"
    results = repair_results(path, tmp_path / "pilot.log")
    assert [r.task for r in results] == ["a", "b"]
    assert path.read_bytes() == whole, "the torn bytes are cut so appending starts a clean line"
    writer = ResultsWriter(path)
    writer.write(_result("c"))
    writer.close()
    assert [r.task for r in read_results(path)] == ["a", "b", "c"]
    path.write_bytes(b'{"task": "no newline at all')
    assert repair_results(path) == [] and path.read_bytes() == b""
    assert repair_results(tmp_path / "missing.jsonl") == []


def test_tail_offset(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"one\ntwo\nthree\n")
    assert path.read_bytes()[tail_offset(path, 2):] == b"two\nthree\n"
    assert tail_offset(path, 10) == 0 and tail_offset(path, -1) == 0
    assert tail_offset(path, 0) == path.stat().st_size
    path.write_bytes(b"one\ntwo\npartial")
    assert path.read_bytes()[tail_offset(path, 1):] == b"partial"
    assert tail_offset(tmp_path / "none", 5) == 0


def test_runtime_dir_must_be_private_and_ours(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    ensure_private_dir(loose)
    assert loose.stat().st_mode & 0o777 == 0o700
    link = tmp_path / "link"
    link.symlink_to(loose)
    with pytest.raises(PilotkitError, match="not a directory"):
        ensure_private_dir(link)
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)
        with pytest.raises(PilotkitError, match="belongs to uid 65534"):
            ensure_private_dir(theirs)


def test_lock_cleans_stale_files_and_allows_one_daemon(tmp_path: Path) -> None:
    files = RuntimeFiles(ensure_private_dir(tmp_path / "run"))
    files.socket.write_text("")  # a crashed daemon's leftovers
    files.pid.write_text("999999\n")
    first = DaemonLock(files)
    first.acquire()
    assert not files.socket.exists() and files.pid.read_text() == f"{os.getpid()}\n"
    with pytest.raises(PilotkitError, match=f"already running \\(pid {os.getpid()}\\)"):
        DaemonLock(files).acquire()
    first.release()
    assert not files.pid.exists()
    second = DaemonLock(files)
    second.acquire()
    second.release()


# --------------------------------------------------------------------------- streams


async def test_subscription_drops_and_reports_gaps() -> None:
    sub: Subscription[int] = Subscription(capacity=3)
    for i in range(10):
        sub.offer(i)
    assert len(sub) == 3 and sub.total_dropped == 7
    first = await sub.take()
    assert first[:3] == [0, 1, 2] and isinstance(first[3], Dropped) and first[3].count == 7
    sub.offer(10)
    for i in range(11, 16):
        sub.offer(i)
    batch = await sub.take()
    assert batch[:3] == [10, 11, 12] and isinstance(batch[3], Dropped) and batch[3].count == 3
    sub.offer(16)
    sub.offer(17)
    assert await sub.take() == [16, 17]
    waiter = asyncio.ensure_future(sub.take())
    await asyncio.sleep(0)
    sub.close()
    assert await waiter == []
    assert not sub.offer(1)


def test_hub_fans_out_by_key_and_filter() -> None:
    hub: Hub[str] = Hub()
    mine: Subscription[str] = Subscription()
    everything: Subscription[str] = Subscription()
    only_b: Subscription[str] = Subscription(accept=lambda item: item.startswith("b"))
    hub.add("p1", mine)
    hub.add(None, everything)
    hub.add(None, only_b)
    hub.publish("p1", "a1")
    hub.publish("p2", "b2")
    assert len(mine) == 1 and len(everything) == 2 and len(only_b) == 1
    hub.remove("p1", mine)
    hub.publish("p1", "a3")
    assert len(mine) == 1 and len(hub) == 2


# --------------------------------------------------------------------------- batch pilots


async def test_detached_provider_keeps_its_allocation(tmp_path: Path) -> None:
    from pilotkit.builtin.local import LocalProvider
    from pilotkit.interfaces import PilotContext
    from pilotkit.spec import parse_spec

    released: list[str | None] = []

    class FakeBatch(LocalProvider):
        id = "fakebatch"

        async def release(self, allocation):  # type: ignore[no-untyped-def]
            released.append(allocation.job_id)

    resolved = parse_spec('name = "b"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n', tmp_path / "s.toml")
    resolved.provider_cls = FakeBatch
    wrapped, flag = detachable(resolved)
    assert wrapped.provider_cls.id == "fakebatch" and issubclass(wrapped.provider_cls, FakeBatch)
    provider = wrapped.provider_cls(wrapped, wrapped.provider_options)
    ctx = PilotContext("b-1", wrapped, tmp_path, lambda event: None)
    allocation = await provider.claim(ctx)
    (agent,) = await provider.agents(allocation, ctx)
    await agent.start()
    flag.detached = True
    await agent.stop(1.0)
    await provider.release(allocation)
    assert released == [], "a detached pilot keeps its allocation"
    flag.detached = False
    await provider.release(allocation)
    assert released == [allocation.job_id]
    await agent.stop(1.0)  # the agent's own end: this test process is no subreaper after it


def test_launched_attempts_from_task_dirs(tmp_path: Path) -> None:
    from pilotkit.daemon.workdir import launched_attempts

    tasks = tmp_path / "tasks"
    for name, files in {
        "prepared": {"attempt-1.out": "", "attempt-1.err": ""},  # made ahead, never ran
        "ran": {"attempt-1.out": "hello\n", "attempt-1.err": ""},
        "retried": {"attempt-1.out": "x", "attempt-2.out": "", "attempt-2.err": "", "marker": "1"},
        "done": {"attempt-3.out": "y"},
    }.items():
        (tasks / name).mkdir(parents=True)
        for file, text in files.items():
            (tasks / name / file).write_text(text)
    assert launched_attempts(tmp_path, skip={"done"}) == {"ran": 1, "retried": 2}
    assert launched_attempts(tmp_path / "nowhere", skip=set()) == {}


def test_recorded_attempts_count_a_silent_attempt_that_started(tmp_path: Path) -> None:
    """An attempt that wrote nothing yet (``exec sleep 60``) still ran once its process
    was recorded: after a crash it is not run again under the same number."""
    from pilotkit.daemon.workdir import kill_orphans, launched_attempts, recorded_attempts

    (tmp_path / "tasks" / "g-1").mkdir(parents=True)
    for name in ("attempt-1.out", "attempt-1.err"):
        (tmp_path / "tasks" / "g-1" / name).write_text("")
    pids = tmp_path / "pids"
    pids.mkdir()
    (pids / "g-1.1").write_text("999999999 None pilotkit-test-gone\n")
    (pids / "a.b.3").write_text("999999998 None pilotkit-test-gone\n")
    (pids / "junk").write_text("")
    assert launched_attempts(tmp_path, skip=set()) == {}, "the empty files alone say nothing"
    assert recorded_attempts(tmp_path) == {"g-1": 1, "a.b": 3}
    kill_orphans(tmp_path)
    assert recorded_attempts(tmp_path) == {}, "kill_orphans removes the records it read"
    assert recorded_attempts(tmp_path / "nowhere") == {}
