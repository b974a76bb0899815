"""Print the UUIDs of the GPUs CUDA lets this process see (through the driver API, so
``CUDA_VISIBLE_DEVICES`` is honoured as CUDA itself reads it), one per line."""

from __future__ import annotations

import ctypes
import sys


def main() -> int:
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        print(f"no libcuda: {exc}", file=sys.stderr)
        return 2
    if cuda.cuInit(0) != 0:
        return 0  # no device visible (e.g. CUDA_VISIBLE_DEVICES="")
    count = ctypes.c_int()
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 3
    for ordinal in range(count.value):
        device = ctypes.c_int()
        cuda.cuDeviceGet(ctypes.byref(device), ordinal)
        raw = (ctypes.c_ubyte * 16)()
        get_uuid = getattr(cuda, "cuDeviceGetUuid_v2", None) or cuda.cuDeviceGetUuid
        if get_uuid(raw, device) != 0:
            return 4
        h = bytes(raw).hex()
        print(f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
