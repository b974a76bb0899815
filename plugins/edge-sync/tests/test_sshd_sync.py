"""edge-sync against a real OpenSSH server on 127.0.0.1 (the remote cache is a tmp dir)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest
from pilotkit_edge_sync.source import scan
from pilotkit_edge_sync.stager import EdgeSyncStager

from pilotkit.api import Event, PilotContext, PilotkitError, StageProgress

from .conftest import Events, Sshd, free_port, write_image

pytestmark = pytest.mark.sshd

MB = 1_000_000


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def cut_when(sshd: Sshd, events: Events, fraction: float) -> list[int]:
    """Kill the server's session processes once a copy has passed ``fraction``."""
    cuts: list[int] = []

    def hook(event: Event) -> None:
        if (
            not cuts
            and isinstance(event, StageProgress)
            and (event.message or "").startswith("copying")
            and event.total
            and event.done >= fraction * event.total
        ):
            cuts.append(event.done)
            assert sshd.cut_sessions() > 0

    events.hook = hook
    return cuts


async def test_copy_then_reuse(sshd: Sshd, tmp_path: Path, ctx: PilotContext, events: Events) -> None:
    image = write_image(tmp_path / "img.sif", 3 * MB)
    cache = tmp_path / "cache"
    stager = EdgeSyncStager(sshd.direct_options(cache))
    staged = await stager.stage(f"sync://{image}", ctx)
    digest = sha256(image)
    assert staged.path == cache / "sha256" / f"{digest}.sif"
    assert (staged.format, staged.digest) == ("sif", f"sha256:{digest}")
    assert sha256(staged.path) == digest
    assert stager.stats.sent == 3 * MB and not stager.stats.reused
    assert sorted(p.name for p in (cache / "sha256").iterdir()) == [f"{digest}.sif"], "no partial files left"
    assert (cache / "leases" / f"{digest}.pilot-1").exists()

    other = PilotContext("pilot-2", ctx.spec, tmp_path / "run2", events.emit)
    again = EdgeSyncStager(sshd.options(cache))
    assert await again.stage(f"sync://{image}", other) == staged
    assert again.stats.reused and again.stats.sent == 0
    leases = cache / "leases"
    assert sorted(p.name for p in leases.iterdir()) == [f"{digest}.pilot-1", f"{digest}.pilot-2"]
    await stager.release()
    assert sorted(p.name for p in leases.iterdir()) == [f"{digest}.pilot-2"]
    await again.release()
    assert list(leases.iterdir()) == []
    progress = events.progress("copying")
    assert progress[0].done == 0 and progress[-1].done == progress[-1].total == 3 * MB


async def test_cut_connection_resumes(
    sshd: Sshd, big_image: Path, tmp_path: Path, ctx: PilotContext, events: Events
) -> None:
    cache = tmp_path / "cache"
    size = big_image.stat().st_size
    cuts = cut_when(sshd, events, 0.5)
    first = EdgeSyncStager(sshd.options(cache, retries=0))
    with pytest.raises(PilotkitError) as info:
        await first.stage(f"sync://{big_image}", ctx)
    assert cuts, "the connection was cut"
    message = str(info.value)
    assert "\n" not in message and "failed after 1 attempt(s)" in message and "staging again resumes it" in message
    partial = cache / "sha256" / f"{sha256(big_image)}.sif.part"
    assert partial.exists() and not partial.with_suffix("").exists(), "only a partial copy"

    events.hook = None
    second = EdgeSyncStager(sshd.options(cache))
    staged = await second.stage(f"sync://{big_image}", ctx)
    stats = second.stats
    assert stats.resumed_from >= 0.25 * size, stats
    assert stats.sent == size - stats.resumed_from
    assert stats.sent < 0.7 * size, f"sent {stats.sent} of {size} bytes after the cut"
    assert sha256(staged.path) == sha256(big_image)
    assert not partial.exists() and not Path(f"{partial}.resume").exists()
    assert any("resuming" in m for m in events.logs("info"))
    copying = events.progress("copying")
    assert 10 <= len(copying) <= 400, "progress is rate-limited"
    await second.release()


async def test_cut_connection_reconnects_by_itself(
    sshd: Sshd, big_image: Path, tmp_path: Path, ctx: PilotContext, events: Events
) -> None:
    size = big_image.stat().st_size
    cuts = cut_when(sshd, events, 0.4)
    stager = EdgeSyncStager(sshd.options(tmp_path / "cache", retries=2))
    staged = await stager.stage(f"sync://{big_image}", ctx)
    assert cuts and stager.stats.attempts == 2
    assert stager.stats.resumed_from > 0.2 * size
    assert stager.stats.sent < 1.25 * size, "the second attempt went on from the cut"
    assert any("reconnecting to resume (attempt 2 of 3)" in m for m in events.logs("warn"))
    assert sha256(staged.path) == sha256(big_image)
    await stager.release()


async def test_corrupt_partial_copy_starts_over(
    sshd: Sshd, tmp_path: Path, ctx: PilotContext, events: Events
) -> None:
    image = write_image(tmp_path / "img.sif", 40 * MB)
    cache = tmp_path / "cache"
    cut_when(sshd, events, 0.6)
    with pytest.raises(PilotkitError):
        await EdgeSyncStager(sshd.options(cache, retries=0, chunk_size="1M")).stage(f"sync://{image}", ctx)
    events.hook = None
    partial = cache / "sha256" / f"{sha256(image)}.sif.part"
    with open(partial, "r+b") as handle:  # flip one byte well inside the committed prefix
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    stager = EdgeSyncStager(sshd.options(cache, chunk_size="1M"))
    staged = await stager.stage(f"sync://{image}", ctx)
    assert stager.stats.resumed_from == 0 and stager.stats.sent == 40 * MB and stager.stats.discarded == 1
    assert any("does not match the image's first" in m for m in events.logs("warn"))
    assert sha256(staged.path) == sha256(image)
    await stager.release()


async def test_flipped_byte_in_cache_is_caught_and_resent(
    sshd: Sshd, tmp_path: Path, ctx: PilotContext, events: Events
) -> None:
    image = write_image(tmp_path / "img.sif", 5 * MB)
    cache = tmp_path / "cache"
    first = EdgeSyncStager(sshd.options(cache))
    staged = await first.stage(f"sync://{image}", ctx)
    await first.release()
    with open(staged.path, "r+b") as handle:
        handle.seek(4 * MB)
        byte = handle.read(1)
        handle.seek(4 * MB)
        handle.write(bytes([byte[0] ^ 0x01]))
    assert sha256(staged.path) != sha256(image)
    second = EdgeSyncStager(sshd.options(cache))
    again = await second.stage(f"sync://{image}", ctx)
    assert again == staged
    assert not second.stats.reused and second.stats.discarded == 1 and second.stats.sent == 5 * MB
    assert any("fails its checksum" in m for m in events.logs("warn"))
    assert sha256(again.path) == sha256(image)
    await second.release()


async def test_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path, ctx: PilotContext) -> None:
    image = write_image(tmp_path / "img.sif", 1000)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    options = sshd.options(tmp_path / "cache", known_hosts=str(empty))
    started = time.monotonic()
    with pytest.raises(PilotkitError) as info:
        await EdgeSyncStager(options).stage(f"sync://{image}", ctx)
    assert time.monotonic() - started < 10, "refused at once, not retried"
    assert str(info.value) == (
        f"edge-sync: host key of pilotkit-test is not trusted (not in {empty}): refusing to connect; "
        "check its fingerprint and add it there"
    )
    assert not (tmp_path / "cache").exists(), "nothing was written"


async def test_wrong_host_key_is_refused(sshd: Sshd, tmp_path: Path, ctx: PilotContext) -> None:
    image = write_image(tmp_path / "img.sif", 1000)
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    with pytest.raises(PilotkitError, match=r"host key of root@127\.0\.0\.1:\d+ is not trusted"):
        await EdgeSyncStager(sshd.direct_options(tmp_path / "cache", known_hosts=str(other))).stage(
            f"sync://{image}", ctx
        )


async def test_nobody_listening(tmp_path: Path, ctx: PilotContext, sshd: Sshd) -> None:
    image = write_image(tmp_path / "img.sif", 1000)
    options = sshd.direct_options(tmp_path / "cache", retries=1)
    options.port = free_port()
    with pytest.raises(PilotkitError) as info:
        await EdgeSyncStager(options).stage(f"sync://{image}", ctx)
    message = str(info.value)
    assert message.startswith(f"edge-sync: cannot connect to root@127.0.0.1:{options.port}: ")
    assert message.endswith("(2 attempt(s))") and "\n" not in message


async def test_cache_that_cannot_be_made(sshd: Sshd, tmp_path: Path, ctx: PilotContext) -> None:
    image = write_image(tmp_path / "img.sif", 1000)
    (tmp_path / "file").write_text("not a directory\n")
    with pytest.raises(PilotkitError) as info:
        await EdgeSyncStager(sshd.options(tmp_path / "file" / "cache")).stage(f"sync://{image}", ctx)
    assert str(info.value).startswith(f"edge-sync: cannot create the cache {tmp_path}/file/cache on pilotkit-test: ")


async def test_concurrency_is_bounded(sshd: Sshd, tmp_path: Path, ctx: PilotContext) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    for i in range(24):
        (root / f"f{i:02d}").write_bytes(os.urandom(200_000))
    stager = EdgeSyncStager(sshd.options(tmp_path / "cache", max_parallel=3))
    await stager.stage(f"sync://{root}", ctx)
    assert stager.stats.peak_parallel == 3 and stager.stats.files == 24
    await stager.release()

    image = write_image(tmp_path / "img.sif", 12 * MB)
    stager = EdgeSyncStager(sshd.options(tmp_path / "cache", max_parallel=2, chunk_size="1M"))
    await stager.stage(f"sync://{image}", ctx)
    assert stager.stats.peak_parallel == 2
    await stager.release()


def make_tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin/tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "bin/tool").chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc/conf").write_text("key = value\n")
    (root / "etc/conf").chmod(0o640)
    (root / "empty").mkdir()
    (root / "a/b/c").mkdir(parents=True)
    (root / "a/b/c/deep").write_bytes(os.urandom(3 * MB))
    (root / "ü x.txt").write_text("unicode and a space\n")
    os.symlink("etc/conf", root / "conf-link")
    os.symlink("/nonexistent/target", root / "dangling")
    (root / "ro").mkdir()
    (root / "ro/file").write_text("in a read-only directory\n")
    (root / "ro").chmod(0o555)
    return root


async def test_directory_image(sshd: Sshd, tmp_path: Path, ctx: PilotContext, events: Events) -> None:
    root = make_tree(tmp_path / "rootfs")
    cache = tmp_path / "cache"
    stager = EdgeSyncStager(sshd.options(cache))
    staged = await stager.stage(f"sync://{root}", ctx)
    source = scan(root)
    assert staged.format == "dir" and staged.path == cache / "sha256" / source.digest
    assert scan(staged.path).digest == source.digest, "same files, links and modes"
    assert os.readlink(staged.path / "conf-link") == "etc/conf"
    assert (staged.path / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert (staged.path / "ro").stat().st_mode & 0o777 == 0o755, "directories stay writable by their owner"
    assert stager.stats.files == 5 and stager.stats.sent == source.size
    await stager.release()

    (staged.path / "etc/conf").write_text("tampered\n")
    (staged.path / "stray").write_text("not in the image\n")
    repair = EdgeSyncStager(sshd.options(cache))
    assert await repair.stage(f"sync://{root}", ctx) == staged
    assert repair.stats.files == 1 and repair.stats.sent == len("key = value\n") and repair.stats.discarded == 1
    assert any("differs from the image" in m for m in events.logs("warn"))
    assert scan(staged.path).digest == source.digest
    await repair.release()

    reuse = EdgeSyncStager(sshd.options(cache))
    await reuse.stage(f"sync://{root}", ctx)
    assert reuse.stats.reused and reuse.stats.sent == 0
    await reuse.release()


async def test_directory_resumes_after_cut(sshd: Sshd, tmp_path: Path, ctx: PilotContext, events: Events) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    for i in range(30):
        (root / f"f{i:02d}").write_bytes(os.urandom(MB))
    cuts = cut_when(sshd, events, 0.5)
    stager = EdgeSyncStager(sshd.options(tmp_path / "cache", retries=1, max_parallel=2))
    staged = await stager.stage(f"sync://{root}", ctx)
    assert cuts and stager.stats.attempts == 2
    assert stager.stats.sent < 1.3 * 30 * MB, "files already there were not sent again"
    assert scan(staged.path).digest == scan(root).digest
    await stager.release()


async def test_lease_is_renewed(sshd: Sshd, tmp_path: Path, ctx: PilotContext) -> None:
    image = write_image(tmp_path / "img.sif", 1000)
    stager = EdgeSyncStager(sshd.options(tmp_path / "cache", lease_ttl="1.5s"))
    await stager.stage(f"sync://{image}", ctx)
    lease = tmp_path / "cache" / "leases" / f"{sha256(image)}.pilot-1"
    first = lease.stat().st_mtime
    deadline = time.monotonic() + 10
    while lease.stat().st_mtime == first and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert lease.stat().st_mtime > first
    await stager.release()
    assert not lease.exists()


async def test_lru_eviction_spares_images_in_use(sshd: Sshd, tmp_path: Path, ctx: PilotContext) -> None:
    cache = tmp_path / "cache"
    images = {name: write_image(tmp_path / f"{name}.sif", 1000) for name in "ABCD"}
    final = {name: cache / "sha256" / f"{sha256(path)}.sif" for name, path in images.items()}

    def age(name: str, seconds: float) -> None:
        then = time.time() - seconds
        os.utime(final[name], (then, then))

    async def stage(name: str, keep: bool = False) -> EdgeSyncStager:
        stager = EdgeSyncStager(sshd.options(cache, cache_limit=2500))
        await stager.stage(f"sync://{images[name]}", ctx)
        if not keep:
            await stager.release()
        return stager

    await stage("A")
    age("A", 300)
    await stage("B")
    age("B", 200)
    await stage("C")  # 3000 bytes would not fit: A, least recently used, goes
    assert not final["A"].exists() and final["B"].exists() and final["C"].exists()

    in_use = await stage("B", keep=True)  # B is in use (its lease is held) ...
    age("B", 500)  # ... and the least recently used
    await stage("D")  # C goes instead
    assert final["B"].exists() and not final["C"].exists() and final["D"].exists()
    await in_use.release()
