"""Fit a polynomial to a noisy sine by gradient descent with momentum; append the
validation error to $PILOTKIT_METRICS every 20 epochs (``step``) and at the end. One
trial of the tune example."""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--degree", type=int, required=True)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch-time", type=float, default=0.01, help="seconds of stand-in work per epoch")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1.0, 1.0, 400)
    y = np.sin(3.0 * x) + rng.normal(0.0, 0.1, 400)
    features = np.vander(x, args.degree + 1, increasing=True)
    train, val = slice(0, 300), slice(300, 400)
    weights = np.zeros(args.degree + 1)
    velocity = np.zeros_like(weights)
    metrics = open(os.environ.get("PILOTKIT_METRICS", os.devnull), "a")
    val_mse = math.inf
    for epoch in range(args.epochs):
        time.sleep(args.epoch_time)  # a real model's epoch takes a while
        residual = features[train] @ weights - y[train]
        gradient = features[train].T @ residual / residual.size
        velocity = args.momentum * velocity - args.lr * gradient
        weights += velocity
        val_mse = float(np.mean((features[val] @ weights - y[val]) ** 2))
        if not math.isfinite(val_mse):
            val_mse = 1e9  # diverged
            break
        if epoch % 20 == 19:
            metrics.write(json.dumps({"step": epoch, "val_mse": val_mse}) + "\n")
            metrics.flush()
    metrics.write(json.dumps({"val_mse": val_mse}) + "\n")
    metrics.close()
    print(json.dumps({"lr": args.lr, "degree": args.degree, "momentum": args.momentum, "val_mse": val_mse}))


if __name__ == "__main__":
    main()
