"""GPU detection and sampling through NVML.

Everything here talks to NVML through a *module-like* object: by default the ``pynvml``
module (from the ``nvidia-ml-py`` distribution), in tests
:class:`pilotkit.testing.fake_nvml.FakeNVML`. Nothing raises for environment reasons
(no pynvml, no NVML library, no driver, no GPU, no permission, a field the device does
not support): detection returns a :class:`~pilotkit.types.GpuReport` whose ``reason``
says why there is no GPU, and sampling returns ``None`` fields or an empty list.

NVML is initialised per process and never at import time: :func:`detect_gpus` calls
``nvmlInit``/``nvmlShutdown`` around each detection, and :class:`GpuSampler` keeps one
session that it re-opens when it finds itself in a forked child.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from .types import GpuInfo, GpuReport

__all__ = [
    "GpuSample",
    "GpuSampler",
    "NvmlModule",
    "detect_gpus",
    "sample_gpus",
    "visible_devices_env",
]

_Errors = tuple[type[BaseException], ...]

NvmlModule = Any
"""The ``pynvml`` module, or an object with the same functions, constants and
``NVMLError`` classes (such as the test fake)."""

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
NVIDIA_VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"

# NVML return codes (nvml.h); stable across driver versions.
_ERROR_NOT_SUPPORTED = 3
_ERROR_NO_PERMISSION = 4
_ERROR_DRIVER_NOT_LOADED = 9
_ERROR_LIBRARY_NOT_FOUND = 12
_ERROR_LIB_RM_VERSION_MISMATCH = 18

_TEMPERATURE_GPU = 0
_MIG_ENABLED = 1

_INIT_REASONS = {
    _ERROR_LIBRARY_NOT_FOUND: "NVML library not found (no NVIDIA driver installed)",
    _ERROR_DRIVER_NOT_LOADED: "NVIDIA driver not loaded",
    _ERROR_NO_PERMISSION: "no permission to use the NVIDIA devices",
    _ERROR_LIB_RM_VERSION_MISMATCH: "NVML library and NVIDIA kernel driver versions differ (reboot needed?)",
}


class GpuSample(TypedDict):
    """One reading of one GPU (or MIG instance); fields are None where unsupported."""

    uuid: str
    index: int
    utilization: int | None
    """Percent of time a kernel ran over the last sample period."""
    memory_used: int | None
    """Bytes."""
    memory_total: int | None
    """Bytes."""
    temperature: int | None
    """Degrees Celsius (of the physical GPU, for a MIG instance)."""


@dataclass(frozen=True)
class _Device:
    """A usable device with its NVML handles (valid only inside one NVML session)."""

    info: GpuInfo
    handle: Any
    parent_handle: Any = None
    """The physical GPU's handle, for a MIG instance."""


@dataclass(frozen=True)
class _Physical:
    """A physical GPU and its MIG instances."""

    device: _Device
    instances: tuple[_Device, ...] = ()

    @property
    def usable(self) -> tuple[_Device, ...]:
        """What CUDA can run on: the MIG instances when MIG is enabled, else the GPU."""
        return self.instances if self.device.info.mig_mode else (self.device,)


# --------------------------------------------------------------------------- NVML access


NVML_LIBRARY = "libnvidia-ml.so.1"
"""The library pynvml loads on Linux (in ``nvmlInit``)."""


def _real_nvml() -> tuple[NvmlModule | None, str | None]:
    """The pynvml module, or None and why there is no NVML to ask.

    Where pynvml is installed but the NVML library cannot be loaded (no NVIDIA driver:
    most login and CPU nodes), pynvml is not imported at all: ``nvmlInit`` would fail
    the same way, and importing it costs every pilot and agent start about 10 ms and
    4 MiB."""
    if importlib.util.find_spec("pynvml") is None:
        return None, "the pynvml module (nvidia-ml-py) is not installed"
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(NVML_LIBRARY)
        except OSError:
            return None, _INIT_REASONS[_ERROR_LIBRARY_NOT_FOUND]
    module = _import_pynvml()
    return module, None if module is not None else "the pynvml module (nvidia-ml-py) is not installed"


def _import_pynvml() -> NvmlModule | None:
    """The pynvml module, or None when it is not installed.

    Importing it loads no library (that happens in ``nvmlInit``). The deprecated
    ``pynvml`` shim distribution warns on import; that warning is not ours to show.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            import pynvml
        except ImportError:
            return None
    return pynvml


def _nvml_errors(nvml: NvmlModule) -> _Errors:
    """The exception classes NVML calls raise for environment reasons."""
    errors: list[type[BaseException]] = [getattr(nvml, "NVMLError", Exception)]
    mismatch = getattr(nvml, "NVMLLibraryMismatchError", None)
    if isinstance(mismatch, type) and issubclass(mismatch, BaseException):
        errors.append(mismatch)
    return tuple(errors)


def _error_code(error: BaseException) -> int | None:
    """NVML's return code carried by an ``NVMLError``."""
    value = getattr(error, "value", None)
    return value if isinstance(value, int) else None


def _text(value: object) -> str:
    """A string NVML returned: ``str``, or ``bytes`` from older pynvml."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _call(nvml: NvmlModule, errors: _Errors, function: str, *args: Any) -> Any:
    """``nvml.function(*args)``, or None when the function is missing or fails."""
    fn = getattr(nvml, function, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except errors:
        return None


def _init_reason(error: BaseException) -> str:
    """A human sentence for an ``nvmlInit`` failure."""
    code = _error_code(error)
    if code is not None and code in _INIT_REASONS:
        return _INIT_REASONS[code]
    return f"NVML could not be initialised ({error})"


def _shutdown(nvml: NvmlModule, errors: _Errors) -> None:
    """``nvmlShutdown``, ignoring NVML errors (the session is over either way)."""
    try:
        nvml.nvmlShutdown()
    except errors:
        pass


# --------------------------------------------------------------------------- inventory


def _memory_total(nvml: NvmlModule, errors: _Errors, handle: Any) -> int | None:
    memory = _call(nvml, errors, "nvmlDeviceGetMemoryInfo", handle)
    total = getattr(memory, "total", None)
    return int(total) if total is not None else None


def _compute_capability(nvml: NvmlModule, errors: _Errors, handle: Any) -> str | None:
    cc = _call(nvml, errors, "nvmlDeviceGetCudaComputeCapability", handle)
    if not isinstance(cc, (tuple, list)) or len(cc) != 2:
        return None
    return f"{int(cc[0])}.{int(cc[1])}"


def _mig_mode(nvml: NvmlModule, errors: _Errors, handle: Any) -> bool | None:
    modes = _call(nvml, errors, "nvmlDeviceGetMigMode", handle)
    if not isinstance(modes, (tuple, list)) or not modes:
        return None
    return int(modes[0]) == _MIG_ENABLED


def _optional_text(nvml: NvmlModule, errors: _Errors, fn: str, *args: Any) -> str | None:
    value = _call(nvml, errors, fn, *args)
    return _text(value) if value is not None else None


def _read_physical(nvml: NvmlModule, errors: _Errors, index: int) -> _Physical | None:
    """One physical GPU, or None when NVML cannot give its handle or UUID (a device
    this process has no permission for, a lost GPU)."""
    handle = _call(nvml, errors, "nvmlDeviceGetHandleByIndex", index)
    uuid = _optional_text(nvml, errors, "nvmlDeviceGetUUID", handle) if handle is not None else None
    if not uuid:
        return None
    info = GpuInfo(
        index=index,
        uuid=uuid,
        name=_optional_text(nvml, errors, "nvmlDeviceGetName", handle) or "",
        memory_total=_memory_total(nvml, errors, handle),
        compute_capability=_compute_capability(nvml, errors, handle),
        mig_mode=_mig_mode(nvml, errors, handle),
    )
    device = _Device(info=info, handle=handle)
    instances = _read_mig_instances(nvml, errors, device) if info.mig_mode else ()
    return _Physical(device=device, instances=instances)


def _read_mig_instances(nvml: NvmlModule, errors: _Errors, parent: _Device) -> tuple[_Device, ...]:
    """The MIG instances of a MIG-enabled GPU. NVML has a fixed number of MIG slots per
    GPU; unpopulated slots fail with ``NVMLError_NotFound`` and are skipped."""
    slots = _call(nvml, errors, "nvmlDeviceGetMaxMigDeviceCount", parent.handle)
    instances: list[_Device] = []
    for slot in range(int(slots or 0)):
        handle = _call(nvml, errors, "nvmlDeviceGetMigDeviceHandleByIndex", parent.handle, slot)
        uuid = _optional_text(nvml, errors, "nvmlDeviceGetUUID", handle) if handle is not None else None
        if not uuid:
            continue
        info = GpuInfo(
            index=parent.info.index,
            uuid=uuid,
            name=_optional_text(nvml, errors, "nvmlDeviceGetName", handle) or parent.info.name,
            memory_total=_memory_total(nvml, errors, handle),
            compute_capability=_compute_capability(nvml, errors, handle) or parent.info.compute_capability,
            mig_parent=parent.info.uuid,
        )
        instances.append(_Device(info=info, handle=handle, parent_handle=parent.handle))
    return tuple(instances)


def _read_inventory(nvml: NvmlModule, errors: _Errors) -> tuple[list[_Physical], str | None]:
    """Every physical GPU NVML sees, or a reason when it cannot even count them.
    Call inside an NVML session."""
    try:
        count = int(nvml.nvmlDeviceGetCount())
    except errors as error:
        return [], f"NVML could not count the GPUs ({error})"
    physicals = [p for p in (_read_physical(nvml, errors, i) for i in range(count)) if p is not None]
    if count and not physicals:
        return [], f"NVML sees {count} GPU(s) but this process may use none of them (no permission?)"
    return physicals, None


def _driver_version(nvml: NvmlModule, errors: _Errors) -> str | None:
    return _optional_text(nvml, errors, "nvmlSystemGetDriverVersion") or None


def _cuda_version(nvml: NvmlModule, errors: _Errors) -> str | None:
    """The CUDA version the driver supports, as ``"12.4"`` (NVML gives ``12040``)."""
    for function in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        version = _call(nvml, errors, function)
        if isinstance(version, int) and version > 0:
            return f"{version // 1000}.{(version % 1000) // 10}"
    return None


# --------------------------------------------------------------------------- CUDA_VISIBLE_DEVICES


_INDEX_ENTRY = re.compile(r"\s*([+-]?\d+)", re.ASCII)
"""An index entry, read as C's ``strtol`` does: leading blanks, a sign, digits; the
rest is ignored (``"0x1"`` and ``"0abc"`` are both index 0)."""

_UUID_TAGS = ("GPU-", "MIG-")


@dataclass(frozen=True)
class _Selection:
    """What a ``CUDA_VISIBLE_DEVICES`` value selects."""

    devices: list[_Device]
    problem: str | None = None
    """Why CUDA would refuse every device despite valid entries."""


def _entry_kind(entry: str) -> str | None:
    """``"index"``, ``"uuid"``, or None for an entry that is neither."""
    if _INDEX_ENTRY.match(entry):
        return "index"
    if entry.startswith(_UUID_TAGS) and len(entry) > len("GPU-"):
        return "uuid"
    return None


def _by_index(entry: str, physicals: Sequence[_Physical]) -> list[_Device] | None:
    match = _INDEX_ENTRY.match(entry)
    index = int(match.group(1)) if match else -1
    found = [p for p in physicals if p.device.info.index == index]
    return list(found[0].usable) if found else None


def _by_uuid(entry: str, physicals: Sequence[_Physical]) -> list[_Device] | None:
    """The devices whose UUID the entry begins (compared case-insensitively after the
    tag, either tag naming either kind of device; what follows a complete UUID is
    ignored); None when none or several match."""
    wanted = entry[len("GPU-") :].lower()
    candidates = [d for p in physicals for d in (p.device, *p.instances)]
    matches = [d for d in candidates if _uuid_begins(d.info.uuid[len("GPU-") :].lower(), wanted)]
    if len(matches) != 1:
        return None
    parent = next((p for p in physicals if p.device is matches[0]), None)
    return list(parent.usable) if parent is not None else matches


def _uuid_begins(uuid: str, wanted: str) -> bool:
    return uuid.startswith(wanted[: len(uuid)])


def _visible(physicals: Sequence[_Physical], value: str | None) -> _Selection:
    """The devices a CUDA program started with ``CUDA_VISIBLE_DEVICES=value`` may use,
    in the order CUDA numbers them, following what the CUDA driver does (checked with
    driver 580, CUDA 13.0):

    - unset (None): every usable device;
    - a comma-separated list of NVML indices (``"2,0"``; NVML orders by PCI bus, which
      is CUDA's order under ``CUDA_DEVICE_ORDER=PCI_BUS_ID``), or of UUIDs
      (``"GPU-8932f937-..."``, ``"MIG-..."``) or unambiguous UUID prefixes
      (``"GPU-8932f937"``; hex digits in either case, the tag exactly as written);
    - the list stops at the first invalid entry: an unknown index or UUID, a negative
      index (``"-1"``), an ambiguous prefix, an empty entry, a UUID prefix with
      blanks around it (a complete UUID may be followed by anything), Slurm's
      ``"NoDevFiles"``, or an entry of the other kind than the first
      (``"0,GPU-..."`` is GPU 0 only). So ``""`` and ``"NoDevFiles"`` hide every GPU
      and ``"0,foo,1"`` is GPU 0 only;
    - a device named twice before that point makes CUDA refuse every device
      (``"0,0"``): nothing is visible and ``problem`` says why;
    - a GPU with MIG enabled, named by index or UUID, stands for its MIG instances.
      Legacy ``MIG-GPU-<uuid>/<gi>/<ci>`` entries (drivers before R470) are invalid.

    CUDA up to 12.x runs a process on one MIG instance only, whatever the list holds:
    give each process at most one MIG UUID.
    """
    if value is None:
        return _Selection([d for p in physicals for d in p.usable])
    chosen: list[_Device] = []
    first_kind: str | None = None
    for entry in value.split(","):
        kind = _entry_kind(entry)
        if kind is None or first_kind not in (None, kind):
            break
        devices = _by_index(entry, physicals) if kind == "index" else _by_uuid(entry, physicals)
        if devices is None:
            break
        first_kind = kind
        if any(d.info.uuid == c.info.uuid for d in devices for c in chosen):
            problem = f"{CUDA_VISIBLE_DEVICES}={value!r} names a GPU twice, so CUDA refuses every GPU"
            return _Selection([], problem)
        chosen.extend(devices)
    return _Selection(chosen)


def _no_gpu_reason(physicals: Sequence[_Physical], value: str | None) -> str:
    """Why :func:`_visible` gave nothing."""
    if not physicals:
        return "no NVIDIA GPU found"
    if not any(p.usable for p in physicals):
        return "MIG is enabled on every GPU but no MIG instance exists"
    return f"{CUDA_VISIBLE_DEVICES}={value!r} hides every GPU"


# --------------------------------------------------------------------------- public API


def detect_gpus(nvml: NvmlModule | None = None, env: Mapping[str, str] | None = None) -> GpuReport:
    """What GPUs this node has and which of them this process may use.

    ``nvml`` defaults to the ``pynvml`` module; ``env`` (default ``os.environ``) supplies
    an inherited ``CUDA_VISIBLE_DEVICES``, honoured as CUDA does (see :func:`_visible`:
    the list stops at its first invalid entry, and a device named twice hides every
    GPU). ``all_gpus`` is every physical GPU; ``gpus`` is what this process may use, MIG
    instances in place of a GPU with MIG enabled. Never raises for environment reasons:
    with no GPU to use, ``reason`` says why. NVML is initialised and shut down within
    the call (never cached), so this is safe in forked children.
    """
    environ = os.environ if env is None else env
    module, missing = _real_nvml() if nvml is None else (nvml, None)
    if module is None:
        return GpuReport(reason=missing)
    errors = _nvml_errors(module)
    try:
        module.nvmlInit()
    except errors as error:
        return GpuReport(reason=_init_reason(error))
    try:
        physicals, failure = _read_inventory(module, errors)
        driver, cuda = _driver_version(module, errors), _cuda_version(module, errors)
    finally:
        _shutdown(module, errors)
    value = environ.get(CUDA_VISIBLE_DEVICES)
    selection = _visible(physicals, value)
    gpus = [d.info for d in selection.devices]
    reason = None if gpus else failure or selection.problem or _no_gpu_reason(physicals, value)
    return GpuReport(
        gpus=gpus,
        reason=reason,
        driver_version=driver,
        cuda_version=cuda,
        all_gpus=[p.device.info for p in physicals],
    )


def visible_devices_env(uuids: Sequence[str]) -> dict[str, str]:
    """The environment that gives a process exactly the GPUs ``uuids`` (``GPU-...`` or
    ``MIG-...``): ``CUDA_VISIBLE_DEVICES`` for CUDA and ``NVIDIA_VISIBLE_DEVICES`` for
    container hooks. No UUID gives empty values, which hide every GPU from both."""
    for uuid in uuids:
        if not uuid or "," in uuid:
            raise ValueError(f"not a GPU UUID: {uuid!r}")
    value = ",".join(uuids)
    return {CUDA_VISIBLE_DEVICES: value, NVIDIA_VISIBLE_DEVICES: value}


class GpuSampler:
    """Cheap repeated readings of GPU utilisation, memory and temperature (for a 1 Hz
    metrics stream).

    The first :meth:`sample` initialises NVML and looks up the devices once; later ones
    only read counters. ``uuids`` picks the devices (any GPU or MIG UUID NVML knows;
    unknown ones are left out); None means what :func:`detect_gpus` would list in
    ``gpus`` for ``env``. A field NVML says is unsupported is not asked for again.

    Fork-safe: when :meth:`sample` runs in a process other than the one that opened the
    session (a forked child), it drops the inherited session without shutting it down
    (it belongs to the parent) and opens its own. Not thread-safe: use one sampler per
    thread. :meth:`close` (or ``with``) ends the session; a later :meth:`sample` opens a
    new one.
    """

    def __init__(
        self,
        nvml: NvmlModule | None = None,
        uuids: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._nvml = nvml
        self._uuids = None if uuids is None else list(uuids)
        self._env = env
        self._pid: int | None = None
        self._module: NvmlModule | None = None
        self._errors: _Errors = ()
        self._devices: list[_Device] = []
        self._unsupported: set[tuple[str, str]] = set()
        self.reason: str | None = None
        """Why the last session could not be opened, else None."""

    def __enter__(self) -> GpuSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sample(self) -> list[GpuSample]:
        """One reading per device; [] when NVML is unavailable."""
        if not self._ready():
            return []
        return [self._read(device) for device in self._devices]

    def close(self) -> None:
        """Shut this process's NVML session down (a no-op when none is open)."""
        if self._module is not None and self._pid == os.getpid():
            _shutdown(self._module, self._errors)
        self._forget()

    def _forget(self) -> None:
        self._pid = None
        self._module = None
        self._devices = []
        self._unsupported = set()

    def _ready(self) -> bool:
        """Whether a session is open in this process, opening one if needed."""
        pid = os.getpid()
        if self._pid == pid:
            return self._module is not None
        self._forget()  # first use, or a forked child holding its parent's session
        self._pid = pid
        self._open()
        return self._module is not None

    def _open(self) -> None:
        self.reason = None
        module, missing = _real_nvml() if self._nvml is None else (self._nvml, None)
        if module is None:
            self.reason = missing
            return
        errors = _nvml_errors(module)
        try:
            module.nvmlInit()
        except errors as error:
            self.reason = _init_reason(error)
            return
        physicals, self.reason = _read_inventory(module, errors)
        self._module, self._errors = module, errors
        self._devices = self._select(physicals)

    def _select(self, physicals: Sequence[_Physical]) -> list[_Device]:
        if self._uuids is None:
            environ = os.environ if self._env is None else self._env
            return _visible(physicals, environ.get(CUDA_VISIBLE_DEVICES)).devices
        known = {d.info.uuid: d for p in physicals for d in (p.device, *p.instances)}
        return [known[uuid] for uuid in self._uuids if uuid in known]

    def _field(self, device: _Device, field: str, function: str, *args: Any) -> Any:
        """``function(*args)``; None when it fails, and never asked again once NVML
        says the device does not support it."""
        key = (device.info.uuid, field)
        fn = getattr(self._module, function, None)
        if key in self._unsupported or fn is None:
            return None
        try:
            return fn(*args)
        except self._errors as error:
            if _error_code(error) == _ERROR_NOT_SUPPORTED:
                self._unsupported.add(key)
            return None

    def _read(self, device: _Device) -> GpuSample:
        memory = self._field(device, "memory", "nvmlDeviceGetMemoryInfo", device.handle)
        rates = self._field(device, "utilization", "nvmlDeviceGetUtilizationRates", device.handle)
        sensor = getattr(self._module, "NVML_TEMPERATURE_GPU", _TEMPERATURE_GPU)
        thermal_handle = device.handle if device.parent_handle is None else device.parent_handle
        temperature = self._field(device, "temperature", "nvmlDeviceGetTemperature", thermal_handle, sensor)
        return GpuSample(
            uuid=device.info.uuid,
            index=device.info.index,
            utilization=_int_or_none(getattr(rates, "gpu", None)),
            memory_used=_int_or_none(getattr(memory, "used", None)),
            memory_total=_int_or_none(getattr(memory, "total", None)),
            temperature=_int_or_none(temperature),
        )


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


def sample_gpus(
    nvml: NvmlModule | None = None,
    uuids: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[GpuSample]:
    """One reading of each GPU (see :class:`GpuSampler`, which repeated sampling should
    use instead); [] when NVML is unavailable."""
    with GpuSampler(nvml=nvml, uuids=uuids, env=env) as sampler:
        return sampler.sample()
