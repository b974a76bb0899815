"""GPU detection and sampling against FakeNVML, a fake of pynvml (no GPU exists on CI)."""

from __future__ import annotations

import ctypes
import json
import os
import sys
import warnings

import msgspec
import pytest

from pilotkit.gpu import GpuSampler, detect_gpus, sample_gpus, visible_devices_env
from pilotkit.testing.fake_nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_SUPPORTED,
    FakeGpu,
    FakeNVML,
)
from pilotkit.types import GpuReport

H100 = FakeGpu(name="NVIDIA H100 80GB HBM3", memory_total=80 * 2**30, compute_capability=(9, 0))
A100 = FakeGpu(name="NVIDIA A100-SXM4-40GB", memory_total=40 * 2**30, compute_capability=(8, 0))


def four_gpus() -> FakeNVML:
    return FakeNVML([H100, A100, H100, A100])


def mixed_mig() -> FakeNVML:
    """GPU 0 plain, GPU 1 with MIG enabled and 3 instances, GPU 2 plain."""
    return FakeNVML([A100, FakeGpu(mig_enabled=True, mig_instances=3), A100])


def uuids(report: GpuReport) -> list[str]:
    return [g.uuid for g in report.gpus]


def assert_balanced(nvml: FakeNVML) -> None:
    assert nvml.init_calls == nvml.shutdown_calls
    assert not nvml.initialised


# ------------------------------------------------------------------ the fake itself


def test_fake_nvml_raises_pynvml_exception_classes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import pynvml

    nvml = FakeNVML(init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.raises(pynvml.NVMLError_LibraryNotFound) as caught:
        nvml.nvmlInit()
    assert caught.value.value == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND == NVML_ERROR_LIBRARY_NOT_FOUND
    assert nvml.NVMLError_NotSupported is pynvml.NVMLError_NotSupported
    assert nvml.NVML_ERROR_DRIVER_NOT_LOADED == pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        FakeNVML([A100]).nvmlDeviceGetCount()


def test_fake_nvml_rejects_unknown_unsupported_field() -> None:
    with pytest.raises(ValueError, match="unknown FakeGpu fields"):
        FakeNVML([FakeGpu(unsupported=frozenset({"memroy"}))])


# ------------------------------------------------------------------ detection


def test_fake_nvml_several_gpus() -> None:
    nvml = four_gpus()
    report = detect_gpus(nvml=nvml, env={})

    assert report.reason is None
    assert [g.index for g in report.gpus] == [0, 1, 2, 3]
    assert [g.name for g in report.gpus] == [H100.name, A100.name, H100.name, A100.name]
    assert [g.compute_capability for g in report.gpus] == ["9.0", "8.0", "9.0", "8.0"]
    assert [g.memory_total for g in report.gpus] == [80 * 2**30, 40 * 2**30] * 2
    assert uuids(report) == [nvml.uuid_of(i) for i in range(4)]
    assert len(set(uuids(report))) == 4
    assert all(
        g.uuid.startswith("GPU-") and g.mig_mode is False and g.mig_parent is None for g in report.gpus
    )
    assert report.all_gpus == report.gpus
    assert report.driver_version == "550.54.15"
    assert report.cuda_version == "12.4"
    assert_balanced(nvml)


def test_fake_nvml_report_encodes_as_json() -> None:
    report = detect_gpus(nvml=mixed_mig(), env={})
    assert msgspec.json.decode(msgspec.json.encode(report), type=GpuReport) == report


def test_fake_nvml_mig_instances_replace_parent() -> None:
    nvml = mixed_mig()
    report = detect_gpus(nvml=nvml, env={})
    parent = nvml.uuid_of(1)
    migs = [nvml.mig_uuid(1, i) for i in range(3)]

    assert uuids(report) == [nvml.uuid_of(0), *migs, nvml.uuid_of(2)]
    assert [g.uuid for g in report.all_gpus] == [nvml.uuid_of(i) for i in range(3)]
    assert [g.mig_mode for g in report.all_gpus] == [False, True, False]
    for gpu in report.gpus[1:4]:
        assert gpu.mig_parent == parent
        assert gpu.index == 1
        assert gpu.uuid.startswith("MIG-")
        assert gpu.memory_total == 40 * 2**30 // 3
        assert gpu.compute_capability == "8.0"
        assert "MIG" in gpu.name
    assert report.reason is None
    assert_balanced(nvml)


def test_fake_nvml_mig_enabled_without_instances() -> None:
    nvml = FakeNVML([FakeGpu(mig_enabled=True, mig_instances=0)])
    report = detect_gpus(nvml=nvml, env={})
    assert report.gpus == []
    assert len(report.all_gpus) == 1
    assert report.reason is not None and "MIG" in report.reason


def test_fake_nvml_mig_instances_hidden_while_mig_disabled() -> None:
    nvml = FakeNVML([FakeGpu(mig_enabled=False, mig_instances=2)])
    report = detect_gpus(nvml=nvml, env={})
    assert uuids(report) == [nvml.uuid_of(0)]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (NVML_ERROR_LIBRARY_NOT_FOUND, "NVML library not found (no NVIDIA driver installed)"),
        (NVML_ERROR_DRIVER_NOT_LOADED, "NVIDIA driver not loaded"),
        (NVML_ERROR_NO_PERMISSION, "no permission to use the NVIDIA devices"),
    ],
)
def test_fake_nvml_init_failure(code: int, reason: str) -> None:
    nvml = FakeNVML([A100], init_error=code)
    report = detect_gpus(nvml=nvml, env={})
    assert report == GpuReport(reason=reason)
    assert nvml.init_calls == 0
    assert nvml.calls["nvmlShutdown"] == 0  # nothing to shut down after a failed init


def test_fake_nvml_missing_library() -> None:
    report = detect_gpus(nvml=FakeNVML([A100], init_error=NVML_ERROR_LIBRARY_NOT_FOUND), env={})
    assert report.gpus == [] and report.all_gpus == []
    assert report.reason == "NVML library not found (no NVIDIA driver installed)"


def test_fake_nvml_driver_not_loaded() -> None:
    report = detect_gpus(nvml=FakeNVML([A100], init_error=NVML_ERROR_DRIVER_NOT_LOADED), env={})
    assert report.gpus == []
    assert report.reason == "NVIDIA driver not loaded"


def test_fake_nvml_other_init_error_is_described() -> None:
    report = detect_gpus(nvml=FakeNVML([A100], init_error=NVML_ERROR_NOT_SUPPORTED), env={})
    assert report.gpus == []
    assert report.reason is not None and report.reason.startswith("NVML could not be initialised")


def test_fake_nvml_no_gpus() -> None:
    nvml = FakeNVML([])
    report = detect_gpus(nvml=nvml, env={})
    assert report.gpus == [] and report.all_gpus == []
    assert report.reason == "no NVIDIA GPU found"
    assert report.driver_version == "550.54.15"
    assert_balanced(nvml)


def test_fake_nvml_inaccessible_gpu_is_skipped() -> None:
    nvml = FakeNVML([FakeGpu(inaccessible=True), A100])
    report = detect_gpus(nvml=nvml, env={})
    assert uuids(report) == [nvml.uuid_of(1)]
    assert [g.index for g in report.gpus] == [1]

    only = detect_gpus(nvml=FakeNVML([FakeGpu(inaccessible=True)]), env={})
    assert only.gpus == []
    assert only.reason is not None and "permission" in only.reason


def test_fake_nvml_unsupported_fields_are_none() -> None:
    nvml = FakeNVML(
        [FakeGpu(unsupported=frozenset({"name", "memory", "compute_capability", "utilization", "mig"}))],
        system_unsupported={"driver_version", "cuda_version"},
    )
    report = detect_gpus(nvml=nvml, env={})
    (gpu,) = report.gpus
    assert gpu.uuid == nvml.uuid_of(0)
    assert gpu.name == ""
    assert gpu.memory_total is None
    assert gpu.compute_capability is None
    assert gpu.mig_mode is None
    assert report.driver_version is None and report.cuda_version is None
    assert report.reason is None
    assert_balanced(nvml)

    (sample,) = sample_gpus(nvml=nvml, env={})
    assert sample["utilization"] is None
    assert sample["memory_used"] is None and sample["memory_total"] is None
    assert sample["temperature"] == 41
    assert_balanced(nvml)


def test_fake_nvml_older_pynvml_without_v2_cuda_version() -> None:
    nvml = FakeNVML([A100], cuda_version=11020, missing={"nvmlSystemGetCudaDriverVersion_v2"})
    assert not hasattr(nvml, "nvmlSystemGetCudaDriverVersion_v2")
    assert detect_gpus(nvml=nvml, env={}).cuda_version == "11.2"


def test_fake_nvml_bytes_and_str_give_the_same_report() -> None:
    as_str = detect_gpus(nvml=FakeNVML([A100, FakeGpu(mig_enabled=True, mig_instances=2)]), env={})
    as_bytes = detect_gpus(
        nvml=FakeNVML([A100, FakeGpu(mig_enabled=True, mig_instances=2)], as_bytes=True), env={}
    )
    assert as_bytes == as_str
    for gpu in as_bytes.gpus:
        assert isinstance(gpu.uuid, str) and isinstance(gpu.name, str)
    assert isinstance(as_bytes.driver_version, str)


def test_fake_nvml_bytes_uuids_in_sampler() -> None:
    nvml = FakeNVML([A100], as_bytes=True)
    (sample,) = sample_gpus(nvml=nvml, uuids=[nvml.uuid_of(0)])
    assert sample["uuid"] == nvml.uuid_of(0)


def test_fake_nvml_shutdown_even_when_a_query_explodes() -> None:
    class Exploding(FakeNVML):
        def nvmlDeviceGetCount(self) -> int:
            raise RuntimeError("bug")

    nvml = Exploding([A100])
    with pytest.raises(RuntimeError):
        detect_gpus(nvml=nvml, env={})
    assert_balanced(nvml)


def test_fake_nvml_init_shutdown_balanced_across_calls() -> None:
    nvml = mixed_mig()
    for _ in range(3):
        detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": "1"})
        sample_gpus(nvml=nvml, env={})
    assert nvml.init_calls == nvml.shutdown_calls == 6
    with GpuSampler(nvml=nvml, env={}) as sampler:
        sampler.sample()
        assert nvml.initialised
    assert_balanced(nvml)


def test_fake_nvml_no_pynvml_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    report = detect_gpus(env={})
    assert report.gpus == []
    assert report.reason is not None and "pynvml" in report.reason
    assert sample_gpus() == []


# ------------------------------------------------------------------ CUDA_VISIBLE_DEVICES


def test_fake_nvml_visible_devices_by_index() -> None:
    nvml = four_gpus()
    report = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": "2,0"})
    assert uuids(report) == [nvml.uuid_of(2), nvml.uuid_of(0)]  # CUDA numbers them in this order
    assert len(report.all_gpus) == 4


def test_fake_nvml_visible_devices_by_uuid() -> None:
    nvml = four_gpus()
    env = {"CUDA_VISIBLE_DEVICES": f"{nvml.uuid_of(3)},{nvml.uuid_of(1)}"}
    assert uuids(detect_gpus(nvml=nvml, env=env)) == [nvml.uuid_of(3), nvml.uuid_of(1)]


def test_fake_nvml_visible_devices_by_uuid_prefix() -> None:
    nvml = FakeNVML(
        [
            FakeGpu(uuid="GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"),
            FakeGpu(uuid="GPU-8932aaaa-d72c-4106-c12f-20bd9faed9f6"),
            FakeGpu(uuid="GPU-1234abcd-d72c-4106-c12f-20bd9faed9f6"),
        ]
    )
    report = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": "GPU-8932f937,GPU-1234"})
    assert uuids(report) == [nvml.uuid_of(0), nvml.uuid_of(2)]
    # "GPU-8932" names two GPUs: ambiguous, so invalid, and the list stops there.
    ambiguous = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": "GPU-1234,GPU-8932,GPU-8932f"})
    assert uuids(ambiguous) == [nvml.uuid_of(2)]


def test_fake_nvml_visible_devices_empty_hides_all() -> None:
    report = detect_gpus(nvml=four_gpus(), env={"CUDA_VISIBLE_DEVICES": ""})
    assert report.gpus == []
    assert len(report.all_gpus) == 4
    assert report.reason == "CUDA_VISIBLE_DEVICES='' hides every GPU"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("NoDevFiles", []),
        ("-1", []),
        ("7", []),  # no such index
        ("GPU-ffffffff", []),  # no such UUID
        ("GPU-", []),
        (",0", []),
        ("0,foo,1", [0]),  # CUDA stops at the first invalid entry
        ("1,-1,2", [1]),
        ("1,,2", [1]),
        ("2,", [2]),
        ("3,GPU-nope,0", [3]),
        ("3,NoDevFiles", [3]),
        (" 1 , 0 ", [1, 0]),
        ("+2", [2]),
        ("02", [2]),
        ("2abc", [2]),  # an index is read as strtol reads it
        ("1x,0", [1, 0]),
        ("0,foo,0", [0]),  # the repeat comes after the stop
    ],
)
def test_fake_nvml_visible_devices_stop_at_invalid_entry(value: str, expected: list[int]) -> None:
    nvml = four_gpus()
    report = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": value})
    assert uuids(report) == [nvml.uuid_of(i) for i in expected]
    if not expected:
        assert report.reason == f"CUDA_VISIBLE_DEVICES={value!r} hides every GPU"


def test_fake_nvml_visible_devices_uuid_spelling() -> None:
    nvml = four_gpus()
    full = nvml.uuid_of(2)
    spellings = (full, full[:9], full[:13], "GPU-" + full[4:].upper(), "MIG-" + full[4:12], full + " x")
    for spelling in spellings:
        assert uuids(detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": spelling})) == [full], spelling
    for wrong in (
        "gpu-" + full[4:],
        full[4:],
        full[:12] + " ",
        full[:-1] + " ",
        " " + full,
        "GPU- " + full[4:],
    ):
        assert detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": wrong}).gpus == [], wrong


def test_fake_nvml_visible_devices_kind_fixed_by_first_entry() -> None:
    nvml = four_gpus()
    by_index = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": f"0,{nvml.uuid_of(1)},2"})
    assert uuids(by_index) == [nvml.uuid_of(0)]
    by_uuid = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": f"{nvml.uuid_of(1)},0"})
    assert uuids(by_uuid) == [nvml.uuid_of(1)]


@pytest.mark.parametrize("value", ["0,0", "1,01", "2, 2,0", "GPU-{2},GPU-{2}", "GPU-{2},{2}", "0,0,foo"])
def test_fake_nvml_visible_devices_repeat_hides_all(value: str) -> None:
    nvml = four_gpus()
    value = value.replace("GPU-{2}", nvml.uuid_of(2)).replace("{2}", nvml.uuid_of(2)[:10])
    report = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": value})
    assert report.gpus == []
    assert report.reason == f"CUDA_VISIBLE_DEVICES={value!r} names a GPU twice, so CUDA refuses every GPU"


def test_fake_nvml_visible_devices_with_mig() -> None:
    nvml = mixed_mig()
    mig = [nvml.mig_uuid(1, i) for i in range(3)]

    by_mig_uuid = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": f"{mig[2]},{nvml.uuid_of(0)}"})
    assert uuids(by_mig_uuid) == [mig[2], nvml.uuid_of(0)]

    by_mig_prefix = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": mig[1][:12]})
    assert uuids(by_mig_prefix) == [mig[1]]

    by_parent_index = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": "1"})
    assert uuids(by_parent_index) == mig

    by_parent_uuid = detect_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": nvml.uuid_of(1)})
    assert uuids(by_parent_uuid) == mig

    parent_after_instance = detect_gpus(
        nvml=nvml, env={"CUDA_VISIBLE_DEVICES": f"{mig[0]},{nvml.uuid_of(1)}"}
    )
    assert parent_after_instance.gpus == []
    assert parent_after_instance.reason is not None and "twice" in parent_after_instance.reason


def test_fake_nvml_visible_devices_from_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = four_gpus()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert uuids(detect_gpus(nvml=nvml)) == [nvml.uuid_of(1)]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert len(detect_gpus(nvml=nvml).gpus) == 4


def test_fake_nvml_visible_devices_env() -> None:
    env = visible_devices_env(["GPU-a", "MIG-b"])
    assert env == {"CUDA_VISIBLE_DEVICES": "GPU-a,MIG-b", "NVIDIA_VISIBLE_DEVICES": "GPU-a,MIG-b"}
    assert visible_devices_env([]) == {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": ""}
    with pytest.raises(ValueError):
        visible_devices_env(["GPU-a,GPU-b"])
    with pytest.raises(ValueError):
        visible_devices_env([""])


def test_fake_nvml_visible_devices_env_round_trips_through_detection() -> None:
    nvml = mixed_mig()
    wanted = [nvml.mig_uuid(1, 1), nvml.uuid_of(2)]
    assert uuids(detect_gpus(nvml=nvml, env=visible_devices_env(wanted))) == wanted


# ------------------------------------------------------------------ sampling


def test_fake_nvml_sample_gpus() -> None:
    nvml = FakeNVML([FakeGpu(utilization=80, temperature=66, memory_used=3 * 2**30)])
    assert sample_gpus(nvml=nvml, env={}) == [
        {
            "uuid": nvml.uuid_of(0),
            "index": 0,
            "utilization": 80,
            "memory_used": 3 * 2**30,
            "memory_total": 40 * 2**30,
            "temperature": 66,
        }
    ]
    assert_balanced(nvml)


def test_fake_nvml_sample_gpus_by_uuid() -> None:
    nvml = mixed_mig()
    mig = nvml.mig_uuid(1, 0)
    samples = sample_gpus(nvml=nvml, uuids=[nvml.uuid_of(2), mig, "GPU-not-here"])
    assert [s["uuid"] for s in samples] == [nvml.uuid_of(2), mig]
    mig_sample = samples[1]
    assert mig_sample["index"] == 1
    assert mig_sample["utilization"] is None  # NVML does not report it per MIG instance
    assert mig_sample["temperature"] == 41  # the physical GPU's
    assert mig_sample["memory_total"] == 40 * 2**30 // 3


def test_fake_nvml_sample_gpus_honours_visible_devices() -> None:
    nvml = four_gpus()
    samples = sample_gpus(nvml=nvml, env={"CUDA_VISIBLE_DEVICES": "3"})
    assert [s["uuid"] for s in samples] == [nvml.uuid_of(3)]


def test_fake_nvml_sample_gpus_without_nvml() -> None:
    nvml = FakeNVML([A100], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    assert sample_gpus(nvml=nvml) == []
    sampler = GpuSampler(nvml=nvml)
    assert sampler.sample() == []
    assert sampler.sample() == []
    assert sampler.reason == "NVML library not found (no NVIDIA driver installed)"
    assert nvml.calls["nvmlInit"] == 2  # one for sample_gpus, one for the sampler: no retry per sample
    sampler.close()


def test_fake_nvml_sampler_is_cheap() -> None:
    nvml = FakeNVML([A100, FakeGpu(unsupported=frozenset({"utilization"}))])
    with GpuSampler(nvml=nvml, env={}) as sampler:
        for _ in range(10):
            assert len(sampler.sample()) == 2
    assert nvml.init_calls == nvml.shutdown_calls == 1
    assert nvml.calls["nvmlDeviceGetCount"] == 1
    assert nvml.calls["nvmlDeviceGetHandleByIndex"] == 2
    assert nvml.calls["nvmlDeviceGetMemoryInfo"] == 2 + 2 * 10  # inventory, then one per sample
    # unsupported once, never asked again on that GPU
    assert nvml.calls["nvmlDeviceGetUtilizationRates"] == 10 + 1


def test_fake_nvml_sampler_reinits_after_pid_change(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNVML([A100, H100])
    sampler = GpuSampler(nvml=nvml, env={})
    assert len(sampler.sample()) == 2
    assert len(sampler.sample()) == 2
    assert nvml.init_calls == 1
    assert nvml.calls["nvmlDeviceGetHandleByIndex"] == 2

    parent = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent + 1)  # as in a forked child
    assert len(sampler.sample()) == 2
    assert nvml.init_calls == 2  # a new session for the "child"
    assert nvml.calls["nvmlDeviceGetHandleByIndex"] == 4  # handles looked up again
    assert nvml.shutdown_calls == 0  # the parent's session is not the child's to end
    sampler.close()
    assert nvml.shutdown_calls == 1

    monkeypatch.undo()
    assert len(sampler.sample()) == 2  # closed samplers reopen on use
    sampler.close()
    assert nvml.init_calls == 3 and nvml.shutdown_calls == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fake_nvml_sampler_in_forked_child() -> None:
    nvml = FakeNVML([A100])
    sampler = GpuSampler(nvml=nvml, env={})
    assert len(sampler.sample()) == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report what it saw, then leave without running pytest's teardown
        code = 1
        try:
            samples = sampler.sample()
            sampler.close()
            result = {"samples": len(samples), "init": nvml.init_calls, "shutdown": nvml.shutdown_calls}
            os.write(write, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        result = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == {"samples": 1, "init": 2, "shutdown": 1}
    assert nvml.init_calls == 1 and nvml.shutdown_calls == 0  # the parent's session is untouched
    assert len(sampler.sample()) == 1
    sampler.close()
    assert_balanced(nvml)


# ------------------------------------------------------------------ the real pynvml, here


def _nvml_library_loadable() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def test_without_fake_nvml_real_pynvml_never_raises() -> None:
    """detect_gpus() with the real pynvml: on a machine without the NVML library it
    reports no GPU and says why; elsewhere it still returns a consistent report."""
    report = detect_gpus(env={})
    assert isinstance(report, GpuReport)
    if not _nvml_library_loadable():
        assert report.gpus == [] and report.all_gpus == []
        assert report.reason == "NVML library not found (no NVIDIA driver installed)"
        assert sample_gpus() == []
    else:
        assert bool(report.gpus) == (report.reason is None)


# ------------------------------------------------------------------ pilotkit doctor


def test_doctor_gpu_line_fake_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The doctor's GPU line from what NVML says: the GPUs and driver, none (ok unless a
    local profile asks for GPUs), or why NVML could not say."""
    import pilotkit.gpu
    from pilotkit.cli.checks import Site, gpus

    monkeypatch.setattr(pilotkit.gpu, "detect_gpus", lambda: detect_gpus(nvml=four_gpus(), env={}))
    check = gpus(Site(provider="local", gpus=2))
    assert check.level == "ok"
    assert check.message.startswith("4 GPU(s): NVIDIA A100-SXM4-40GB, NVIDIA H100 80GB HBM3, driver ")
    nvml = FakeNVML(init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    monkeypatch.setattr(pilotkit.gpu, "detect_gpus", lambda: detect_gpus(nvml=nvml, env={}))
    check = gpus(Site(provider="local", gpus=2))
    assert check.level == "error"
    assert check.message.startswith("the profile asks for 2 GPU(s), this machine has none (")
    assert gpus(Site(provider="slurm", gpus=2)).level == "ok", "the nodes, not this machine, have them"
    assert gpus(Site()).message.startswith("none on this machine (")
