"""The Optuna samplers: one study per search group, in ``<workdir>/search/<group>.journal``."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any, ClassVar

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from pilotkit.api import SearchSampler, SearchTrial

GRID_LIMIT = 100_000
"""The most points a grid search may have."""

_STATES = {
    TrialState.RUNNING: "running",
    TrialState.WAITING: "running",
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}
_NEEDS = {"cmaes": ("cmaes",), "gp": ("torch", "scipy"), "qmc": ("scipy",)}


def distributions(params: dict[str, Any]) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for name, d in params.items():
        if d.uniform is not None:
            out[name] = FloatDistribution(float(d.uniform[0]), float(d.uniform[1]))
        elif d.loguniform is not None:
            out[name] = FloatDistribution(float(d.loguniform[0]), float(d.loguniform[1]), log=True)
        elif d.randint is not None:
            out[name] = IntDistribution(int(d.randint[0]), int(d.randint[1]))
        else:
            out[name] = CategoricalDistribution(list(d.choice))
    return out


def grid_space(params: dict[str, Any]) -> dict[str, list[Any]] | None:
    """The grid of ``params`` (choice values, randint ranges); None if one is continuous."""
    space: dict[str, list[Any]] = {}
    for name, d in params.items():
        if d.choice is not None:
            space[name] = list(d.choice)
        elif d.randint is not None:
            space[name] = list(range(int(d.randint[0]), int(d.randint[1]) + 1))
        else:
            return None
    return space


class OptunaSampler(SearchSampler):
    """An Optuna study driven by ask and tell."""

    description = "Optuna"
    kind: ClassVar[str] = ""

    @classmethod
    def check(cls, search: Any) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        missing = [m for m in _NEEDS.get(cls.kind, ()) if importlib.util.find_spec(m) is None]
        if missing:
            problems.append(("sampler", f"sampler '{cls.kind}' needs {', '.join(missing)} (pip install {' '.join(missing)})"))
        if cls.kind == "grid":
            space = grid_space(search.params)
            if space is None:
                problems.append(("params", "the grid sampler needs choice = [...] or randint = [lo, hi] for every parameter"))
            elif _size(space) > GRID_LIMIT:
                problems.append(("params", f"a grid of {_size(space)} points; at most {GRID_LIMIT}"))
        if cls.kind == "cmaes" and len(search.objectives) > 1:
            problems.append(("objective", "the cmaes sampler takes a single objective"))
        return problems

    def _sampler(self, seed: int | None) -> optuna.samplers.BaseSampler:
        kind = self.kind
        if kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if kind == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed)
        if kind == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if kind == "grid":
            return optuna.samplers.GridSampler(grid_space(self.search.params) or {}, seed=seed)
        if kind == "qmc":
            return optuna.samplers.QMCSampler(seed=seed)
        return optuna.samplers.NSGAIISampler(seed=seed)

    def _pruner(self) -> optuna.pruners.BasePruner:
        pruner = self.search.pruner
        if pruner == "median":
            return optuna.pruners.MedianPruner()
        if pruner == "asha":
            return optuna.pruners.SuccessiveHalvingPruner()
        if pruner == "hyperband":
            return optuna.pruners.HyperbandPruner()
        return optuna.pruners.NopPruner()

    @classmethod
    def html_plots(cls, directory: Path, study: str) -> list[str]:
        """Optuna's plots of the study (optimisation history, slices, parameter
        importances, intermediate values when trials reported steps), with plotly.js
        inlined once; [] without plotly or a study."""
        try:
            import plotly  # noqa: F401
        except ImportError:
            return []
        path = directory / f"{study}.journal"
        if not path.is_file():
            return []
        from optuna import visualization as vis

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = optuna.load_study(study_name=study, storage=JournalStorage(JournalFileBackend(str(path))))
            done = [t for t in loaded.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
            if not done or len(loaded.directions) > 1:
                return []
            figures = [vis.plot_optimization_history(loaded), vis.plot_slice(loaded)]
            if len(done) > 1 and len(done[0].params) > 1:
                figures.append(vis.plot_param_importances(loaded))
            if any(t.intermediate_values for t in loaded.get_trials(deepcopy=False)):
                figures.append(vis.plot_intermediate_values(loaded))
        return [fig.to_html(full_html=False, include_plotlyjs=i == 0) for i, fig in enumerate(figures)]

    def open(self) -> list[SearchTrial]:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.directory.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(self.directory / f"{self.study}.journal"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = JournalStorage(backend)
        self._study = optuna.create_study(
            storage=storage, study_name=self.study, load_if_exists=True, pruner=self._pruner(),
            directions=self.search.directions, sampler=self._sampler(self.search.seed),
        )  # fmt: skip
        self._dists = distributions(self.search.params)
        self._live: dict[int, optuna.Trial] = {}
        self._grid = _size(grid_space(self.search.params) or {}) if self.kind == "grid" else None
        trials = self._study.get_trials(deepcopy=False)
        if trials and self.search.seed is not None:  # a resumed search: not the same draws again
            self._study.sampler = self._sampler(self.search.seed + len(trials))
        out = []
        for t in trials:
            state = _STATES.get(t.state, "failed")
            params = dict(t.params)
            if state == "running":
                trial = self._live[t.number] = optuna.Trial(self._study, t._trial_id)
                if set(params) != set(self._dists):  # killed while asking: ask the rest now
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        params = {name: _suggest(trial, name, d) for name, d in self._dists.items()}
            out.append(SearchTrial(number=t.number, params=params, state=state))
        return out

    def ask(self) -> SearchTrial | None:
        if self._grid is not None and len(self._study.get_trials(deepcopy=False)) >= self._grid:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self._study.ask(self._dists)
        self._live[trial.number] = trial
        return SearchTrial(number=trial.number, params=dict(trial.params))

    def report(self, number: int, step: int, value: float) -> bool:
        trial = self._live.get(number)
        if trial is None:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a step reported twice (a trial run again)
            trial.report(value, step)
        return bool(trial.should_prune())

    def tell(self, number: int, state: str, values: list[float] | None) -> None:
        self._live.pop(number, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if state == "complete" and values is not None:
                self._study.tell(number, values, skip_if_finished=True)
            elif state == "pruned":
                self._study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
            else:
                self._study.tell(number, state=TrialState.FAIL, skip_if_finished=True)


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """``trial``'s value of ``name``: the one it has, or a new one drawn from ``dist``."""
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    assert isinstance(dist, CategoricalDistribution)
    return trial.suggest_categorical(name, list(dist.choices))


def _size(space: dict[str, list[Any]]) -> int:
    n = 1
    for values in space.values():
        n *= len(values)
    return n


class TPE(OptunaSampler):
    id = kind = "tpe"
    description = "Optuna's tree-structured Parzen estimator (constant liar for parallel trials)"


class Random(OptunaSampler):
    id = kind = "random"
    description = "independent random samples"


class CmaEs(OptunaSampler):
    id = kind = "cmaes"
    description = "CMA evolution strategy (needs cmaes)"


class GP(OptunaSampler):
    id = kind = "gp"
    description = "Gaussian-process Bayesian optimisation (needs torch, scipy)"


class Grid(OptunaSampler):
    id = kind = "grid"
    description = "every point of a grid of choices, in random order"


class QMC(OptunaSampler):
    id = kind = "qmc"
    description = "quasi-Monte Carlo (Sobol) samples (needs scipy)"


class NSGA2(OptunaSampler):
    id = kind = "nsga2"
    description = "NSGA-II, for several objectives"
