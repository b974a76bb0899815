"""Keeping published datasets when the cluster stops.

Workers hold results in memory; once they are retired, what a client published
(``client.publish_dataset``) would be gone. Before the workers go, each published
dataset is gathered into the pilot process and written as a pickle under
``<workdir>/dask-datasets/``, where the pilot's results live on.
"""

from __future__ import annotations

import asyncio
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilotkit.api import format_size

DATASETS_DIR = "dask-datasets"

Say = Callable[[str, str], None]
"""``say(level, message)``: report to the pilot's event stream."""


def dataset_file(folder: Path, name: str) -> Path:
    """Where dataset ``name`` is saved (characters unsafe in a file name become ``_``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "_"
    return folder / f"{safe}.pickle"


async def save_published(client: Any, folder: Path, limit: int, say: Say) -> list[Path]:
    """Gather every published dataset of ``limit`` bytes or less, pickle it into
    ``folder`` and unpublish it (so its workers can retire); returns the files written.
    Problems are reported, never raised."""
    from .scheduler_side import dataset_nbytes

    names = sorted(str(n) for n in await client.list_datasets())
    written: list[Path] = []
    for name in names:
        try:
            size = await client.run_on_scheduler(dataset_nbytes, name)
            if size is not None and size > limit:
                say(
                    "warn",
                    f"dataset '{name}' not saved: {format_size(size)} is over the limit of {format_size(limit)}",
                )
                continue
            value = await _materialise(client, await client.get_dataset(name))
            path = dataset_file(folder, name)
            await asyncio.to_thread(_write_pickle, path, value)
            await client.unpublish_dataset(name)
        except Exception as exc:
            say("warn", f"dataset '{name}' not saved: {type(exc).__name__}: {exc}")
            continue
        written.append(path)
    if written:
        say("info", f"saved {len(written)} published dataset(s) to {folder}")
    return written


async def _materialise(client: Any, value: Any) -> Any:
    """A dataset's concrete value: computes a Dask collection, gathers futures."""
    from dask.base import is_dask_collection
    from distributed import Future

    if is_dask_collection(value):
        return await client.compute(value)
    if isinstance(value, Future) or (isinstance(value, (list, tuple, dict)) and _has_future(value, Future)):
        return await client.gather(value)
    return value


def _has_future(value: Any, future_type: type) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(isinstance(item, future_type) for item in items)


def _write_pickle(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
