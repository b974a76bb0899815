"""Per-task overhead of the oci runtime: ``/bin/true`` in a runc container versus on the host.

Runs ``/bin/true`` N times, one after the other, in this process: directly, through
``runc run`` on a ready-made bundle (runc's own cost), and through ``OciRuntime.wrap()``
(the wrapper that writes each task's bundle, then runc). Prints the time per task of
each and the ratios to the direct run.

    python plugins/oci/bench_overhead.py -n 200

Needs runc and Debian's busybox-static, as the runc tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from pilotkit_oci import OciRuntime
from pilotkit_oci.busybox import build_busybox_rootfs
from pilotkit_oci.config import apply_overlay, task_overlay
from pilotkit_oci.options import OciOptions

from pilotkit.interfaces import ContainerContext, PilotContext, StagedImage


def per_task(n: int, make_argv: Callable[[int], list[str]]) -> float:
    """Seconds per run of ``make_argv(i)``, each checked to exit 0."""
    started = time.perf_counter()
    for i in range(n):
        subprocess.run(make_argv(i), check=True, stdin=subprocess.DEVNULL)
    return (time.perf_counter() - started) / n


def runc_direct(runtime: OciRuntime, image: StagedImage, scratch: Path) -> Callable[[int], list[str]]:
    """``runc run`` on one pre-written bundle, a fresh container id per run."""
    prepared = runtime.prepared(image)
    overlay = task_overlay(["/bin/true"], ContainerContext(image=image), OciOptions())
    bundle = scratch / "direct-bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(apply_overlay(copy.deepcopy(prepared.config), overlay)))
    return lambda i: [prepared.runc, "--root", prepared.root, "run", "--bundle", str(bundle), f"bench-{i}"]


async def prepare(scratch: Path) -> tuple[OciRuntime, StagedImage]:
    rootfs = build_busybox_rootfs(scratch / "rootfs")
    spec = SimpleNamespace(runtime_options=OciOptions())
    ctx = PilotContext("bench", spec, scratch / "work", lambda event: None)  # type: ignore[arg-type]
    runtime = OciRuntime()
    image = await runtime.prepare(StagedImage(ref="busybox", path=rootfs, format="dir"), ctx)
    return runtime, image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=200, help="runs of each kind (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilotkit-bench-") as tmp:
        scratch = Path(tmp)
        runtime, image = asyncio.run(prepare(scratch))
        wrapped = runtime.wrap(["/bin/true"], ContainerContext(image=image))
        kinds: dict[str, Callable[[int], list[str]]] = {
            "host /bin/true": lambda i: ["/bin/true"],
            "runc run (bundle ready)": runc_direct(runtime, image, scratch),
            "oci runtime wrap()": lambda i: wrapped,
        }
        for make_argv in kinds.values():
            per_task(5, make_argv)
        results = {name: per_task(args.n, make_argv) for name, make_argv in kinds.items()}
        time.sleep(0.5)
    host = results["host /bin/true"]
    print(f"{args.n} sequential runs of /bin/true each; rlimits kept: {runtime.rlimits_supported}")
    for name, seconds in results.items():
        print(f"  {name:26s} {seconds * 1e3:8.2f} ms/task  {seconds / host:7.1f} x host")
    container = results["oci runtime wrap()"]
    print(f"container / host: {container / host:.1f}x, overhead {(container - host) * 1e3:.2f} ms/task")


if __name__ == "__main__":
    main()
