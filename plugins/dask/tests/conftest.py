"""Shared helpers: Dask's presence, the examples, a Dask client (the ``sshd`` fixture and
``wait_for`` are pilotkit.testing's)."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from pilotkit.testing import need

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "share" / "examples"


def need_dask() -> None:
    """Skip (fail under PILOTKIT_REQUIRE_REAL=1) without dask.distributed."""
    need(
        "dask.distributed",
        importlib.util.find_spec("distributed") is not None,
        "pip install 'dask[distributed]'",
    )


def load_example() -> ModuleType:
    """``share/examples/dask_analysis.py`` as a module (its generator is the reference)."""
    spec = importlib.util.spec_from_file_location("dask_analysis_example", EXAMPLES / "dask_analysis.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def dask_client(address: str) -> AsyncIterator[Any]:
    """An asynchronous ``distributed.Client`` to ``address`` (closed after)."""
    from distributed import Client

    client = await Client(address, asynchronous=True, set_as_default=False)  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        await client.close()
