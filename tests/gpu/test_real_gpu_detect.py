"""GPU detection and sampling on a real NVIDIA GPU through the real NVML.

Skipped (never failed) where no NVML library or no GPU exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from pilotkit.gpu import GpuSampler, detect_gpus, sample_gpus, visible_devices_env
from pilotkit.testing import need_optional
from pilotkit.types import GpuReport

pytestmark = pytest.mark.gpu

_UUID = re.compile(r"UUID:\s*((?:GPU|MIG)-[0-9A-Za-z-]+)")


@pytest.fixture(scope="module")
def report() -> GpuReport:
    """Every GPU of this machine, ignoring an inherited CUDA_VISIBLE_DEVICES."""
    found = detect_gpus(env={})
    need_optional("an NVIDIA GPU with NVML", bool(found.gpus), found.reason or "")
    return found


def _nvidia_smi_uuids() -> list[str]:
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        pytest.skip("nvidia-smi is not on PATH")
    listing = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=60, check=True)
    return _UUID.findall(listing.stdout)


def test_real_gpu_detected(report: GpuReport) -> None:
    assert report.reason is None
    assert len(report.all_gpus) >= 1
    assert report.driver_version
    assert report.cuda_version and re.fullmatch(r"\d+\.\d+", report.cuda_version)
    for gpu in report.all_gpus:
        assert gpu.uuid.startswith("GPU-")
        assert gpu.name
        assert gpu.memory_total is not None and gpu.memory_total > 0
        assert gpu.compute_capability and re.fullmatch(r"\d+\.\d+", gpu.compute_capability)
    for gpu in report.gpus:
        assert gpu.uuid.startswith("MIG-" if gpu.mig_parent else "GPU-")


def test_real_gpu_uuids_match_nvidia_smi(report: GpuReport) -> None:
    listed = _nvidia_smi_uuids()
    assert sorted(u for u in listed if u.startswith("GPU-")) == sorted(g.uuid for g in report.all_gpus)
    assert sorted(u for u in listed if u.startswith("MIG-")) == sorted(
        g.uuid for g in report.gpus if g.mig_parent
    )


def test_real_gpu_visible_devices_first_uuid_only(report: GpuReport) -> None:
    first = report.gpus[0].uuid
    masked = detect_gpus(env=visible_devices_env([first]))
    assert [g.uuid for g in masked.gpus] == [first]
    assert len(masked.all_gpus) == len(report.all_gpus)

    hidden = detect_gpus(env={"CUDA_VISIBLE_DEVICES": ""})
    assert hidden.gpus == [] and hidden.reason


def test_real_gpu_sampler_gives_numbers(report: GpuReport) -> None:
    with GpuSampler(env={}) as sampler:
        first, second = sampler.sample(), sampler.sample()
    assert [s["uuid"] for s in first] == [g.uuid for g in report.gpus]
    for sample in (*first, *second):
        assert isinstance(sample["memory_total"], int) and sample["memory_total"] > 0
        assert isinstance(sample["memory_used"], int) and 0 <= sample["memory_used"] <= sample["memory_total"]
        if sample["utilization"] is not None:
            assert 0 <= sample["utilization"] <= 100
        if sample["temperature"] is not None:
            assert 0 < sample["temperature"] < 130
    physical = [s for s, g in zip(first, report.gpus, strict=True) if not g.mig_parent]
    assert all(s["utilization"] is not None and s["temperature"] is not None for s in physical)
    assert sample_gpus(uuids=[report.gpus[0].uuid])[0]["uuid"] == report.gpus[0].uuid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_real_gpu_sampler_after_fork(report: GpuReport) -> None:
    sampler = GpuSampler(env={})
    assert len(sampler.sample()) == len(report.gpus)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: sample with its own NVML session, then leave at once
        code = 1
        try:
            child = sampler.sample()
            sampler.close()
            os.write(write, json.dumps(child).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read() or "[]")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [s["uuid"] for s in child] == [g.uuid for g in report.gpus]
    assert all(s["memory_total"] > 0 for s in child)
    assert len(sampler.sample()) == len(report.gpus)  # the parent's session still works
    sampler.close()


_CUDA_COUNT = """
import ctypes
try:
    cuda = ctypes.CDLL("libcuda.so.1")
except OSError:
    print("no-libcuda")
else:
    count = ctypes.c_int(0)
    if cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0:
        print(count.value)
    else:
        print(0)
"""


def _cuda_device_count(value: str) -> int:
    """How many devices the CUDA driver gives a process started with
    ``CUDA_VISIBLE_DEVICES=value``."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": value}
    out = subprocess.run(
        [sys.executable, "-c", _CUDA_COUNT], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout.strip()
    if out == "no-libcuda":
        pytest.skip("libcuda.so.1 (the CUDA driver) is not loadable")
    return int(out)


def test_real_gpu_visible_devices_agree_with_cuda(report: GpuReport) -> None:
    need_optional(
        "a GPU without MIG", not any(g.mig_parent for g in report.gpus), "CUDA sees one MIG instance"
    )
    first = report.gpus[0].uuid
    values = [
        "",
        "0",
        "-1",
        "NoDevFiles",
        "0,0",
        "0,foo",
        ",0",
        "0x0",
        first,
        first[:9],
        "GPU-" + first[4:].upper(),
        first + " ",
        first[:12] + " ",
        " " + first,
        f"{first},{first}",
        f"0,{first}",
        ",".join(str(g.index) for g in report.gpus),
    ]
    for value in values:
        ours = len(detect_gpus(env={"CUDA_VISIBLE_DEVICES": value}).gpus)
        assert ours == _cuda_device_count(value), value


def test_doctor_names_the_gpus(report: GpuReport) -> None:
    """``pilotkit doctor``'s GPU line on a real GPU: the count and names NVML gives."""
    out = subprocess.run(
        ["pilotkit", "doctor", "--json"],
        env={k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    (gpus,) = [c for c in json.loads(out.stdout)["checks"] if c["name"] == "gpus"]
    assert gpus["level"] == "ok", gpus
    assert gpus["message"].startswith(f"{len(report.gpus)} GPU(s): "), gpus
    assert all(g.name in gpus["message"] for g in report.gpus), gpus
