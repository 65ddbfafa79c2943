"""Policy search under a budget: the Pareto front of instrument mixes, and the best mix for a yearly budget.

The question (issue point 4): which instruments, with which parameters, convert most for the public money
they cost, within a yearly budget and a bound on the risk insurers carry? It is a multi-objective search
over the levers of :mod:`sim.analysis.explore` (instrument switches ``use.<name>`` and instrument parameters):

* objectives, e.g. maximise ``extra_conversions`` and minimise ``extra_public_cost_per_year`` (public cost
  including universities' forgone income) or ``gov_spend_per_year`` (government's payments alone);
* constraints ``outcome <= bound``: the yearly budget on ``gov_spend_per_year`` and, optionally, a bound
  on ``insurer_loss_p95``.

Pieces:

* :func:`pareto_front`: the exact non-dominated set of a table (a brute-force grid's or a search's);
* :func:`search`: NSGA-II (Optuna's :class:`~optuna.samplers.NSGAIISampler`, constrained domination),
  one generation at a time through the ask/tell interface, each generation's points evaluated together
  in one batch (so in parallel through :class:`sim.runs.executor.Executor`), with a cache of evaluated points
  and resumable from a file (Optuna's journal or an SQLite database, :func:`open_storage`; see *Determinism and
  resume* there);
* :func:`best_for_budget`: the point with the most conversions whose spend is within a budget;
* :func:`intervals`: chosen points re-evaluated on more replicates, mean and 95% interval of each outcome;
* :func:`plot_front`: the front, the other trials, the budget line and the best mix (Agg, to a file).

Ties on the front: two points with the same objective values do not dominate each other (domination needs
one objective strictly better), so :func:`pareto_front` keeps **all** of them: the front is the exact set of
non-dominated points, whatever their number. (Distinct levers can give identical outcomes, e.g. a parameter
that does not change any run of a small scenario; the analyst sees every such mix.) A search's front table
(:meth:`SearchResult.front`) lists each *evaluated point* once: a point the genetic algorithm proposed again
is one point, however many trials proposed it.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from ..core.config import ConfigError
from ..core.schema import is_finite_number

DIRECTIONS = ("max", "min")
# outcomes that are not a mean over replicates of a per-replicate value: a ratio of means and a percentile over
# replicates; their intervals are a paired bootstrap over replicates, the others' a Student t over replicates
NOT_MEANS = ("cost_per_extra_conversion", "cost_per_extra_conversion_public", "insurer_loss_p95")
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240801


# --------------------------------------------------------------------------- checks
def check_objectives(objectives: Mapping[str, str]) -> dict:
    """``{outcome: "max" | "min"}``, at least one."""
    if not isinstance(objectives, Mapping) or not objectives:
        raise ConfigError(f"objectives = {objectives!r}: must be a non-empty mapping {{outcome: max|min}}")
    for k, d in objectives.items():
        if d not in DIRECTIONS:
            raise ConfigError(f"objectives.{k} = {d!r}: must be max or min")
    return dict(objectives)


def check_constraints(constraints: Optional[Mapping[str, float]]) -> dict:
    """``{outcome: bound}`` meaning ``outcome <= bound`` (finite bounds)."""
    if constraints is None:
        return {}
    if not isinstance(constraints, Mapping):
        raise ConfigError(f"constraints = {constraints!r}: must be a mapping {{outcome: upper bound}}")
    out = {}
    for k, b in constraints.items():
        if not isinstance(b, (int, float, np.integer, np.floating)) or not is_finite_number(b):
            raise ConfigError(f"constraints.{k} = {b!r}: must be a finite number (the outcome's upper bound)")
        out[k] = float(b)
    return out


# --------------------------------------------------------------------------- the front
def _minimised(table: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    cols = []
    for k, d in check_objectives(objectives).items():
        if k not in table.columns:
            raise ConfigError(f"objectives: {k!r} is not a column of the table; columns: " + ", ".join(table.columns))
        v = table[k].to_numpy(dtype=float)
        cols.append(-v if d == "max" else v)
    return np.column_stack(cols) if len(table) else np.zeros((0, len(cols)))


def pareto_front(table: pd.DataFrame, objectives: Mapping[str, str], feasible=None) -> np.ndarray:
    """The exact non-dominated set: a boolean mask over ``table``'s rows.

    A row dominates another when it is at least as good in every objective and strictly better in one
    (``"max"``: larger is better; ``"min"``: smaller). A row is on the front when it is feasible, has no NaN
    objective, and no feasible row dominates it. Infeasible rows (``feasible`` False) are never on the front
    and dominate nothing. Rows with identical objective values do not dominate each other: all of them are on
    the front or none is. Infinite values compare as numbers (a cost of +inf loses to any finite cost).
    O(n^2) comparisons in blocks: exact, and quick for the tables of a search (thousands of rows).
    """
    f = _minimised(table, objectives)
    n = len(f)
    ok = np.ones(n, dtype=bool) if feasible is None else np.asarray(feasible, dtype=bool).copy()
    if ok.shape != (n,):
        raise ValueError(f"feasible: {ok.shape[0] if ok.ndim else 'a scalar'} values for {n} rows")
    ok &= ~np.isnan(f).any(axis=1)
    cand = f[ok]
    on = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(ok)
    block = 256
    for s in range(0, len(idx), block):
        a = cand[s:s + block][:, None, :]                  # rows being judged
        le = (cand[None, :, :] <= a).all(axis=2)           # candidate j at least as good as row i everywhere
        lt = (cand[None, :, :] < a).any(axis=2)            # ... and strictly better somewhere
        on[idx[s:s + block]] = ~(le & lt).any(axis=1)
    return on


def best_for_budget(table: pd.DataFrame, budget: float, conversions: str = "extra_conversions",
                    spend: str = "gov_spend_per_year") -> Optional[pd.Series]:
    """The row with the most ``conversions`` whose ``spend`` is at most ``budget`` (None when no row is).

    Rows marked infeasible (a ``feasible`` column False: e.g. over a risk bound) are left out. Ties on
    conversions go to the lower spend, then to the first row. Given a search's front (objectives: conversions
    and spend) this is the front point for the budget; for a budget below the search's, or when the search's
    cost objective is not ``spend`` (public cost with universities' forgone income), pass all its feasible
    trials: the best mix for a budget is on the front of (conversions, spend), not necessarily on another one.
    """
    for c in (conversions, spend):
        if c not in table.columns:
            raise ConfigError(f"best_for_budget: no column {c!r}; columns: " + ", ".join(table.columns))
    ok = table[spend].to_numpy(dtype=float) <= float(budget)
    ok &= ~np.isnan(table[conversions].to_numpy(dtype=float))
    if "feasible" in table.columns:
        ok &= table["feasible"].to_numpy(dtype=bool)
    if not ok.any():
        return None
    cand = table[ok]
    order = np.lexsort((np.arange(len(cand)), cand[spend].to_numpy(dtype=float),
                        -cand[conversions].to_numpy(dtype=float)))
    return cand.iloc[int(order[0])]


# --------------------------------------------------------------------------- the decision space
MAX_CATEGORIES = 100   # an integer lever with more values is numerical (SBX, polynomial mutation, rounded)


def decision_space(levers) -> dict:
    """Optuna distributions of a :class:`sim.analysis.explore.Levers`.

    Discrete levers are categorical: a switch ``{0, 1}``, an integer parameter its values (uniform over them, as
    the calibration's integer priors; up to :data:`MAX_CATEGORIES` values): NSGA-II swaps them in crossover and
    redraws them on mutation. A real parameter is a ``FloatDistribution`` (log-uniform where the levers file
    says ``scale: log``), crossed by SBX and mutated polynomially (Deb's operators). Why not integers as
    numbers: Deb's polynomial mutation (distribution index 20) moves a value by a few percent of its range, so
    an integer lever of a handful of values would almost never change once the population has converged (on the
    brute-force case of tests/analysis/test_optimise.py the search then missed front points).
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from .explore import SWITCH

    space = {SWITCH + s: CategoricalDistribution((0, 1)) for s in levers.switches}
    for p in levers.params:
        log = p.scale == "log"
        if p.integer and int(p.high) - int(p.low) < MAX_CATEGORIES:
            space[p.key] = CategoricalDistribution(tuple(range(int(p.low), int(p.high) + 1)))
        elif p.integer:
            space[p.key] = IntDistribution(int(p.low), int(p.high), log=log)
        else:
            space[p.key] = FloatDistribution(p.low, p.high, log=log)
    return space


class Canonical:
    """A point as evaluated: the parameters of an instrument its switches turn off are dropped.

    A parameter of an instrument's section (``broker_reward.*``, ``free_trial.*``: the section is the
    instrument's name) has no effect when that instrument is off, so two points differing
    only there are one point (evaluated once; tests/analysis/test_optimise.py checks the claim on the model). Keys of
    other sections, and of instruments the levers do not switch, are kept.
    """

    def __init__(self, levers):
        from .explore import SWITCH
        self.sections = {SWITCH + s: s + "." for s in levers.switches}

    def __call__(self, point: dict) -> dict:
        off = [sec for sw, sec in self.sections.items() if sw in point and not bool(round(float(point[sw])))]
        return {k: v for k, v in point.items() if not any(k.startswith(sec) for sec in off)}


class ModelBatch:
    """``evaluate_batch`` of an :class:`sim.analysis.explore.ExploratoryModel`: a list of points -> their outcomes, every
    point's runs in ``executor``'s processes (or here); in order, so results do not depend on the executor."""

    def __init__(self, model, executor=None):
        self.model, self.executor = model, executor

    def __call__(self, points: list) -> list:
        df = self.model.evaluate(points, self.executor)
        return df[list(self.model.outcomes)].to_dict("records")


# --------------------------------------------------------------------------- the search
@dataclass
class SearchResult:
    """A search's completed trials (one row each, in trial order) and its settings.

    ``trials`` columns: ``trial`` (Optuna's number), ``generation``, the decision variables *as evaluated*
    (NaN for a parameter of an instrument switched off: it had no effect), the outcomes, ``violation`` (the
    largest relative excess over a constraint's bound; <= 0 is feasible), ``feasible`` and ``reused`` (the
    point had been evaluated before: its outcomes come from the cache).
    """

    trials: pd.DataFrame
    names: list
    objectives: dict
    constraints: dict
    evaluations: int                # points evaluated by this call (cache misses)

    def front_mask(self, objectives: Optional[Mapping[str, str]] = None) -> np.ndarray:
        """The feasible non-dominated trials (every trial of a point proposed twice)."""
        return pareto_front(self.trials, objectives or self.objectives, self.trials["feasible"].to_numpy())

    def front(self, objectives: Optional[Mapping[str, str]] = None) -> pd.DataFrame:
        """The front: each evaluated point once (its first trial), sorted by the first objective."""
        t = self.trials[self.front_mask(objectives)]
        t = t.loc[~_point_keys(t, self.names).duplicated()]
        first, d = next(iter((objectives or self.objectives).items()))
        return t.sort_values(first, ascending=(d == "min"), kind="stable").reset_index(drop=True)


def _point_keys(table: pd.DataFrame, names) -> pd.Series:
    return table[list(names)].apply(lambda r: json.dumps([None if pd.isna(v) else float(v) for v in r]), axis=1)


def _key(point: dict) -> str:
    return json.dumps(sorted((k, float(v)) for k, v in point.items()))


def generation_seed(seed: int, generation: int) -> int:
    """The sampler's seed in ``generation``: from ``(seed, generation)`` alone, so a resumed search draws what
    an uninterrupted one does."""
    return int(np.random.SeedSequence([int(seed), int(generation)]).generate_state(1)[0])


def _violations(outcomes: dict, constraints: dict) -> dict:
    """``(value - bound) / max(|bound|, 1)`` per constraint: <= 0 feasible; relative, so constraints in
    different units add up fairly in Optuna's constrained domination; a NaN outcome is infinitely in breach."""
    out = {}
    for k, b in constraints.items():
        v = float(outcomes[k])
        out[k] = math.inf if math.isnan(v) else (v - b) / max(abs(b), 1.0)
    return out


def open_storage(storage):
    """The Optuna storage of a search: None (in memory), an Optuna storage, an RDB URL, or a journal file's path.

    * ``sqlite:///path.db`` (or another RDB URL): Optuna's RDB storage. SQLite is opened with ``PRAGMA
      synchronous=OFF``: Optuna commits some twenty times a trial, and commits waiting for the disk made the
      storage slower than the model on small cases. A killed process loses no committed trial that way (SQLite's
      journal keeps every commit atomic); only a crash of the machine itself could corrupt the file.
    * a path (``search.journal``): Optuna's journal storage (:class:`~optuna.storages.JournalStorage` on a
      :class:`~optuna.storages.journal.JournalFileBackend`), an append-only log of the study's operations, each
      flushed to disk. About ten times faster than SQLite here (1.1 s against 13.6 s for 60 trials of a
      two-variable problem on a loaded machine), and it works on network file systems (Slurm clusters), where
      SQLite's locking does not. A last line left unfinished by a kill is cut off before the log is read.
    """
    import optuna

    if storage is None or not isinstance(storage, (str, Path)):
        return storage
    storage = str(storage)
    if "://" in storage:
        if storage.startswith("sqlite:///"):
            import sqlite3

            path = storage[len("sqlite:///"):]

            def connect():
                con = sqlite3.connect(path, timeout=60, check_same_thread=False)
                con.execute("PRAGMA synchronous=OFF")
                return con

            return optuna.storages.RDBStorage(storage, engine_kwargs={"creator": connect})
        return optuna.storages.RDBStorage(storage)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(storage)
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):        # a write cut short by a kill: drop the partial operation
            path.write_bytes(data[:data.rfind(b"\n") + 1])
    return JournalStorage(JournalFileBackend(str(path)))


def _sampler(population: int, seed: int, generation: int, crossover, mutation):
    from optuna.samplers import NSGAIISampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental operators (SBX, polynomial mutation) warn on creation
        return NSGAIISampler(population_size=population, seed=generation_seed(seed, generation),
                             crossover=crossover() if callable(crossover) else crossover,
                             mutation=mutation() if callable(mutation) else mutation)


def _sbx():
    from optuna.samplers.nsgaii import SBXCrossover

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SBXCrossover()


def _polynomial():
    from optuna.samplers.nsgaii import PolynomialMutation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PolynomialMutation()


OPERATORS = {"crossover": {"uniform": None, "sbx": _sbx}, "mutation": {"random": None, "polynomial": _polynomial}}


def search(evaluate_batch: Callable[[list], list], space: Mapping, objectives: Mapping[str, str],
           constraints: Optional[Mapping[str, float]] = None, population: int = 20, generations: int = 10,
           seed: int = 0, storage=None, study_name: str = "search",
           canonical: Optional[Callable[[dict], dict]] = None, crossover: str = "sbx", mutation: str = "polynomial",
           unique: bool = True, tries: int = 10, callback: Optional[Callable] = None) -> SearchResult:
    """NSGA-II over ``space`` (``{name: optuna distribution}``, e.g. :func:`decision_space`), one generation at
    a time: ask ``population`` trials, evaluate their points in one call of ``evaluate_batch`` (a list of
    points -> a list of outcome dicts, in order, e.g. :class:`ModelBatch`), tell them in order.

    * ``objectives``: ``{outcome: "max" | "min"}``; ``constraints``: ``{outcome: bound}``, feasible when
      ``outcome <= bound`` (each trial's relative excess is its Optuna constraint, ``trial.set_constraint``:
      NSGA-II's constrained domination, feasible before infeasible, less violation first).
    * ``canonical``: a point as evaluated (:class:`Canonical`: parameters of switched-off instruments dropped).
      Points are cached by it: a point proposed again (NSGA-II repeats integer and categorical values, and
      crossover copies parents' values) is told its outcomes without running again.
    * ``unique``: a trial whose point was evaluated before (in an earlier generation or this one) is discarded
      (marked failed: NSGA-II counts only completed trials) and asked again, up to ``tries`` times, after which
      the repeat is kept (told its cached outcomes). With common random numbers an evaluation is deterministic,
      so a repeat brings nothing, while a population filled with repeats stops exploring (pymoo's
      ``eliminate_duplicates``; here against every evaluated point, as the cache makes them all known).
    * ``generations``: the total number of generations; a search already holding some in ``storage`` (a
      journal file's path, e.g. ``search.journal``, or an RDB URL, e.g. ``sqlite:///search.db``:
      :func:`open_storage`) continues from its completed trials (a larger number extends it). A study of
      another space, objectives, constraints, population, seed or operators under the same name is refused.
    * ``crossover``: ``"sbx"`` (simulated binary crossover of real variables, Deb's NSGA-II; categorical ones,
      switches and integer levers (:func:`decision_space`), are swapped uniformly) or ``"uniform"``;
      ``mutation``: ``"polynomial"`` (Deb's, on real variables; a categorical one is redrawn uniformly) or
      ``"random"`` (every mutated variable redrawn uniformly, Optuna's default). On the known front of
      tests/analysis/test_optimise.py (ZDT1 in two variables, 32 x 40 trials) SBX and polynomial mutation came within
      0.6% of the true hypervolume, uniform crossover and random redraws within 2-6%.

    **Determinism and resume.** Each generation has a sampler of its own, seeded by ``(seed, generation)``
    (:func:`generation_seed`), and NSGA-II's state lives in the storage (each trial's generation, each
    generation's parents), so a generation's trials depend only on the seed and the completed trials before
    it. A search interrupted anywhere resumes to the trials an uninterrupted one gives (same generations,
    points and outcomes, in order): a generation wholly asked is finished with its own points (those not yet
    told are evaluated and told); a generation partly asked (killed while asking) is discarded (its trials
    marked failed; they count nowhere) and asked again from its seed. Only Optuna's trial *numbers* can
    then differ. Outcomes do not depend on the executor (points are evaluated independently, returned in
    order), so neither do the trials.
    """
    import optuna
    from optuna.distributions import distribution_to_json
    from optuna.trial import TrialState

    objectives = check_objectives(objectives)
    constraints = check_constraints(constraints)
    for name, v in (("population", population), ("generations", generations)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (2 if name == "population" else 1):
            raise ConfigError(f"{name} = {v!r}: must be an integer >= {2 if name == 'population' else 1}")
    if crossover not in OPERATORS["crossover"] or mutation not in OPERATORS["mutation"]:
        raise ConfigError(f"crossover = {crossover!r}, mutation = {mutation!r}: allowed crossover "
                          f"{', '.join(OPERATORS['crossover'])}; mutation {', '.join(OPERATORS['mutation'])}")
    names = list(space)
    canonical = canonical or dict
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    meta = {"space": {k: distribution_to_json(d) for k, d in space.items()}, "objectives": objectives,
            "constraints": constraints, "population": int(population), "seed": int(seed),
            "crossover": crossover, "mutation": mutation, "unique": bool(unique), "tries": int(tries)}
    directions = ["maximize" if d == "max" else "minimize" for d in objectives.values()]
    study = optuna.create_study(storage=open_storage(storage), study_name=study_name, directions=directions,
                                load_if_exists=storage is not None,
                                sampler=_sampler(population, seed, 0, OPERATORS["crossover"][crossover],
                                                 OPERATORS["mutation"][mutation]))
    held = study.user_attrs.get("search")
    if held is None:
        study.set_user_attr("search", meta)
    elif json.loads(json.dumps(held)) != json.loads(json.dumps(meta)):
        diff = sorted(k for k in meta if json.dumps(meta[k], sort_keys=True) != json.dumps(held.get(k), sort_keys=True))
        raise ConfigError(f"storage {storage} study {study_name!r}: holds a search of another {', '.join(diff)}; "
                          "use another study name or storage")

    cache: dict = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        cache.setdefault(_key(t.user_attrs["point"]), t.user_attrs["outcomes"])
    evaluations = 0

    def generation_of(t) -> Optional[int]:
        return t.user_attrs.get("generation")

    def run_generation(g: int, trials: list) -> None:
        nonlocal evaluations
        points = [canonical({k: t.params[k] for k in names}) for t in trials]
        keys = [_key(p) for p in points]
        todo, seen = [], set()
        for k, p in zip(keys, points):
            if k not in cache and k not in seen:
                seen.add(k)
                todo.append((k, p))
        if todo:
            rows = evaluate_batch([p for _, p in todo])
            if isinstance(rows, pd.DataFrame):
                rows = rows.to_dict("records")
            if len(rows) != len(todo):
                raise RuntimeError(f"evaluate_batch returned {len(rows)} rows for {len(todo)} points")
            for (k, _), r in zip(todo, rows):
                missing = [o for o in (*objectives, *constraints) if o not in r]
                if missing:
                    raise ConfigError(f"objectives/constraints: {missing[0]!r} is not an outcome of the evaluation; "
                                      "outcomes: " + ", ".join(r))
                cache[k] = {o: float(v) for o, v in r.items()}
            evaluations += len(todo)
        fresh = {k for k, _ in todo}
        for t, k, p in zip(trials, keys, points):
            out = cache[k]
            values = [out[o] for o in objectives]
            bad = any(math.isnan(v) for v in values)
            if bad:  # told as the worst value, and infeasible: a failed trial would leave the generation short
                values = [(-math.inf if d == "max" else math.inf) if math.isnan(v) else v
                          for v, d in zip(values, objectives.values())]
            trial = optuna.trial.Trial(study, t._trial_id) if not isinstance(t, optuna.trial.Trial) else t
            trial.set_user_attr("point", p)
            trial.set_user_attr("outcomes", out)
            trial.set_user_attr("reused", k not in fresh)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a trial told again after a kill holds the same constraints
                for c, v in _violations(out, constraints).items():
                    trial.set_constraint(c, v)
                if bad:
                    trial.set_constraint("nan_objective", 1.0)
            study.tell(trial, values)
            fresh.discard(k)  # a second trial of the same point in this generation reuses the first's run
        if callback is not None:
            callback(g, evaluations)

    # ---- where the storage left off
    all_trials = study.get_trials(deepcopy=False)
    done = {}
    for t in all_trials:
        if t.state == TrialState.COMPLETE:
            done[generation_of(t)] = done.get(generation_of(t), 0) + 1
    g = 0
    while done.get(g, 0) >= population:
        g += 1
    running = [t for t in all_trials if t.state == TrialState.RUNNING]
    asked = [t for t in all_trials if generation_of(t) == g and t.state in (TrialState.RUNNING, TrialState.COMPLETE)]
    if running:
        if len(asked) == population and all(set(t.params) == set(names) for t in asked) and g < generations:
            study.sampler = _sampler(population, seed, g, OPERATORS["crossover"][crossover],
                                     OPERATORS["mutation"][mutation])
            for t in running:
                if t not in asked:  # a stray trial (none is asked after a generation's last): counts nowhere
                    study.tell(t.number, state=TrialState.FAIL)
            run_generation(g, [t for t in asked if t.state == TrialState.RUNNING])
            g += 1
        else:
            for t in running:  # asked only in part (or beyond the generations wanted): discarded, asked again
                study.tell(t.number, state=TrialState.FAIL)

    # ---- the generations still to run
    while g < generations:
        study.sampler = _sampler(population, seed, g, OPERATORS["crossover"][crossover],
                                 OPERATORS["mutation"][mutation])
        if g > 0:
            # NSGA-II selects a generation's parents at its first ask and stores them; the first child sees them in
            # selection order, the others (read back from the storage) in trial order. Selected here, every child
            # reads them back, so a generation asked again after a kill gets the same children.
            study.sampler.get_parent_population(study, g)
        trials, keys = [], set()
        for _ in range(population):
            for attempt in range(tries):
                t = study.ask(fixed_distributions=dict(space))
                k = _key(canonical({n: t.params[n] for n in names}))
                if not unique or (k not in cache and k not in keys) or attempt == tries - 1:
                    break
                t.set_user_attr("duplicate", True)
                study.tell(t, state=TrialState.FAIL)  # a point evaluated before: asked again (failed trials count nowhere)
            keys.add(k)
            t.set_user_attr("generation", g)
            trials.append(t)
        held_g = {t.system_attrs.get(type(study.sampler)._get_generation_key()) for t in
                  (study._storage.get_trial(t._trial_id) for t in trials)}
        if held_g != {g}:
            raise RuntimeError(f"NSGA-II put generation {g}'s trials in generations {sorted(held_g)}")
        run_generation(g, trials)
        g += 1
    return _result(study, names, objectives, constraints, evaluations, generations)


def _result(study, names, objectives, constraints, evaluations, generations) -> SearchResult:
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        g = t.user_attrs["generation"]
        if g >= generations:
            continue
        p, out = t.user_attrs["point"], t.user_attrs["outcomes"]
        viol = _violations(out, constraints)
        worst = max(viol.values()) if viol else -math.inf
        nan = any(math.isnan(float(out[o])) for o in objectives)
        rows.append({"trial": t.number, "generation": g, **{k: p.get(k, np.nan) for k in names}, **out,
                     "violation": worst, "feasible": bool(worst <= 0 and not nan), "reused": t.user_attrs["reused"]})
    cols = ["trial", "generation", *names]
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=cols + ["violation", "feasible", "reused"])
    return SearchResult(table.reset_index(drop=True), names, objectives, constraints, evaluations)


# --------------------------------------------------------------------------- intervals
def _take(r, idx):
    from .explore import Runs

    return Runs({m: a[idx] for m, a in r.runs.items()},
                None if r.base is None else {m: a[idx] for m, a in r.base.items()}, r.years)


def outcome_interval(name: str, r, level: float = 0.95) -> tuple[float, float, float]:
    """An outcome's value and ``level`` interval from a point's replicates (:class:`sim.analysis.explore.Runs`).

    A mean over replicates: Student t over the per-replicate values (each replicate's outcome on its own:
    paired against baseline on its seed where the outcome needs it). A ratio of means or a percentile
    (:data:`NOT_MEANS`): a percentile bootstrap resampling replicates (paired with their baselines; fixed seed).
    """
    from .explore import OUTCOMES
    from .stats import mean_ci

    o = OUTCOMES[name]
    n = len(next(iter(r.runs.values())))
    if name not in NOT_MEANS:
        per = np.array([o.fn(_take(r, [k])) for k in range(n)], dtype=float)
        return mean_ci(per, level)
    est = float(o.fn(r))
    if n < 2:
        return est, est, est
    gen = np.random.default_rng(BOOTSTRAP_SEED)
    boot = np.sort([o.fn(_take(r, gen.integers(0, n, size=n))) for _ in range(BOOTSTRAP_RESAMPLES)])
    k_lo = int(np.floor((1 - level) / 2 * (boot.size - 1)))
    k_hi = int(np.ceil((1 + level) / 2 * (boot.size - 1)))
    return est, float(boot[k_lo]), float(boot[k_hi])


class _RunsFn:
    """A point's replicate runs (picklable for the executor's processes and Slurm jobs)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, point: dict):
        return self.model.runs(**point)


def intervals(model, points: Sequence[dict], replicates: int, seed: Optional[int] = None, executor=None,
              level: float = 0.95) -> pd.DataFrame:
    """``points`` re-evaluated on ``replicates`` replicates: each outcome's value and ``level`` interval
    (columns ``<outcome>``, ``<outcome>_lo``, ``<outcome>_hi``), one row per point, in order.

    The replicates run on seeds ``seed, seed + 1, ...``, by default fresh ones (``model.seed +
    model.replicates`` on): the points were chosen on the search's seeds, and estimates on the seeds that
    chose them are biased in their favour. With a posterior, replicate ``k`` runs on draw ``k`` of draws
    made with that seed (fresh draws, as the seeds are fresh), so an interval covers seeds and parameters
    together. Points are the
    levers' keys (NaN or a missing key: the base config's value, e.g. a parameter of an instrument off).
    """
    from .explore import ExploratoryModel

    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 2:
        raise ConfigError(f"replicates = {replicates!r}: an interval needs an integer >= 2")
    seed = model.seed + model.replicates if seed is None else int(seed)
    again = ExploratoryModel(model.base, model.uncertainties, model.levers, model.outcomes, int(replicates), seed,
                             model.engine, model.posterior)
    pts = [{k: v for k, v in dict(p).items() if k in again.names and not pd.isna(v)} for p in points]
    runs = executor.map(_RunsFn(again), pts) if executor is not None else [again.runs(**p) for p in pts]
    rows = []
    for r in runs:
        row = {}
        for o in model.outcomes:
            row[o], row[o + "_lo"], row[o + "_hi"] = outcome_interval(o, r, level)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(0, "seed", seed)
    out.insert(0, "replicates", int(replicates))
    return out


# --------------------------------------------------------------------------- the plot
def plot_front(trials: pd.DataFrame, objectives: Mapping[str, str], path, budget: Optional[float] = None,
               spend: str = "gov_spend_per_year", best: Optional[pd.Series] = None,
               front_intervals: Optional[pd.DataFrame] = None, title: str = "") -> None:
    """The front (conversions up, cost right) with the other feasible trials, the infeasible ones in grey, the
    best mix for the budget marked; with the budget line on the spend axis. When the cost objective is not
    ``spend`` a second panel shows the same trials against ``spend``. ``front_intervals``: the front's
    re-evaluated means with ``_lo``/``_hi`` columns, drawn as crosses with error bars. The cost axis spans the
    feasible trials (and the budget); infeasible trials beyond it are counted in the legend. Saved with Agg to
    ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = check_objectives(objectives)
    conv = next((k for k, d in objectives.items() if d == "max"), None)
    cost = next((k for k, d in objectives.items() if d == "min"), None)
    if conv is None or cost is None:
        raise ConfigError("plot_front: needs one objective to maximise (conversions) and one to minimise (a cost)")
    feas = trials["feasible"].to_numpy(dtype=bool)
    on = pareto_front(trials, {conv: "max", cost: "min"}, feas)
    panels = [cost] + ([spend] if spend != cost and spend in trials.columns else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    fi = front_intervals if front_intervals is not None and len(front_intervals) else None
    for ax, x in zip(axes[0], panels):
        xs = trials[x].to_numpy(dtype=float)
        shown = np.isfinite(xs)
        top = [xs[feas & np.isfinite(xs)].max()] if (feas & np.isfinite(xs)).any() else []
        if budget is not None and x == spend:
            top.append(budget)
        if fi is not None and x + "_hi" in fi.columns:
            top.append(float(np.nanmax(fi[x + "_hi"].to_numpy(dtype=float))))
        lo = float(np.nanmin(xs[shown])) if shown.any() else 0.0
        hi = max(top) if top else (float(np.nanmax(xs[shown])) if shown.any() else 1.0)
        pad = 0.08 * (hi - lo if hi > lo else max(abs(hi), 1.0))
        beyond = int(np.sum(~np.isfinite(xs) | (xs > hi + pad)))
        ax.scatter(trials.loc[~feas, x], trials.loc[~feas, conv], s=10, c="0.75",
                   label="infeasible trials" + (f" ({beyond} beyond the axis)" if beyond else ""))
        rest = feas & ~on
        ax.scatter(trials.loc[rest, x], trials.loc[rest, conv], s=12, c="tab:blue", alpha=0.5,
                   label="feasible trials")
        f = trials[on].sort_values(x)
        ax.plot(f[x], f[conv], "o-" if x == cost else "o", c="tab:red", ms=5, lw=1.2,
                label="Pareto front" + ("" if x == cost else f" (of {cost.replace('_', ' ')})"))
        if fi is not None and {x + "_lo", conv + "_lo"} <= set(fi.columns):
            ax.errorbar(fi[x], fi[conv], xerr=[fi[x] - fi[x + "_lo"], fi[x + "_hi"] - fi[x]],
                        yerr=[fi[conv] - fi[conv + "_lo"], fi[conv + "_hi"] - fi[conv]], fmt="x", ms=4,
                        c="tab:red", ecolor="tab:red", alpha=0.45, lw=0.8,
                        label="re-evaluated mean, 95% interval (fresh seeds)")
        if budget is not None and x == spend:
            ax.axvline(budget, c="k", ls="--", lw=1, label=f"budget {budget:,.0f} a year")
        if best is not None:
            ax.scatter([best[x]], [best[conv]], marker="*", s=220, c="gold", edgecolors="k", zorder=5,
                       label="best mix for the budget")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_xlabel(x.replace("_", " ") + (" (yuan)" if "cost" in x or "spend" in x else ""))
        ax.set_ylabel(conv.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
