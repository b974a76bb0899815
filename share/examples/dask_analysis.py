"""A dimuon invariant-mass analysis on a Dask cluster.

Generates ``--events`` collision events in chunks (each chunk from its own seeded random
generator, so the sample is the same however the work is spread): a fraction are Z
bosons decaying to two muons, the rest two unrelated muons. Computes the invariant mass
of each pair with dask.array, histograms it with ``da.histogram``, writes the histogram
to ``histogram.json`` in the working directory, publishes it as the dataset
``mass_histogram`` and prints the peak bin.

Run by ``share/examples/dask-analysis.toml`` (the pilot sets ``DASK_SCHEDULER_ADDRESS``);
run by hand, it starts a local cluster.
"""

# dask.array and distributed.Client carry no annotations:
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

Z_MASS = 91.1876
Z_WIDTH = 2.4952
SIGNAL_FRACTION = 0.3


def chunk_four_vectors(seed: int, index: int, size: int) -> np.ndarray:
    """``size`` events of two muon four-vectors ``(E, px, py, pz)`` in GeV: shape (size, 2, 4)."""
    rng = np.random.default_rng([seed, index])
    # Signal: a Z (Breit-Wigner mass) decaying at rest, boosted along the beam.
    mass = np.clip(Z_MASS + 0.5 * Z_WIDTH * rng.standard_cauchy(size), 60.0, 120.0)
    cos_theta = rng.uniform(-1.0, 1.0, size)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    phi = rng.uniform(0.0, 2.0 * np.pi, size)
    p = mass / 2.0
    direction = np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta], axis=-1)
    rapidity = rng.normal(0.0, 1.0, size)
    signal = np.empty((size, 2, 4))
    for sign, muon in ((1.0, 0), (-1.0, 1)):
        e, pz = p, sign * p * direction[:, 2]
        signal[:, muon, 0] = e * np.cosh(rapidity) + pz * np.sinh(rapidity)
        signal[:, muon, 1] = sign * p * direction[:, 0]
        signal[:, muon, 2] = sign * p * direction[:, 1]
        signal[:, muon, 3] = pz * np.cosh(rapidity) + e * np.sinh(rapidity)
    # Background: two unrelated massless muons.
    pt = 20.0 + rng.exponential(15.0, (size, 2))
    eta = rng.uniform(-2.5, 2.5, (size, 2))
    phi2 = rng.uniform(0.0, 2.0 * np.pi, (size, 2))
    background = np.stack(
        [pt * np.cosh(eta), pt * np.cos(phi2), pt * np.sin(phi2), pt * np.sinh(eta)], axis=-1
    )
    is_signal = rng.random(size) < SIGNAL_FRACTION
    return np.where(is_signal[:, None, None], signal, background)


def invariant_mass(four_vectors: np.ndarray) -> np.ndarray:
    """Mass of the pair of each event from an array of shape (..., 2, 4)."""
    total = four_vectors.sum(axis=-2)
    m2 = total[..., 0] ** 2 - (total[..., 1:] ** 2).sum(axis=-1)
    mass: np.ndarray = np.sqrt(np.maximum(m2, 0.0))
    return mass


def chunk_sizes(events: int, chunk: int) -> list[int]:
    """Chunk lengths that add up to ``events``."""
    sizes = [chunk] * (events // chunk)
    if events % chunk:
        sizes.append(events % chunk)
    return sizes


def chunk_masses(seed: int, index: int, size: int) -> np.ndarray:
    """Invariant masses of one chunk of events."""
    return invariant_mass(chunk_four_vectors(seed, index, size))


def build(events: int, chunk: int, seed: int, bins: int, low: float, high: float) -> tuple[Any, Any]:
    """The lazy histogram: (counts, edges) as Dask arrays."""
    import dask.array as da
    from dask.delayed import delayed

    pieces = [
        da.from_delayed(delayed(chunk_masses)(seed, index, size), shape=(size,), dtype=float)
        for index, size in enumerate(chunk_sizes(events, chunk))
    ]
    masses = da.concatenate(pieces)
    counts, edges = da.histogram(masses, bins=bins, range=(low, high))
    return counts, edges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bins", type=int, default=120)
    parser.add_argument("--low", type=float, default=0.0)
    parser.add_argument("--high", type=float, default=240.0)
    parser.add_argument("--out", default="histogram.json")
    args = parser.parse_args()

    from distributed import Client

    started = time.perf_counter()
    with Client() as client:
        counts, edges = build(args.events, args.chunk, args.seed, args.bins, args.low, args.high)
        counts = client.persist(counts)
        client.publish_dataset(mass_histogram=counts)
        values = np.asarray(client.compute(counts).result())
        edge_values = np.asarray(edges)
        workers = len(client.scheduler_info()["workers"])
    peak = int(np.argmax(values))
    result = {
        "events": args.events,
        "chunk": args.chunk,
        "seed": args.seed,
        "edges": edge_values.tolist(),
        "counts": values.astype(int).tolist(),
        "peak_bin": peak,
        "peak_low": float(edge_values[peak]),
        "peak_high": float(edge_values[peak + 1]),
        "workers": workers,
        "seconds": round(time.perf_counter() - started, 3),
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(
        f"{args.events} events on {workers} worker(s): peak bin {peak} "
        f"[{edge_values[peak]:.1f}, {edge_values[peak + 1]:.1f}) GeV with {int(values[peak])} events"
    )


if __name__ == "__main__":
    main()
