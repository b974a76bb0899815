"""Fit ridge regression on polynomial features of a noisy sine; print and save the
validation error. One task of the scan example."""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--degree", type=int, required=True)
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="metric.json")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1.0, 1.0, args.samples)
    y = np.sin(3.0 * x) + rng.normal(0.0, 0.1, args.samples)
    split = args.samples * 3 // 4

    def features(v: np.ndarray) -> np.ndarray:
        return np.vander(v, args.degree + 1, increasing=True)

    a = features(x[:split])
    weights = np.linalg.solve(a.T @ a + args.alpha * np.eye(a.shape[1]), a.T @ y[:split])
    residual = features(x[split:]) @ weights - y[split:]
    mse = float(np.mean(residual**2))
    result = {"degree": args.degree, "alpha": args.alpha, "val_mse": mse}
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
