"""Per-node metrics: 1 Hz samples in bounded ring buffers, streamed to subscribers.

Samples come from two places: :class:`LocalSampler` reads this machine (psutil, and
NVML through :class:`pilotkit.gpu.GpuSampler` where present) for the local pilots, and
node agents send ``agent.heartbeat`` notifications over the control API. Nothing here
is stored in the database: after a restart the buffers fill again.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import socket
import time
from collections.abc import Callable

import psutil

from ..gpu import GpuSampler
from ..probe import core_percent
from ..protocol import GpuMetric, MetricSample
from .streams import Hub

log = logging.getLogger("pilotkit.daemon.metrics")


class MetricsBuffer:
    """The latest samples of every (pilot, node), and the metrics subscriptions."""

    def __init__(self, maxlen: int = 120) -> None:
        self.maxlen = maxlen
        self._rings: dict[str, dict[str, collections.deque[MetricSample]]] = {}
        self.hub: Hub[MetricSample] = Hub()
        self.samples = 0

    def add(self, sample: MetricSample) -> None:
        nodes = self._rings.get(sample.pilot)
        if nodes is None:
            nodes = self._rings[sample.pilot] = {}
        ring = nodes.get(sample.node)
        if ring is None:
            ring = nodes[sample.node] = collections.deque(maxlen=self.maxlen)
        ring.append(sample)
        self.samples += 1
        self.hub.publish(sample.pilot, sample)

    def history(self, pilot: str | None) -> list[MetricSample]:
        pilots = [pilot] if pilot is not None else list(self._rings)
        out = [s for p in pilots for ring in self._rings.get(p, {}).values() for s in ring]
        out.sort(key=lambda s: s.t)
        return out

    def latest(self, pilot: str, node: str) -> MetricSample | None:
        ring = self._rings.get(pilot, {}).get(node)
        return ring[-1] if ring else None

    def nodes(self, pilot: str) -> list[str]:
        return list(self._rings.get(pilot, {}))

    def forget(self, pilot: str) -> None:
        self._rings.pop(pilot, None)


class LocalSampler:
    """Samples this machine once a second while ``pilots()`` names a local pilot."""

    def __init__(
        self,
        buffer: MetricsBuffer,
        pilots: Callable[[], list[str]],
        *,
        interval: float = 1.0,
        gpus: bool = True,
    ) -> None:
        self.buffer = buffer
        self.pilots = pilots
        self.interval = interval
        self.node = socket.gethostname()
        self._gpu: GpuSampler | None = GpuSampler() if gpus else None
        # NVML handles belong to one thread: every sample is taken on this one.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pilotkit-metrics")

    def _sample(self) -> tuple[float, list[float], int, int, list[GpuMetric]]:
        cpu = psutil.cpu_percent(interval=None)
        cores = core_percent()
        memory = psutil.virtual_memory()
        gpus: list[GpuMetric] = []
        if self._gpu is not None:
            readings = self._gpu.sample()
            if not readings and self._gpu.reason is not None:
                log.info("no GPU metrics: %s", self._gpu.reason)
                self._gpu.close()
                self._gpu = None
            gpus = [
                GpuMetric(uuid=r["uuid"], utilization=r["utilization"], memory_used=r["memory_used"],
                          memory_total=r["memory_total"])
                for r in readings
            ]
        return float(cpu), cores, int(memory.used), int(memory.total), gpus

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, psutil.cpu_percent, None)  # primes the counter
            await loop.run_in_executor(self._thread, core_percent)
            while True:
                await asyncio.sleep(self.interval)
                pilots = self.pilots()
                if not pilots:
                    continue
                cpu, cores, used, total, gpus = await loop.run_in_executor(self._thread, self._sample)
                now = time.time()
                for pilot in pilots:
                    self.buffer.add(MetricSample(
                        pilot=pilot, node=self.node, t=now, cpu_percent=cpu, memory_used=used,
                        memory_total=total, gpus=gpus, core_percent=cores,
                    ))
        finally:
            gpu = self._gpu
            if gpu is not None:
                self._thread.submit(gpu.close)
            self._thread.shutdown(wait=False)
