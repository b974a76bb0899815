"""GPU metrics from a real NVIDIA GPU through NVML (skipped where there is none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotkit.client import connect
from pilotkit.gpu import detect_gpus
from pilotkit.protocol import MetricSample
from pilotkit.testing import need_optional

from .conftest import DaemonProcess, write_spec

pytestmark = pytest.mark.gpu


async def test_metrics_carry_gpu_utilisation_and_memory(daemon: DaemonProcess, tmp_path: Path) -> None:
    report = detect_gpus()
    need_optional("an NVIDIA GPU with NVML", bool(report.gpus), report.reason or "")
    spec = write_spec(tmp_path, 'name = "gpu"\n[resources]\ngpus = 1\n[[app.groups]]\nname = "g"\ngpus = 1\n'
                      'commands = ["sleep 4"]\n')
    async with connect(socket=str(daemon.socket)) as client:
        submitted = await client.submit(spec.read_text(), path=str(spec))
        sample: MetricSample | None = None
        async for item in client.metrics(submitted.pilot):
            if isinstance(item, MetricSample) and item.gpus:
                sample = item
                break
        assert sample is not None
        uuids = {g.uuid for g in report.gpus}
        for gpu in sample.gpus:
            assert gpu.uuid in uuids
            assert gpu.memory_total is not None and gpu.memory_total > 0
            assert gpu.memory_used is not None and 0 <= gpu.memory_used <= gpu.memory_total
            assert gpu.utilization is None or 0 <= gpu.utilization <= 100
        (summary,) = await client.status(submitted.pilot)
        assert summary.gpus >= 1
        await client.cancel(submitted.pilot)
