"""A fake of the ``pynvml`` module, for testing GPU code where no GPU can exist (CI).

:class:`FakeNVML` is explicitly a fake: it has the functions, constants and
``NVMLError`` classes of the pynvml surface :mod:`pilotkit.gpu` uses, answers from a
list of :class:`FakeGpu` descriptions, and counts its calls. It raises pynvml's own
exception classes (``NVMLError_LibraryNotFound``, ``NVMLError_NotSupported``...) when
pynvml can be imported, which it can without a driver; otherwise look-alike classes
with the same names and ``value`` codes.

    nvml = FakeNVML([FakeGpu(name="NVIDIA A100-SXM4-40GB"), FakeGpu(mig_instances=2)])
    report = detect_gpus(nvml=nvml, env={})
    assert nvml.init_calls == nvml.shutdown_calls == 1
"""

from __future__ import annotations

import string
import sys
import uuid as uuidlib
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NVML_ERROR_DRIVER_NOT_LOADED",
    "NVML_ERROR_LIBRARY_NOT_FOUND",
    "NVML_ERROR_NOT_FOUND",
    "NVML_ERROR_NOT_SUPPORTED",
    "NVML_ERROR_NO_PERMISSION",
    "NVML_ERROR_UNINITIALIZED",
    "FakeGpu",
    "FakeHandle",
    "FakeNVML",
]

# NVML return codes, as in nvml.h and pynvml.
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_UNKNOWN = 999

NVML_TEMPERATURE_GPU = 0
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

FIELDS = frozenset({"name", "memory", "compute_capability", "utilization", "temperature", "mig"})
"""Field names :attr:`FakeGpu.unsupported` accepts."""

_UUID_NAMESPACE = uuidlib.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


def _codes() -> dict[str, int]:
    """``NVML_ERROR_*`` names and values defined in this module."""
    module = sys.modules[__name__]
    return {name: getattr(module, name) for name in dir(module) if name.startswith("NVML_ERROR_")}


def _class_name(constant: str) -> str:
    """pynvml's naming: ``NVML_ERROR_LIBRARY_NOT_FOUND`` -> ``NVMLError_LibraryNotFound``."""
    return "NVMLError_" + string.capwords(constant.removeprefix("NVML_ERROR_"), "_").replace("_", "")


class _LookAlikeNVMLError(Exception):
    """Stands in for ``pynvml.NVMLError`` when pynvml cannot be imported."""

    value: int = NVML_ERROR_UNKNOWN

    def __init__(self, value: int | None = None) -> None:
        if value is not None:
            self.value = value
        super().__init__(self.value)

    def __str__(self) -> str:
        return f"NVML error {self.value}"


def _error_classes() -> tuple[type[Exception], dict[int, type[Exception]]]:
    """``NVMLError`` and its per-code subclasses: pynvml's, else look-alikes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            import pynvml
        except ImportError:
            pynvml = None
    by_code: dict[int, type[Exception]] = {}
    for constant, code in _codes().items():
        name = _class_name(constant)
        cls = getattr(pynvml, name, None) if pynvml is not None else None
        if cls is None:
            cls = type(name, (_LookAlikeNVMLError,), {"value": code, "__module__": __name__})
        by_code[code] = cls
    base = pynvml.NVMLError if pynvml is not None else _LookAlikeNVMLError
    return base, by_code


@dataclass
class FakeGpu:
    """One fake physical GPU. ``uuid`` None gets a stable one from its index."""

    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str | None = None
    memory_total: int = 40 * 2**30
    memory_used: int = 2**30
    compute_capability: tuple[int, int] = (8, 0)
    utilization: int = 37
    temperature: int = 41
    mig_enabled: bool = False
    mig_instances: int = 0
    """MIG instances to create (only seen by NVML when ``mig_enabled``)."""
    mig_slots: int = 7
    """``nvmlDeviceGetMaxMigDeviceCount``; slots past ``mig_instances`` are empty."""
    unsupported: frozenset[str] = frozenset()
    """Fields whose query raises ``NVMLError_NotSupported`` (see :data:`FIELDS`)."""
    inaccessible: bool = False
    """``nvmlDeviceGetHandleByIndex`` raises ``NVMLError_NoPermission``."""


@dataclass(frozen=True)
class FakeHandle:
    """A fake device handle: a physical GPU, or one of its MIG instances."""

    gpu: int
    mig: int | None = None


@dataclass(frozen=True)
class FakeMemory:
    """Like pynvml's ``c_nvmlMemory_t``."""

    total: int
    free: int
    used: int


@dataclass(frozen=True)
class FakeUtilization:
    """Like pynvml's ``c_nvmlUtilization_t``."""

    gpu: int
    memory: int


@dataclass
class FakeNVML:
    """A fake ``pynvml`` module (see the module docstring).

    ``init_error``: the NVML code ``nvmlInit`` fails with (``NVML_ERROR_LIBRARY_NOT_FOUND``,
    ``NVML_ERROR_DRIVER_NOT_LOADED``...). ``as_bytes``: return ``bytes`` from string
    functions, as pynvml before 11.5 did. ``missing``: function names the fake lacks,
    as an older pynvml would (``AttributeError``). ``system_unsupported``: of
    ``"driver_version"`` and ``"cuda_version"``, which raise ``NVMLError_NotSupported``.
    Device functions called outside ``nvmlInit``/``nvmlShutdown`` raise
    ``NVMLError_Uninitialized``, as NVML does.
    """

    gpus: Sequence[FakeGpu] = ()
    driver_version: str = "550.54.15"
    cuda_version: int = 12040
    init_error: int | None = None
    as_bytes: bool = False
    missing: Iterable[str] = ()
    system_unsupported: Iterable[str] = ()
    init_calls: int = field(default=0, init=False)
    shutdown_calls: int = field(default=0, init=False)
    calls: Counter[str] = field(default_factory=Counter, init=False)
    """Calls per function name."""

    NVML_SUCCESS = NVML_SUCCESS
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_DEVICE_MIG_DISABLE = NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __post_init__(self) -> None:
        self.gpus = list(self.gpus)
        self.missing = frozenset(self.missing)
        self.system_unsupported = frozenset(self.system_unsupported)
        for gpu in self.gpus:
            unknown = set(gpu.unsupported) - FIELDS
            if unknown:
                raise ValueError(f"unknown FakeGpu fields {sorted(unknown)}; known: {sorted(FIELDS)}")
        base, by_code = _error_classes()
        self.NVMLError = base
        self._by_code = by_code
        for constant, code in _codes().items():
            setattr(self, constant, code)
            setattr(self, _class_name(constant), by_code[code])

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("nvml") and name in object.__getattribute__(self, "__dict__").get("missing", ()):
            raise AttributeError(f"fake pynvml has no attribute {name!r}")
        return object.__getattribute__(self, name)

    # ------------------------------------------------------------------ helpers

    @property
    def initialised(self) -> bool:
        """Whether an NVML session is open (more inits than shutdowns)."""
        return self.init_calls > self.shutdown_calls

    @staticmethod
    def gpu_uuid(index: int) -> str:
        """The UUID a :class:`FakeGpu` without one gets."""
        return "GPU-" + str(uuidlib.uuid5(_UUID_NAMESPACE, f"gpu{index}"))

    @staticmethod
    def mig_uuid(index: int, instance: int) -> str:
        """The UUID of MIG instance ``instance`` of GPU ``index``."""
        return "MIG-" + str(uuidlib.uuid5(_UUID_NAMESPACE, f"gpu{index}/mig{instance}"))

    def uuid_of(self, index: int) -> str:
        """The UUID of GPU ``index``."""
        return self.gpus[index].uuid or self.gpu_uuid(index)

    def error(self, code: int) -> Exception:
        """The pynvml exception for an NVML return code."""
        return self._by_code[code]()

    def _enter(self, function: str) -> None:
        self.calls[function] += 1
        if not self.initialised:
            raise self.error(NVML_ERROR_UNINITIALIZED)

    def _str(self, value: str) -> Any:
        return value.encode() if self.as_bytes else value

    def _gpu(self, handle: FakeHandle, field_name: str | None = None, *, mig_ok: bool = True) -> FakeGpu:
        if not isinstance(handle, FakeHandle) or not 0 <= handle.gpu < len(self.gpus):
            raise self.error(NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.gpu]
        if handle.mig is not None and not mig_ok:
            raise self.error(NVML_ERROR_NOT_SUPPORTED)
        if field_name is not None and field_name in gpu.unsupported:
            raise self.error(NVML_ERROR_NOT_SUPPORTED)
        return gpu

    # ------------------------------------------------------------------ pynvml surface

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise self.error(self.init_error)
        self.init_calls += 1

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown"] += 1
        if not self.initialised:
            raise self.error(NVML_ERROR_UNINITIALIZED)
        self.shutdown_calls += 1

    def nvmlSystemGetDriverVersion(self) -> Any:
        self._enter("nvmlSystemGetDriverVersion")
        if "driver_version" in self.system_unsupported:
            raise self.error(NVML_ERROR_NOT_SUPPORTED)
        return self._str(self.driver_version)

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        if "cuda_version" in self.system_unsupported:
            raise self.error(NVML_ERROR_NOT_SUPPORTED)
        return self.cuda_version

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion_v2")
        if "cuda_version" in self.system_unsupported:
            raise self.error(NVML_ERROR_NOT_SUPPORTED)
        return self.cuda_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise self.error(NVML_ERROR_INVALID_ARGUMENT)
        if self.gpus[index].inaccessible:
            raise self.error(NVML_ERROR_NO_PERMISSION)
        return FakeHandle(index)

    def nvmlDeviceGetIndex(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetIndex")
        self._gpu(handle, mig_ok=False)
        return handle.gpu

    def nvmlDeviceGetName(self, handle: FakeHandle) -> Any:
        self._enter("nvmlDeviceGetName")
        gpu = self._gpu(handle, "name")
        if handle.mig is None:
            return self._str(gpu.name)
        return self._str(f"{gpu.name} MIG {self._mig_profile(gpu)}")

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> Any:
        self._enter("nvmlDeviceGetUUID")
        self._gpu(handle)
        if handle.mig is None:
            return self._str(self.uuid_of(handle.gpu))
        return self._str(self.mig_uuid(handle.gpu, handle.mig))

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: int | None = None) -> FakeMemory:
        self._enter("nvmlDeviceGetMemoryInfo")
        gpu = self._gpu(handle, "memory")
        total, used = gpu.memory_total, gpu.memory_used
        if handle.mig is not None:
            total, used = total // max(gpu.mig_instances, 1), used // max(gpu.mig_instances, 1)
        return FakeMemory(total=total, free=total - used, used=used)

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeHandle) -> tuple[int, int]:
        self._enter("nvmlDeviceGetCudaComputeCapability")
        return self._gpu(handle, "compute_capability").compute_capability

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> FakeUtilization:
        """Not supported on MIG instances, as with real NVML."""
        self._enter("nvmlDeviceGetUtilizationRates")
        gpu = self._gpu(handle, "utilization", mig_ok=False)
        return FakeUtilization(gpu=gpu.utilization, memory=gpu.utilization // 2)

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        """Not supported on MIG instances (ask the parent GPU)."""
        self._enter("nvmlDeviceGetTemperature")
        gpu = self._gpu(handle, "temperature", mig_ok=False)
        if sensor != NVML_TEMPERATURE_GPU:
            raise self.error(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature

    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        self._enter("nvmlDeviceGetMigMode")
        gpu = self._gpu(handle, "mig", mig_ok=False)
        mode = NVML_DEVICE_MIG_ENABLE if gpu.mig_enabled else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceIsMigDeviceHandle(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceIsMigDeviceHandle")
        self._gpu(handle)
        return int(handle.mig is not None)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetMaxMigDeviceCount")
        return self._gpu(handle, "mig", mig_ok=False).mig_slots

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeHandle, index: int) -> FakeHandle:
        """Slots past the configured instances are empty (``NVMLError_NotFound``)."""
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex")
        gpu = self._gpu(handle, "mig", mig_ok=False)
        if not gpu.mig_enabled:
            raise self.error(NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < gpu.mig_slots:
            raise self.error(NVML_ERROR_INVALID_ARGUMENT)
        if index >= gpu.mig_instances:
            raise self.error(NVML_ERROR_NOT_FOUND)
        return FakeHandle(handle.gpu, index)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: FakeHandle) -> FakeHandle:
        self._enter("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
        self._gpu(handle)
        if handle.mig is None:
            raise self.error(NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(handle.gpu)

    @staticmethod
    def _mig_profile(gpu: FakeGpu) -> str:
        slices = max(7 // max(gpu.mig_instances, 1), 1)
        gib = gpu.memory_total // max(gpu.mig_instances, 1) // 2**30
        return f"{slices}g.{gib}gb"
