"""Adaptive search with Optuna: the samplers ``tpe``, ``random``, ``cmaes``, ``gp``,
``grid``, ``qmc`` and ``nsga2`` for ``[app.groups.search]``, with Optuna's pruners; the
study is kept in the run's workdir (Optuna's journal file), so ``--resume`` continues it.

Optuna is imported only when a spec uses one of these samplers."""

from __future__ import annotations

from typing import Any

from pilotkit.api import hookimpl

SAMPLERS = {
    "tpe": "TPE",
    "random": "Random",
    "cmaes": "CmaEs",
    "gp": "GP",
    "grid": "Grid",
    "qmc": "QMC",
    "nsga2": "NSGA2",
}


@hookimpl
def pilotkit_register_samplers(register: Any) -> None:
    for name, cls in SAMPLERS.items():
        register.lazy(name, f"pilotkit_optuna.sampler:{cls}")
