"""Pure parts: references, SSH settings, trees, remote listings, progress."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pilotkit_edge_sync
import pytest
from pilotkit_edge_sync.cache import Layout, parse_scan
from pilotkit_edge_sync.options import EdgeSyncOptions
from pilotkit_edge_sync.progress import Progress
from pilotkit_edge_sync.source import scan, source_path
from pilotkit_edge_sync.ssh import connect_kwargs, destination
from pilotkit_edge_sync.stager import EdgeSyncStager
from pilotkit_edge_sync.tree import (
    Entry,
    mode_fixes,
    parse_listing,
    parse_sha256sum,
    plan_tree,
    tree_digest,
)

from pilotkit.api import Event, PilotkitError, SpecError, StageProgress, Stager
from pilotkit.testing import Plugins, parse_spec
from pilotkit.testing.contracts import StagerContract

from .conftest import GROUPS, write_image

D1 = "1" * 64
D2 = "2" * 64


class TestContract(StagerContract):
    @pytest.fixture
    def stager_cls(self) -> type[Stager]:
        return EdgeSyncStager


def test_chosen_for_sync_refs() -> None:
    assert Plugins().load().stager_for("sync:///data/image.sif") is EdgeSyncStager


@pytest.mark.parametrize(
    ("ref", "path"),
    [("sync:///abs/image.sif", "/abs/image.sif"), ("sync://rel/x.sif", "/base/rel/x.sif")],
)
def test_source_path(ref: str, path: str) -> None:
    assert source_path(ref, Path("/base")) == Path(path)


def test_source_path_refuses_other_schemes() -> None:
    with pytest.raises(PilotkitError, match="takes sync:// references"):
        source_path("docker://python", Path("/"))


def test_connect_kwargs_keep_host_key_checking() -> None:
    options = EdgeSyncOptions(host="alice@login.site.org", cache="/c", port=2200, known_hosts="/k",
                              client_keys=["/id"], ssh_config="/cfg")
    kwargs = connect_kwargs(options)
    assert kwargs["host"] == "login.site.org" and kwargs["username"] == "alice" and kwargs["port"] == 2200
    assert kwargs["known_hosts"] == "/k" and kwargs["client_keys"] == ["/id"] and kwargs["config"] == ["/cfg"]
    alias = connect_kwargs(EdgeSyncOptions(host="site", cache="/c"))
    assert "known_hosts" not in alias and "username" not in alias and "port" not in alias
    assert destination(options).label == "alice@login.site.org:2200"


def test_layout() -> None:
    layout = Layout("/scratch/cache")
    assert layout.final(D1, "sif") == f"/scratch/cache/sha256/{D1}.sif"
    assert layout.final(D1, "squashfs") == f"/scratch/cache/sha256/{D1}.sqfs"
    assert layout.final(D1, "dir") == f"/scratch/cache/sha256/{D1}"
    assert layout.lease(D1, "p 1/x") == f"/scratch/cache/leases/{D1}.p_1_x"


def test_parse_scan() -> None:
    output = (
        "1000\n---\n"
        f"sha256/{D1}.sif f 900.5 100\n"
        f"sha256/{D2} d 800.0 4096\n"
        f"sha256/{D2}.part d 990.0 4096\n"
        f"sha256/{D1}.sif.part f 700.0 30\n"
        f"leases/{D1}.pilot-a f 950.0 10\n"
        f"leases/{D2}.pilot-b f 10.0 10\n"
        "sha256/not-ours f 1.0 5\n"
        "---\n"
        f"5000\tsha256/{D2}\n70\tsha256/{D2}.part\n"
    )
    listing = parse_scan(output, lease_ttl=100)
    assert listing.now == 1000
    one, two = listing.entries
    assert (one.digest, one.size, one.last_used, one.in_use) == (D1, 130, 900.5, True)
    assert (two.digest, two.size, two.last_used, two.in_use) == (D2, 5070, 990.0, False)


def test_tree_digest_depends_on_content_mode_and_links() -> None:
    base = [Entry("a", "d", 0o755), Entry("a/f", "f", 0o644, D1), Entry("l", "l", 0, "a/f")]
    assert tree_digest(base) == tree_digest(list(reversed(base)))
    assert tree_digest(base) != tree_digest([*base[:2], Entry("l", "l", 0, "a")])
    assert tree_digest(base) != tree_digest([base[0], Entry("a/f", "f", 0o755, D1), base[2]])
    assert tree_digest(base) != tree_digest([base[0], Entry("a/f", "f", 0o644, D2), base[2]])


def test_parse_listing_and_sums() -> None:
    found = b"d\x00755\x004096\x00bin\x00\x00f\x004755\x0012\x00bin/tool\x00\x00l\x00777\x003\x00sh\x00bin/tool\x00"
    sums = parse_sha256sum(f"{D1}  ./bin/tool\n\\{D2}  ./odd\\nname\\\\x\n".encode())
    assert sums == {"bin/tool": D1, "odd\nname\\x": D2}
    assert parse_listing(found, sums) == [
        Entry("bin", "d", 0o755), Entry("bin/tool", "f", 0o755, D1, 12), Entry("sh", "l", 0, "bin/tool"),
    ]  # fmt: skip


def test_plan_tree() -> None:
    local = [
        Entry("d", "d", 0o755), Entry("d/same", "f", 0o644, D1, 5), Entry("d/changed", "f", 0o644, D1, 5),
        Entry("d/new", "f", 0o600, D2, 7), Entry("link", "l", 0, "d/same"), Entry("was-dir", "f", 0o644, D1, 5),
        Entry("mode", "f", 0o755, D1, 5), Entry("relink", "l", 0, "new-target"),
    ]  # fmt: skip
    remote = [
        Entry("d", "d", 0o755), Entry("d/same", "f", 0o644, D1), Entry("d/changed", "f", 0o644, D2),
        Entry("extra", "f", 0o644, D1), Entry("was-dir", "d", 0o755), Entry("was-dir/x", "f", 0o644, D1),
        Entry("link", "l", 0, "d/same"), Entry("mode", "f", 0o644, D1), Entry("relink", "l", 0, "old"),
    ]  # fmt: skip
    plan = plan_tree(local, remote)
    assert plan.remove == ["extra", "relink", "was-dir"]
    assert [e.path for e in plan.uploads] == ["d/changed", "d/new", "was-dir"]
    assert [e.path for e in plan.links] == ["relink"]
    assert [e.path for e in plan.chmods] == ["mode"]
    assert plan.mkdirs == [] and plan.upload_bytes == 17
    assert plan_tree(local, local).empty
    assert mode_fixes(local, remote) == {0o755: ["mode"]}


def test_plan_tree_into_nothing() -> None:
    local = [Entry("a", "d", 0o700), Entry("a/b", "d", 0o755), Entry("a/b/f", "f", 0o644, D1, 3)]
    plan = plan_tree(local, [])
    assert plan.mkdirs == ["a", "a/b"] and [e.path for e in plan.uploads] == ["a/b/f"] and not plan.remove


def test_scan_directory(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin/tool").write_bytes(b"#!/bin/sh\n")
    (root / "bin/tool").chmod(0o755)
    os.symlink("bin/tool", root / "tool")
    os.mkfifo(root / "fifo")
    source = scan(root)
    assert source.format == "dir" and source.size == 10 and source.skipped == ("fifo",)
    assert [(e.path, e.kind) for e in source.entries] == [("bin", "d"), ("tool", "l"), ("bin/tool", "f")]
    assert scan(root).digest == source.digest
    (root / "bin/tool").write_bytes(b"#!/bin/sh \n")
    assert scan(root).digest != source.digest


def test_scan_file(tmp_path: Path) -> None:
    image = write_image(tmp_path / "x.sif", 5000)
    source = scan(image)
    assert (source.format, source.size) == ("sif", 5000)
    (tmp_path / "x.tar").write_bytes(b"nope" * 20)
    with pytest.raises(PilotkitError, match="neither a SIF nor a squashfs"):
        scan(tmp_path / "x.tar")
    with pytest.raises(PilotkitError, match="does not exist"):
        scan(tmp_path / "missing.sif")


def test_progress_is_rate_limited() -> None:
    seen: list[Event] = []
    now = [0.0]
    progress = Progress(seen.append, "p", "img", 1000, "copying", clock=lambda: now[0])
    for done in range(0, 1001):
        progress.update(done)
    assert [e.done for e in seen if isinstance(e, StageProgress)] == list(range(0, 1001, 10))
    seen.clear()
    slow = Progress(seen.append, "p", "img", 10**9, "copying", clock=lambda: now[0])
    for step in range(10):
        now[0] = step * 0.2
        slow.update(step + 1)
    assert [e.done for e in seen if isinstance(e, StageProgress)] == [1, 4, 7, 10]


def test_spec(tmp_path: Path) -> None:
    from .conftest import plugins_with

    plugins = plugins_with(pilotkit_edge_sync, "edge-sync")
    text = '[image]\nref = "{}"\nstager = "edge-sync"\nhost = "site"\ncache = "{}"\ncache_limit = "50G"\n[container]\nruntime = "fake-runtime"\n'
    spec = parse_spec('name = "t"\n' + text.format("sync:///x.sif", "/c") + GROUPS, tmp_path / "s.toml", plugins)
    assert spec.stager_cls is EdgeSyncStager and spec.stager_options.cache_limit == "50G"
    with pytest.raises(SpecError) as info:
        parse_spec('name = "t"\n' + text.format("docker://x", "rel") + GROUPS, tmp_path / "s.toml", plugins)
    assert "image.ref: edge-sync takes sync://" in str(info.value)
    assert "image.cache: expected an absolute path" in str(info.value)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"host": "h", "cache": "/c", "max_parallel": 0}, EdgeSyncOptions)
