"""Golden tests of the base config, and of task overlays and how they merge."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from pilotkit_oci.config import Host, apply_overlay, base_config, parse_user, task_overlay
from pilotkit_oci.options import OciOptions

from pilotkit.api import Bind, ContainerContext, StagedImage

GOLDEN = Path(__file__).parent / "golden"
IMAGE = StagedImage(ref="busybox", path=Path("/state/busybox"), format="oci-bundle")
GPU = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000001"


def golden(name: str) -> object:
    return json.loads((GOLDEN / name).read_text())


def test_base_config_as_root() -> None:
    host = Host(uid=0, gid=0, host_files=("/etc/resolv.conf", "/etc/hosts"))
    assert base_config(Path("/images/busybox"), OciOptions(), host) == golden("base_config_root.json")


def test_base_config_rootless() -> None:
    opts = OciOptions(rlimits={}, user="1000:100")
    config = base_config(Path("/images/busybox"), opts, Host(uid=1000, gid=100, tmp=False))
    assert config == golden("base_config_rootless.json")


def test_base_config_without_rlimits() -> None:
    config = base_config(Path("/i"), OciOptions(), Host(uid=0, gid=0), rlimits=False)
    assert "rlimits" not in config["process"]


@pytest.mark.parametrize("namespaces", [["pid", "uts"], ["mount", "net"], ["mount", "user"]])
def test_bad_namespaces(namespaces: list[str]) -> None:
    with pytest.raises(ValueError, match="namespaces"):
        base_config(Path("/i"), OciOptions(namespaces=namespaces), Host(uid=0, gid=0))


def test_parse_user() -> None:
    assert parse_user(None) == (0, 0)
    assert parse_user("1000") == (1000, 1000)
    assert parse_user("1000:100") == (1000, 100)


def test_overlay_of_a_plain_task() -> None:
    assert task_overlay(["true"], ContainerContext(image=IMAGE), OciOptions()) == {"args": ["true"]}


def test_overlay_with_everything() -> None:
    ctx = ContainerContext(
        image=IMAGE,
        binds=(Bind("/data/in", "/in", readonly=True), Bind("/data/out", "/out")),
        env={"A": "1"},
        workdir="/out",
        gpus=(GPU,),
        mpi=True,
    )
    opts = OciOptions(nvidia_hook="/usr/bin/nvidia-container-runtime-hook")
    assert task_overlay(["./run", "x"], ctx, opts) == {
        "args": ["./run", "x"],
        "env": {"CUDA_VISIBLE_DEVICES": GPU, "NVIDIA_VISIBLE_DEVICES": GPU, "A": "1"},
        "cwd": "/out",
        "drop_namespaces": ["pid", "ipc"],
        "mounts": [
            {"destination": "/in", "type": "bind", "source": "/data/in", "options": ["rbind", "ro"]},
            {"destination": "/out", "type": "bind", "source": "/data/out", "options": ["rbind", "rw"]},
            {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rw"]},
        ],
        "hooks": {
            "prestart": [
                {
                    "path": "/usr/bin/nvidia-container-runtime-hook",
                    "args": ["nvidia-container-runtime-hook", "prestart"],
                }
            ]
        },
    }


def test_overlay_rejects_relative_workdir_and_empty_argv() -> None:
    with pytest.raises(ValueError, match="absolute"):
        task_overlay(["x"], ContainerContext(image=IMAGE, workdir="rel"), OciOptions())
    with pytest.raises(ValueError, match="command"):
        task_overlay([], ContainerContext(image=IMAGE), OciOptions())


def test_apply_overlay() -> None:
    base = base_config(Path("/images/busybox"), OciOptions(), Host(uid=0, gid=0))
    ctx = ContainerContext(
        image=IMAGE,
        binds=(Bind("/d", "/d"),),
        env={"PATH": "/opt/bin:/bin", "X": "1"},
        workdir="/d",
        mpi=True,
    )
    config = apply_overlay(copy.deepcopy(base), task_overlay(["a", "b"], ctx, OciOptions()))
    process = config["process"]
    assert process["args"] == ["a", "b"]
    assert process["env"] == ["PATH=/opt/bin:/bin", "HOME=/root", "X=1"]
    assert process["cwd"] == "/d"
    assert [ns["type"] for ns in config["linux"]["namespaces"]] == ["uts", "mount"]
    assert [m["destination"] for m in config["mounts"][-2:]] == ["/d", "/dev/shm"]
    assert config["mounts"][:-2] == base["mounts"]


def test_apply_overlay_keeps_the_user_namespace_and_merges_hooks() -> None:
    base = base_config(Path("/i"), OciOptions(), Host(uid=1000, gid=1000))
    base["hooks"] = {"prestart": [{"path": "/site/hook"}]}
    task = {"args": ["x"], "drop_namespaces": ["pid", "ipc"], "hooks": {"prestart": [{"path": "/gpu"}]}}
    config = apply_overlay(base, task)
    assert [ns["type"] for ns in config["linux"]["namespaces"]] == ["uts", "mount", "user"]
    assert config["hooks"] == {"prestart": [{"path": "/site/hook"}, {"path": "/gpu"}]}


def test_rootless_without_pid_and_ipc_namespaces_binds_proc_and_drops_mqueue() -> None:
    rootless = Host(uid=1000, gid=1000)
    config = base_config(Path("/i"), OciOptions(namespaces=["uts", "mount"]), rootless)
    by_destination = {m["destination"]: m for m in config["mounts"]}
    assert by_destination["/proc"] == {
        "destination": "/proc",
        "type": "bind",
        "source": "/proc",
        "options": ["rbind", "nosuid", "noexec", "nodev"],
    }
    assert "/dev/mqueue" not in by_destination
    mpi = apply_overlay(
        base_config(Path("/i"), OciOptions(), rootless), {"args": ["x"], "drop_namespaces": ["pid", "ipc"]}
    )
    assert [m for m in mpi["mounts"] if m["destination"] in ("/proc", "/dev/mqueue")] == [
        by_destination["/proc"]
    ]


def test_as_root_proc_and_mqueue_stay_whatever_the_namespaces() -> None:
    config = base_config(Path("/i"), OciOptions(namespaces=["mount"]), Host(uid=0, gid=0))
    assert [m["type"] for m in config["mounts"][:5]] == ["proc", "tmpfs", "devpts", "tmpfs", "mqueue"]
