"""A chunk of runs as one batch: what :func:`sim.api.run_batch` (and so every analysis) does in each process.

Each distinct config is prepared once (:class:`RunPlan`: validated, its memory and work
guarded), each population drawn once per scenario and seed (:class:`PopulationCache`: the
population depends on nothing else, so a comparison's regimes share it), the months run by
the engine, and then the invariants are checked and the metrics computed for all the
chunk's runs of a config at once, one NumPy operation over the runs per check and per
metric (:func:`sim.core.results.check_invariants`, :func:`sim.core.results.summarize_runs`, columnar).
A run alone (:func:`sim.api.simulate`) is a chunk of one: the same code, the same numbers.

Nothing is checked less than run by run: every run's invariants are checked before any
result of the chunk is returned, and a run that breaks one raises its own message (the
first such run in task order).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np

from ..core.config import ENGINES, Config, ConfigError
from ..core.population import Population, check_memory, check_money, draw_population
from ..core.results import METRICS, InvariantError, check_by_sector, check_deals, check_invariants, summarize_runs

# A process keeps the populations it drew last, up to this many bytes (a default-scenario population is ~0.3 MB; one
# larger than a quarter of it is not kept): a comparison's regimes, an equal-spend search's steps and a sweep's points
# over instrument parameters all run on the same populations (common random numbers), drawn once.
POPULATION_CACHE_BYTES = 64 * 2**20
# Runs checked and summarised at once (one NumPy operation each over them): enough to amortise the operations' fixed
# cost (~1 us against ~0.1 us a run's series), few enough that the stacked series and their running totals stay
# small (~4 copies of 64 x months x columns floats: ~35 MB at 120 months) whatever the size of a chunk.
FINISH_RUNS = 64


class PopulationCache:
    """The populations a process drew last, by (scenario, seed), within ``max_bytes``; least recently used go first.

    Safe because a population is read-only to both engines (the state copies what a run changes: the test of the
    engines checks that a run leaves its population as drawn) and a pure function of the scenario and the seed.
    """

    def __init__(self, max_bytes: int = POPULATION_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._kept: OrderedDict[tuple, tuple[Population, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, cfg: Config, scenario_key: str, seed: int) -> Population:
        key = (scenario_key, seed)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                self.hits += 1
                return self._kept[key][0]
        pop = draw_population(cfg, seed)
        size = sum(v.nbytes for v in vars(pop).values() if isinstance(v, np.ndarray))
        with self._lock:
            self.misses += 1
            if size <= self.max_bytes // 4 and key not in self._kept:
                self._kept[key] = (pop, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, gone) = self._kept.popitem(last=False)
                    self._bytes -= gone
        return pop

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._bytes = 0


populations = PopulationCache()


class RunPlan:
    """What every run of one validated config shares, prepared once: its engine, the guards on its memory and work,
    the key of its population (its scenario)."""

    def __init__(self, cfg: Config, engine: Optional[str] = None):
        if cfg.grid:
            raise ConfigError("grid = {...}: a grid is for sweeps (python -m experiments.run -m ..., or run the "
                              "points of sim.runs.sweep.expand_grid)")
        engine = engine or cfg.engine
        if engine not in ENGINES:
            raise ConfigError(f"engine = {engine!r}: must be one of " + ", ".join(ENGINES))
        check_memory(cfg, engine)
        self.cfg, self.engine = cfg, engine
        self.scenario_key = repr(cfg.scenario)   # the population depends on the scenario and the seed only
        self.params = None                        # the kernels' parameters, made at the first Numba run

    def run(self, seed: int, reuse: bool = True) -> "RawRun":
        """The months of one run, unchecked and unsummarised (``reuse`` false: its population drawn afresh and its
        parameters made again, as :func:`run_one_by_one` does)."""
        cfg = self.cfg
        pop = populations.get(cfg, self.scenario_key, seed) if reuse else draw_population(cfg, seed)
        check_money(cfg, pop)
        if self.engine == "mesa":
            from ..engines.mesa.model import TransferModel

            model = TransferModel(cfg, seed, population=pop)
            series = model.run()
            n_ach, money, arrays = len(model.achievements), model.initial_money, model.arrays
        else:
            from ..engines.numba import kernels
            from ..core.state import make_params

            if self.params is None and reuse:
                self.params = make_params(cfg, seed, pop.n_achievements)
            series, n_ach, money, arrays = kernels.run(cfg, seed, population=pop, params=self.params if reuse else None)
        n_deals = int(arrays.deal_n[0])
        return RawRun(seed, series, int(n_ach), float(money), arrays.sector_series,
                      (arrays.deal_value[:n_deals].copy(), arrays.deal_form[:n_deals].copy()))


class RawRun:
    """One run's months before its checks and metrics."""

    __slots__ = ("seed", "series", "n_achievements", "initial_money", "by_sector", "deals")

    def __init__(self, seed, series, n_achievements, initial_money, by_sector, deals):
        self.seed, self.series, self.n_achievements = seed, series, n_achievements
        self.initial_money, self.by_sector, self.deals = initial_money, by_sector, deals


def finish(plan: RunPlan, raws: Sequence[RawRun], check: bool = True) -> dict:
    """Check the runs of one plan (all at once; the first to break an invariant raises, with its index in ``raws``
    as the error's ``run``) and compute their metrics: one array over the runs per metric."""
    if not raws:
        return {}
    series = np.stack([r.series for r in raws])
    if check:
        try:
            check_invariants(series, [r.n_achievements for r in raws], [r.initial_money for r in raws], plan.cfg)
            for r in raws:
                check_by_sector(r.series, r.by_sector)
                check_deals(r.series, *r.deals)
        except InvariantError:
            # the first run that fails any of its checks (invariants, then by sector, then deals), as run by run:
            # a later run's broken invariant must not hide an earlier run's broken funnel by sector
            for i, r in enumerate(raws):
                try:
                    check_invariants(r.series, r.n_achievements, r.initial_money, plan.cfg)
                    check_by_sector(r.series, r.by_sector)
                    check_deals(r.series, *r.deals)
                except InvariantError as e:
                    e.run = i
                    raise
            raise
    return summarize_runs(series, [r.n_achievements for r in raws], plan.cfg.scenario.discount_rate,
                          [r.deals for r in raws])


def run_chunk(tasks: Sequence[tuple[Config, int]], validate, result_type, engine: Optional[str] = None,
              check: bool = True, columns: bool = False):
    """Run (config, seed) pairs as one batch and return ``result_type`` objects in task order (``columns``: a
    :class:`RunTable` instead, with the invariants checked just the same).

    ``validate(cfg)`` gives a config's validated copy (once per distinct config object). The runs of each config are
    checked and summarised together; if any breaks an invariant, the first such run in task order raises.
    """
    plans: dict[int, RunPlan] = {}
    groups: dict[int, list[int]] = {}
    raws: list[RawRun] = []
    try:
        for i, (cfg, seed) in enumerate(tasks):
            seed = int(seed)   # a result's seed a Python int, as run by run (a caller's np.int64 included)
            plan = plans.get(id(cfg))
            if plan is None:
                plan = plans[id(cfg)] = RunPlan(validate(cfg), engine)
            raws.append(plan.run(seed))
            groups.setdefault(id(cfg), []).append(i)
    except Exception:
        # a task that cannot run (its config, its money, the engine): the runs before it are checked first, as run
        # by run they were, and the first of them to break an invariant raises instead
        if check:
            _finish_groups([None] * len(raws), plans, groups, raws, lambda *args: None, True)
        raise
    out = RunTable(len(tasks)) if columns else [None] * len(tasks)
    _finish_groups(out, plans, groups, raws, result_type, check)
    return out


def _finish_groups(out, plans: dict, groups: dict, raws: list, result_type, check: bool) -> None:
    """:func:`finish` every plan's runs into ``out``; the first run in task order that failed a check raises."""
    failures: list = []
    for key, every in groups.items():
        for idx in _slices(every, FINISH_RUNS):
            _finish_into(out, failures, plans[key], idx, raws, result_type, check)
    if failures:
        raise min(failures, key=lambda f: f[0])[1]


def _slices(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _finish_into(out, failures: list, plan: RunPlan, idx: list, raws: list, result_type, check: bool) -> None:
    """:func:`finish` the runs ``idx`` of one plan into ``out`` (by task index: a list of ``result_type`` objects, or
    a :class:`RunTable`), or note the first that failed."""
    try:
        metrics = finish(plan, [raws[i] for i in idx], check)
    except InvariantError as e:
        failures.append((idx[getattr(e, "run", 0)], e))
        return
    if isinstance(out, RunTable):
        out.fill(idx, plan, [raws[i] for i in idx], metrics)
        return
    names = tuple(metrics)
    rows = zip(*(metrics[n].tolist() for n in names))   # Python floats, as a run's summary always held
    for i, row in zip(idx, rows):
        r = raws[i]
        out[i] = result_type(plan.cfg.regime.name, r.seed, r.series, dict(zip(names, row)), r.n_achievements,
                             r.initial_money, plan.cfg, r.by_sector, r.deals)


class RunTable:
    """Runs as columns, in task order, without a Python object a run: each run's regime, seed, number of
    achievements and initial money, and every metric (:data:`sim.core.results.METRICS`) as one array over the runs.
    ``frame()`` is the table as a DataFrame (columns ``regime``, ``seed``, then the metrics: ready for Parquet);
    ``concat`` joins the tables of a batch's chunks. The series are not kept (a design's runs need only their
    metrics); :func:`sim.api.run_batch` returns whole runs."""

    def __init__(self, runs: int):
        self.regime = np.empty(runs, dtype=object)
        self.seed = np.zeros(runs, dtype=np.int64)
        self.n_achievements = np.zeros(runs, dtype=np.int64)
        self.initial_money = np.zeros(runs, dtype=np.float64)
        self.metrics = {name: np.full(runs, np.nan) for name in METRICS}

    def __len__(self) -> int:
        return len(self.seed)

    def fill(self, idx: list, plan: RunPlan, raws: list, metrics: dict) -> None:
        self.regime[idx] = plan.cfg.regime.name
        self.seed[idx] = [r.seed for r in raws]
        self.n_achievements[idx] = [r.n_achievements for r in raws]
        self.initial_money[idx] = [r.initial_money for r in raws]
        for name, values in metrics.items():
            self.metrics[name][idx] = values

    @classmethod
    def concat(cls, parts: Sequence["RunTable"]) -> "RunTable":
        out = cls(0)
        for name in ("regime", "seed", "n_achievements", "initial_money"):
            setattr(out, name, np.concatenate([getattr(p, name) for p in parts] or [getattr(out, name)]))
        out.metrics = {name: np.concatenate([p.metrics[name] for p in parts] or [out.metrics[name]])
                       for name in METRICS}
        return out

    def frame(self):
        import pandas as pd

        return pd.DataFrame({"regime": self.regime, "seed": self.seed, **self.metrics})


def run_one_by_one(tasks: Sequence[tuple[Config, int]], validate, result_type) -> list:
    """The path before batches, kept as the reference a batch is tested and benchmarked against
    (``python -m experiments.bench --only batch``): each run's population drawn, its parameters made, its months run,
    its invariants checked and its metrics computed alone, in task order."""
    valid: dict[int, Config] = {}
    out = []
    for cfg, seed in tasks:
        if id(cfg) not in valid:
            valid[id(cfg)] = validate(cfg)
        plan = RunPlan(valid[id(cfg)])
        one: list = [None]
        failures: list = []
        _finish_into(one, failures, plan, [0], [plan.run(int(seed), reuse=False)], result_type, True)
        if failures:
            raise failures[0][1]
        out.append(one[0])
    return out
