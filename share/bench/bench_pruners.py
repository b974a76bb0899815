#!/usr/bin/env python3
"""Optuna's pruners on the search tests' quadratic, in one process (no pilot, no
parallel trials): what each setting costs in steps and gives in best loss.

    python3 share/bench/bench_pruners.py [--seeds 30] [--trials 40] [--steps 8]

For each seed, a TPE study (constant liar, as pilotkit-optuna makes it) runs TRIALS
trials of loss = (x - 1.5)^2 + (y + 0.5)^2 + (z - 2)^2 over [-5, 5]^3, each reporting
loss * (1 + 2 / (step + 1)) at every step (the order of the trials is the same at every
step, so a pruner that ranks them right never stops the best one). Prints per pruner
the median [min-max] of the best loss, the steps run and the trials pruned.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import optuna

OPTIMUM = {"x": 1.5, "y": -0.5, "z": 2.0}


def study_best(seed: int, pruner: optuna.pruners.BasePruner, trials: int, steps: int) -> tuple[float, int, int]:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True), pruner=pruner)
    ran = pruned = 0
    for _ in range(trials):
        trial = study.ask()
        params = {k: trial.suggest_float(k, -5, 5) for k in OPTIMUM}
        loss = sum((params[k] - v) ** 2 for k, v in OPTIMUM.items())
        for step in range(steps):
            ran += 1
            trial.report(loss * (1 + 2 / (step + 1)), step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned += 1
                break
        else:
            study.tell(trial, loss)
    return study.best_value, ran, pruned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    pruners: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
        "none": optuna.pruners.NopPruner,
        "asha (pilotkit: auto, reduction 4)": optuna.pruners.SuccessiveHalvingPruner,
        "asha reduction 3": lambda: optuna.pruners.SuccessiveHalvingPruner(reduction_factor=3),
        "asha reduction 2": lambda: optuna.pruners.SuccessiveHalvingPruner(reduction_factor=2),
        "median (pilotkit)": optuna.pruners.MedianPruner,
        "hyperband (pilotkit)": optuna.pruners.HyperbandPruner,
    }
    for name, make in pruners.items():
        rows = [study_best(seed, make(), args.trials, args.steps) for seed in range(args.seeds)]
        best, ran, pruned = ([row[i] for row in rows] for i in range(3))
        print(f"{name:36s} best {statistics.median(best):.3f} [{min(best):.3f}-{max(best):.3f}]  "
              f"steps {statistics.median(ran):.0f}/{args.trials * args.steps}  "
              f"pruned {statistics.median(pruned):.0f}/{args.trials}", flush=True)


if __name__ == "__main__":
    main()
