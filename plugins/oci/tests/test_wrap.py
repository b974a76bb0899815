"""Golden tests: the exact argv ``OciRuntime.wrap`` builds, and what it refuses."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pilotkit_oci import OciOptions, OciRuntime
from pilotkit_oci.config import Host, base_config
from pilotkit_oci.runtime import WRAPPER, Prepared, parse_version

from pilotkit.api import Bind, ContainerContext, StagedImage

GOLDEN = Path(__file__).parent / "golden"
PREPARED = StagedImage(ref="busybox", path=Path("/work/oci/busybox-1a2b"), format="oci-bundle")
GPU_A = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000001"
GPU_B = "GPU-3f1e0c9a-aaaa-bbbb-cccc-000000000002"
HEAD = [
    sys.executable, "-I", "-S", str(WRAPPER),
    "--runc", "/usr/sbin/runc",
    "--root", "/work/oci/busybox-1a2b/runc",
    "--bundles", "/work/oci/busybox-1a2b/bundles",
    "--config",
]  # fmt: skip


def runtime(run_args: list[str] | None = None, options: OciOptions | None = None) -> OciRuntime:
    """A runtime as prepare() leaves it for PREPARED (root, host files, no rlimits probe)."""
    config = base_config(
        Path("/images/busybox"), OciOptions(), Host(uid=0, gid=0, host_files=("/etc/hosts",))
    )
    result = OciRuntime()
    result._prepared[str(PREPARED.path)] = Prepared(
        config,
        "/usr/sbin/runc",
        "/work/oci/busybox-1a2b/runc",
        "/work/oci/busybox-1a2b/bundles",
        run_args or [],
        options or OciOptions(),
    )
    return result


def wrap(argv: list[str], rt: OciRuntime | None = None, **kw: Any) -> list[str]:
    return (rt or runtime()).wrap(argv, ContainerContext(image=PREPARED, **kw))


def compact(config: object) -> str:
    return json.dumps(config, separators=(",", ":"))


def golden(name: str) -> dict[str, Any]:
    return dict(json.loads((GOLDEN / name).read_text()))


def test_wrapper_is_the_run_module_file() -> None:
    assert (WRAPPER.name, WRAPPER.parent.name) == ("run.py", "pilotkit_oci")


def test_plain_task() -> None:
    assert wrap(["/bin/true"]) == [*HEAD, compact(golden("task_plain.json"))]


def test_task_with_binds_env_workdir_gpus_and_mpi() -> None:
    got = wrap(
        ["python3", "train.py", "--epochs", "3"],
        binds=(Bind("/scratch/in", "/in", readonly=True), Bind("/scratch/out", "/out")),
        env={"OMP_NUM_THREADS": "4", "PATH": "/opt/venv/bin:/usr/bin:/bin"},
        workdir="/out",
        gpus=(GPU_A, GPU_B),
        mpi=True,
        options=OciOptions(nvidia_hook="/usr/bin/nvidia-container-runtime-hook"),
    )
    assert got == [*HEAD, compact(golden("task_binds_env_gpu_mpi.json"))]


def test_gpus_without_a_hook_only_set_the_environment() -> None:
    config = json.loads(wrap(["x"], gpus=(GPU_A,))[-1])
    assert config["process"]["env"][-2:] == [
        f"CUDA_VISIBLE_DEVICES={GPU_A}",
        f"NVIDIA_VISIBLE_DEVICES={GPU_A}",
    ]
    assert "hooks" not in config


def test_a_task_without_options_gets_the_specs() -> None:
    rt = runtime(options=OciOptions(nvidia_hook="/usr/bin/nvidia-hook"))
    config = json.loads(wrap(["x"], rt, gpus=(GPU_A,))[-1])
    assert config["hooks"]["prestart"][0]["path"] == "/usr/bin/nvidia-hook"
    config = json.loads(wrap(["x"], rt, gpus=(GPU_A,), options=OciOptions())[-1])
    assert "hooks" not in config


def test_runc_run_arguments_follow_a_double_dash() -> None:
    got = wrap(["true"], runtime(["--no-new-keyring"]))
    assert got[: len(HEAD)] == HEAD
    assert got[len(HEAD) + 1 :] == ["--", "--no-new-keyring"]


def test_wrap_leaves_the_base_config_alone() -> None:
    rt = runtime()
    before = json.dumps(rt.prepared(PREPARED).config)
    wrap(["x"], rt, env={"A": "1"}, binds=(Bind("/a", "/b"),), mpi=True)
    assert json.dumps(rt.prepared(PREPARED).config) == before


def test_wrap_needs_a_prepared_bundle() -> None:
    other = StagedImage("busybox", Path("/elsewhere"), "oci-bundle")
    with pytest.raises(ValueError, match="prepare"):
        runtime().wrap(["true"], ContainerContext(image=other))


def test_an_unprepared_directory_gets_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", "/scratch/tmp")
    raw = StagedImage("busybox", Path("/images/busybox"), "dir")
    got = OciRuntime().wrap(["true"], ContainerContext(image=raw))
    uid = os.geteuid()
    assert got[4:11] == [
        "--runc", "runc",
        "--root", f"/scratch/tmp/pilotkit-oci-{uid}/runc",
        "--bundles", f"/scratch/tmp/pilotkit-oci-{uid}/bundles",
        "--config",
    ]  # fmt: skip
    config = json.loads(got[11])
    assert config["root"] == {"path": "/images/busybox", "readonly": True}
    assert "rlimits" not in config["process"]
    assert [m["destination"] for m in config["mounts"]][-1] == "/tmp"


def test_parse_version() -> None:
    text = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\n"
    assert parse_version(text) == "1.1.5+ds1"
    assert parse_version("1.2.0") == "1.2.0"
    assert parse_version("") == "unknown"
