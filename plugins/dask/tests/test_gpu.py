"""GPU workers on a real NVIDIA GPU: one Dask worker per GPU, each seeing only its own.

Runs only where NVML finds a GPU (never on CI machines). What a worker sees is read
through the CUDA driver API, which honours CUDA_VISIBLE_DEVICES as CUDA applications do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotkit.api import PilotState
from pilotkit.gpu import detect_gpus
from pilotkit.testing import RunSpec, need_optional

from .conftest import need_dask

pytestmark = [pytest.mark.gpu, pytest.mark.dask]

SCRIPT = '''
import ctypes, json, os
from distributed import Client


def visible():
    """UUIDs of the GPUs CUDA lets this process see."""
    cuda = ctypes.CDLL("libcuda.so.1")
    if cuda.cuInit(0) != 0:
        return []
    count = ctypes.c_int()
    cuda.cuDeviceGetCount(ctypes.byref(count))
    out = []
    for ordinal in range(count.value):
        device = ctypes.c_int()
        cuda.cuDeviceGet(ctypes.byref(device), ordinal)
        raw = (ctypes.c_ubyte * 16)()
        getattr(cuda, "cuDeviceGetUuid_v2", cuda.cuDeviceGetUuid)(raw, device)
        h = bytes(raw).hex()
        out.append(f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def cuda_env():
    return os.environ.get("CUDA_VISIBLE_DEVICES")


with Client() as client:
    workers = client.run_on_scheduler(
        lambda dask_scheduler: {
            ws.address: {"name": ws.name, "nthreads": ws.nthreads, "resources": dict(ws.resources)}
            for ws in dask_scheduler.workers.values()
        }
    )
    env = client.run(cuda_env)
    seen = client.run(visible)
    task = client.submit(visible, resources={"GPU": 1}, pure=False).result()
json.dump({"workers": workers, "env": env, "seen": seen, "task": task}, open("gpu.json", "w"))
'''


async def test_one_worker_per_gpu_each_on_its_own(run_spec: RunSpec, tmp_path: Path) -> None:
    need_dask()
    report = detect_gpus()
    need_optional("an NVIDIA GPU with NVML", bool(report.gpus), report.reason or "")
    gpus = sorted(g.uuid for g in report.gpus)
    script = tmp_path / "gpu_check.py"
    script.write_text(SCRIPT)
    run = await run_spec(f'name = "dask-gpu"\n[app]\ntype = "dask"\nscript = "{script}"\n')
    assert run.state is PilotState.DONE, run.reason
    data = json.loads((run.workdir / "tasks" / "dask-script" / "gpu.json").read_text())
    print(json.dumps(data, indent=1))
    workers = data["workers"]
    assert len(workers) == len(gpus), "one worker per GPU"
    assert sorted(w["name"] for w in workers.values()) == [
        f"{run.results()[0].node}-gpu{i}" for i in range(len(gpus))
    ]
    assert all(w["resources"] == {"GPU": 1} and w["nthreads"] == 1 for w in workers.values())
    assert sorted(data["env"].values()) == gpus, "each worker was given its own GPU"
    for address, uuids in data["seen"].items():
        assert uuids == [data["env"][address]], "CUDA in the worker sees exactly its GPU"
    assert len(data["task"]) == 1 and data["task"][0] in gpus
