"""A scan on Ray: fit ridge regression on polynomial features of a noisy sine for every
(degree, alpha) of a grid, one Ray task per fit, spread over the pilot's Ray nodes.

Writes scan.json (every fit's validation error, the best one, where the fits ran, and
the cluster's resources) and prints the best fit. Exits 1 when no fit reaches
``--max-mse``. Run by ``ray-scan.toml``: RAY_ADDRESS is set by the pilot.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys

import numpy as np
import ray


def fit(degree: int, alpha: float, samples: int, seed: int) -> dict[str, float | int | str]:
    """One fit: its validation mean squared error, and the node it ran on."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, samples)
    y = np.sin(3.0 * x) + rng.normal(0.0, 0.1, samples)
    split = samples * 3 // 4
    a = np.vander(x[:split], degree + 1, increasing=True)
    weights = np.linalg.solve(a.T @ a + alpha * np.eye(degree + 1), a.T @ y[:split])
    residual = np.vander(x[split:], degree + 1, increasing=True) @ weights - y[split:]
    return {
        "degree": degree,
        "alpha": alpha,
        "val_mse": float(np.mean(residual**2)),
        "node": socket.gethostname(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--degrees", default="1,3,5,7,9")
    parser.add_argument("--alphas", default="0.0001,0.01,1.0")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-mse", type=float, default=0.05)
    parser.add_argument("--out", default="scan.json")
    args = parser.parse_args()

    ray.init()  # RAY_ADDRESS: the pilot's Ray head
    remote_fit = ray.remote(num_cpus=1)(fit)
    grid = [(int(d), float(a)) for d in args.degrees.split(",") for a in args.alphas.split(",")]
    fits = ray.get([remote_fit.remote(d, a, args.samples, args.seed) for d, a in grid])
    best = min(fits, key=lambda f: f["val_mse"])
    result = {
        "fits": fits,
        "best": best,
        "nodes": sorted({str(f["node"]) for f in fits}),
        "resources": ray.cluster_resources(),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"best fit: degree {best['degree']}, alpha {best['alpha']}: validation MSE {best['val_mse']:.5f}")
    print(f"{len(fits)} fits on {len(result['nodes'])} node(s): {', '.join(result['nodes'])}")
    if best["val_mse"] > args.max_mse:
        print(f"no fit reaches a validation MSE of {args.max_mse}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
