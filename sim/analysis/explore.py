"""The model as a function of named uncertainties and levers, returning named outcomes (EMA Workbench's shape).

An analyst's exploratory questions (which parameters drive the cost of a conversion, when an
instrument pays off, which mix converts most for a budget) are all asked of one function:

    outcomes = model(**uncertainties, **levers)

* **uncertainties** are parameters nobody controls (firms' risk aversion, a county's need rate, ...):
  :class:`sim.analysis.calibration.Param` s read from a space file (``configs/spaces/<name>.yaml``);
* **levers** are what a government sets: an instrument switched on or off (``use.<instrument>``)
  and an instrument's parameters (``broker_reward.rate``, ``vouchers.cap``, ...), from a levers file
  (``configs/levers/<name>.yaml``);
* **outcomes** are named statistics of the runs (:data:`OUTCOMES`): conversions, extra
  conversions over baseline, public cost a year, cost per extra conversion, the change in
  universities' income, the 95th percentile of insurers' losses, ...

Every point of a design runs the same ``replicates`` seeds (``seed``, ``seed + 1``, ...): common
random numbers, so two points differ by their parameters, not by their luck, and an outcome
against baseline is a paired difference on the same seeds. With a calibration's posterior,
replicate ``k`` also runs on the posterior's draw ``k`` (the same draw at every point), so the
replicates carry parameter uncertainty too.

:meth:`ExploratoryModel.evaluate` runs a design (a list of points) in local processes or on
Slurm (:class:`sim.runs.executor.Executor`), every run on the Numba engine by default with its
invariants checked; :meth:`ExploratoryModel.tasks` gives a point's runs as ``(Config, seed)``
pairs for :func:`sim.api.run_batch`; :meth:`ExploratoryModel.to_ema` wraps the model for EMA
Workbench (``perform_experiments``, its samplers and analyses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .calibration import Param, parse_params, read_yaml_mapping
from ..core.config import Config, ConfigError, one_line, replace
from ..instruments import REGISTRY
from ..core.locations import CONFIG_DIR

LEVERS_DIR = CONFIG_DIR / "levers"
SWITCH = "use."          # a lever "use.<instrument>": the instrument on (1) or off (0)
BASELINE = "baseline"


# --------------------------------------------------------------------------- outcomes
@dataclass(frozen=True)
class Runs:
    """The summaries of a point's replicates (``metric -> array over replicates``), and, when an outcome needs it,
    the baseline's on the same seeds and draws (no instrument on, the point's uncertainties)."""

    runs: dict
    base: Optional[dict]
    years: float

    def diff(self, metric: str) -> np.ndarray:
        """Per-replicate paired difference against baseline (common random numbers)."""
        return self.runs[metric] - self.base[metric]


@dataclass(frozen=True)
class Outcome:
    """A named statistic of a point's replicates."""

    name: str
    doc: str
    kind: str                      # "max", "min" or "info": the direction a policy search takes it in
    metrics: tuple                 # run metrics it reads
    baseline: bool                 # needs the baseline's runs on the same seeds
    fn: Callable[[Runs], float]


def _cost_per_extra(spend: str):
    """Mean extra spend over mean extra expected conversions (the conversions, and the deals running at the horizon
    at their chance, as the main job's :data:`sim.analysis.stats.COSTS`); +inf when the point adds no conversion on average but
    spends more (an unbounded cost); NaN when it adds none and spends nothing more (no cost per conversion to speak
    of: never "cheap")."""
    def fn(r: Runs) -> float:
        d_conv, d_spend = float(r.diff(EXPECTED).mean()), float(r.diff(spend).mean())
        if d_conv > 0:
            return d_spend / d_conv
        return math.inf if d_spend > 0 else math.nan
    return fn


EXPECTED = "successes_expected"   # what a cost per extra conversion divides by (sim.analysis.stats.COSTS)

OUTCOMES: dict[str, Outcome] = {o.name: o for o in (
    Outcome("conversions", "successful implementations over the run, mean over replicates", "max",
            ("successes",), False, lambda r: float(r.runs["successes"].mean())),
    Outcome("extra_conversions", "conversions over baseline on the same seeds, mean over replicates", "max",
            ("successes",), True, lambda r: float(r.diff("successes").mean())),
    Outcome("contracts", "contracts signed over the run, mean over replicates", "max",
            ("contracts",), False, lambda r: float(r.runs["contracts"].mean())),
    Outcome("gov_spend_per_year", "government's payments a year (yuan), mean over replicates", "min",
            ("gov_spend",), False, lambda r: float(r.runs["gov_spend"].mean()) / r.years),
    Outcome("public_cost_per_year", "government's payments less the income public universities keep, a year "
            "(yuan): the public money including universities' forgone income", "min",
            ("public_cost",), False, lambda r: float(r.runs["public_cost"].mean()) / r.years),
    Outcome("extra_public_cost_per_year", "public cost a year over baseline's (yuan; positive: universities' "
            "forgone income and government's payments)", "min",
            ("public_cost",), True, lambda r: float(r.diff("public_cost").mean()) / r.years),
    Outcome("cost_per_extra_conversion", "government's extra payments per extra conversion (yuan; inf: spends "
            "and adds none; NaN: adds none and spends nothing more)", "min", ("gov_spend", EXPECTED), True,
            _cost_per_extra("gov_spend")),
    Outcome("cost_per_extra_conversion_public", "extra public cost (with universities' forgone income) per extra "
            "conversion (yuan; inf: costs and adds none; NaN: adds none, costs nothing more)", "min",
            ("public_cost", EXPECTED), True,
            _cost_per_extra("public_cost")),
    Outcome("university_income_change", "universities' income over baseline's, over the run (yuan; negative: "
            "they lose income)", "max", ("university_income",), True,
            lambda r: float(r.diff("university_income").mean())),
    Outcome("insurer_loss_p95", "95th percentile over replicates of insurers' loss over the run (yuan: claims and "
            "costs less premiums and subsidies; 0 when they gain)", "min", ("net_insurers",), False,
            lambda r: float(np.percentile(np.maximum(-r.runs["net_insurers"], 0.0), 95))),
    Outcome("firms_below_start", "share of firms holding less cash than at the start, at the end, mean over "
            "replicates", "min", ("firms_below_start",), False, lambda r: float(r.runs["firms_below_start"].mean())),
)}


# where each outcome's values lie (a stored value outside is not the model's: the part holding it is recomputed)
_COUNT = lambda v: np.isfinite(v) & (v >= 0)  # noqa: E731
_FINITE = np.isfinite
DOMAINS: dict[str, Callable] = {
    "conversions": _COUNT, "contracts": _COUNT, "gov_spend_per_year": _COUNT, "insurer_loss_p95": _COUNT,
    "extra_conversions": _FINITE, "public_cost_per_year": _FINITE, "extra_public_cost_per_year": _FINITE,
    "university_income_change": _FINITE,
    "cost_per_extra_conversion": lambda v: np.isnan(v) | (v > -np.inf),  # +inf / NaN by definition (see the outcome)
    "cost_per_extra_conversion_public": lambda v: np.isnan(v) | (v > -np.inf),
    "firms_below_start": lambda v: np.isfinite(v) & (v >= 0) & (v <= 1),
}


def outside_domain(table, outcomes) -> Optional[str]:
    """The first outcome of ``table`` with a value outside its domain (:data:`DOMAINS`), as ``"<name> = <value>"``;
    None when every value is one the model can give."""
    for name in outcomes:
        if name in DOMAINS and name in table.columns:
            v = table[name].to_numpy(dtype=float)
            bad = ~DOMAINS[name](v)
            if bad.any():
                return f"{name} = {float(v[bad][0])!r}"
    return None


def check_outcomes(names, key: str = "outcomes") -> list[str]:
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ConfigError(f"{key} = {names!r}: must be a non-empty list of outcomes; allowed: " + ", ".join(OUTCOMES))
    for n in names:
        if n not in OUTCOMES:
            raise ConfigError(f"{key}: unknown outcome {n!r}; allowed: " + ", ".join(OUTCOMES))
    if len(set(names)) != len(names):
        raise ConfigError(f"{key} = {list(names)}: each outcome once")
    return list(names)


# --------------------------------------------------------------------------- levers
@dataclass(frozen=True)
class Levers:
    """What a government sets: instruments it may switch on (``use.<name>``) and instrument parameters' ranges."""

    name: str
    switches: tuple = ()           # instrument names
    params: tuple = ()             # Param s

    @property
    def keys(self) -> list[str]:
        return [SWITCH + s for s in self.switches] + [p.key for p in self.params]


def levers_path(name_or_path: str) -> Path:
    path = Path(name_or_path) if str(name_or_path).endswith((".yaml", ".yml")) else LEVERS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in LEVERS_DIR.glob("*.yaml")))
        raise ConfigError(f"levers = {name_or_path}: no such levers file; allowed: {names} (or a YAML file)")
    return path


def load_levers(name_or_path: str) -> Levers:
    """Read and validate a levers file: ``instruments: [...]`` (switches) and ``parameters: {key: {low, high}}``."""
    path = levers_path(name_or_path)
    data = read_yaml_mapping(path, "levers")
    unknown = sorted(set(data) - {"name", "instruments", "parameters"}, key=str)
    if unknown:
        raise ConfigError(f"unknown key 'levers.{one_line(unknown[0], 80)}' in {path}: allowed are name, instruments, "
                          "parameters")
    switches = data.get("instruments") or []
    if not isinstance(switches, list) or any(s not in REGISTRY for s in switches) or len(set(switches)) < len(switches):
        raise ConfigError(f"levers.instruments = {switches!r}: must be a list of distinct instruments; allowed: "
                          + ", ".join(REGISTRY))
    params = parse_params(data["parameters"], "levers.parameters") if data.get("parameters") else ()
    for p in params:  # a lever is what a government sets; it must leave the baseline (no instrument on) alone
        if p.key.startswith("scenario."):
            raise ConfigError(f"levers.parameters.{p.key}: a scenario's key is an uncertainty, not a lever; levers "
                              "are instruments' parameters (their sections) and government's")
    if not switches and not params:
        raise ConfigError(f"levers = {path}: needs instruments or parameters")
    return Levers(str(data.get("name", path.stem)), tuple(switches), params)


# --------------------------------------------------------------------------- the model
@dataclass
class ExploratoryModel:
    """A regime on a scenario as a function of uncertainties and levers, returning :data:`OUTCOMES`.

    ``base`` is a validated config: its regime's instruments are on unless a lever switches
    them (``use.<name>``); its scenario and parameters hold wherever a point does not set them.
    """

    base: Config
    uncertainties: tuple = ()      # Param s
    levers: Levers = field(default_factory=lambda: Levers("none"))
    outcomes: tuple = ("conversions",)
    replicates: int = 4
    seed: int = 0
    engine: str = "numba"
    posterior: object = None       # a sim.runs.posterior.Posterior, or None
    _draws: Optional[list] = field(default=None, repr=False)
    _baselines: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.base.engine != self.engine:
            self.base = replace(self.base, engine=self.engine)
        self.outcomes = tuple(check_outcomes(list(self.outcomes)))
        if isinstance(self.replicates, bool) or not isinstance(self.replicates, int) or self.replicates < 1:
            raise ConfigError(f"replicates = {self.replicates!r}: must be an integer >= 1")
        keys = [p.key for p in self.uncertainties] + self.levers.keys
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ConfigError(f"{twice[0]}: both an uncertainty and a lever (or listed twice); each key once")
        if self.posterior is not None:
            both = sorted(set(keys) & set(self.posterior.keys))
            if both:
                raise ConfigError(f"{both[0]}: set both by the posterior and by the design; drop it from one")
            # draw k for replicate k, drawn by the model's own seed (a model of another seed draws afresh)
            self._draws = self.posterior.configs(self.base, self.posterior.sample(self.seed, self.replicates))

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict:
        """What this model's numbers depend on (the regime, the config as numbers, the uncertainties and levers, the
        replicates' seeds, the engine, the posterior, the model's sources): written into each Parquet part of a design
        (:func:`sim.analysis.designs.run_design`) and compared before the part is reused."""
        import hashlib
        import json

        from ..core.config import replace as _replace
        from ..core.engine_cache import source_hash

        def dig(obj) -> str:
            return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]

        post = None
        if self.posterior is not None:
            post = dig([list(self.posterior.keys),
                        [list(map(float, v)) for v in self.posterior.values], list(map(float, self.posterior.weights))])
        return {"regime": self.base.regime.name, "scenario": self.base.scenario.name,
                "config": dig(repr(_replace(self.base, progress=False, workers=1))),
                "uncertainties": [[p.key, p.low, p.high, p.scale, p.integer] for p in self.uncertainties],
                "levers": self.levers.keys, "replicates": self.replicates, "seed": self.seed, "engine": self.engine,
                "posterior": post, "model_sources": source_hash()[:16]}

    # ------------------------------------------------------------------ names
    @property
    def names(self) -> list[str]:
        """A point's keys: the uncertainties', then the levers'."""
        return [p.key for p in self.uncertainties] + self.levers.keys

    @property
    def years(self) -> float:
        return self.base.scenario.months / 12.0

    @property
    def needs_baseline(self) -> bool:
        return any(OUTCOMES[o].baseline for o in self.outcomes)

    # ------------------------------------------------------------------ configs
    def _values(self, point: dict, params) -> dict:
        out = {}
        for p in params:
            if p.key in point:
                v = float(point[p.key])
                out[p.key] = int(round(v)) if p.integer else v
        return out

    def _with(self, cfg: Config, values: dict) -> Config:
        return replace(cfg, **values) if values else cfg

    def configs(self, point: dict) -> list[Config]:
        """The config of each replicate of ``point`` (a posterior's draw each, else the base)."""
        unknown = sorted(set(point) - set(self.names))
        if unknown:
            raise ConfigError(f"point key {unknown[0]!r}: not an uncertainty or lever; allowed: " + ", ".join(self.names))
        values = {**self._values(point, self.uncertainties), **self._values(point, self.levers.params)}
        if self.levers.switches:
            on = {s for s in self.levers.switches if bool(round(float(point.get(SWITCH + s, 0))))}
            fixed = [i for i in self.base.regime.instruments if i not in self.levers.switches]
            instruments = [i for i in REGISTRY if i in on or i in fixed]
            values["regime.instruments"] = instruments
            values["regime.name"] = "+".join(instruments) or BASELINE
        bases = self._draws or [self.base]
        made = {id(c): self._with(c, values) for c in bases}
        return [made[id(bases[k % len(bases)])] for k in range(self.replicates)]

    def baseline_configs(self, point: dict) -> list[Config]:
        """The baseline of ``point``: no instrument on, the point's uncertainties, the same draws."""
        values = {**self._values(point, self.uncertainties), "regime.instruments": [], "regime.name": BASELINE}
        bases = self._draws or [self.base]
        made = {id(c): self._with(c, values) for c in bases}
        return [made[id(bases[k % len(bases)])] for k in range(self.replicates)]

    def normalise(self, point: dict) -> dict:
        """``point`` as it runs: integer parameters rounded, switches 0 or 1 (the table records what ran)."""
        out = dict(point)
        for p in (*self.uncertainties, *self.levers.params):
            if p.integer and p.key in out:
                out[p.key] = float(round(float(out[p.key])))
        for s in self.levers.switches:
            if SWITCH + s in out:
                out[SWITCH + s] = float(bool(round(float(out[SWITCH + s]))))
        return out

    def tasks(self, point: dict) -> list[tuple[Config, int]]:
        """The runs of ``point`` as ``(Config, seed)`` pairs for :func:`sim.api.run_batch` (baseline's not included)."""
        return [(c, self.seed + k) for k, c in enumerate(self.configs(point))]

    # ------------------------------------------------------------------ evaluation
    def _metrics(self, configs: list[Config], needed: set) -> dict:
        from ..runs.parallel import run_validated

        rows = [r.summary for r in run_validated([(c, self.seed + k) for k, c in enumerate(configs)])]
        return {m: np.array([r[m] for r in rows], dtype=float) for m in needed}

    def _baseline_key(self, point: dict) -> tuple:
        return tuple(float(point[p.key]) if p.key in point else None for p in self.uncertainties)

    def runs(self, **point) -> Runs:
        """The run metrics of one point's replicates (and its baseline's when an outcome needs it), from which its
        outcomes are computed: per-replicate values and intervals (:func:`sim.analysis.optimise.intervals`) start here."""
        needed = {m for o in self.outcomes for m in OUTCOMES[o].metrics}
        runs = self._metrics(self.configs(point), needed)
        base = None
        if self.needs_baseline:
            key = self._baseline_key(point)
            if key not in self._baselines:  # a baseline depends on the uncertainties alone: run once per scenario
                self._baselines[key] = self._metrics(self.baseline_configs(point), needed)
            base = self._baselines[key]
        return Runs(runs, base, self.years)

    def __call__(self, **point) -> dict:
        """The outcomes of one point (its replicates run here, one after another)."""
        r = self.runs(**point)
        return {o: OUTCOMES[o].fn(r) for o in self.outcomes}

    @property
    def runs_per_point(self) -> int:
        return self.replicates * (2 if self.needs_baseline else 1)

    def evaluate(self, points: Sequence[dict], executor=None, progress: bool = False, desc: str = "points"):
        """Outcomes of every point, as a DataFrame (the points' columns, then the outcomes'), in order.

        ``executor``: a :class:`sim.runs.executor.Executor` (local processes or Slurm), or None to run here.
        Results do not depend on it.
        """
        import pandas as pd

        points = [self.normalise(p) for p in points]
        for p in points[:1]:
            self.configs(p)  # a bad point is refused here, in one line, before any process starts
        if executor is None:
            from ..runs.parallel import progress_bar

            bar = progress_bar(len(points), desc, disable=not progress)
            rows = []
            for p in points:
                rows.append(self(**p))
                bar.update(1)
            bar.close()
        else:
            rows = executor.map(_PointFn(self), points)
        return pd.concat([pd.DataFrame(points, columns=self.names).reset_index(drop=True),
                          pd.DataFrame(rows, columns=list(self.outcomes))], axis=1)

    # ------------------------------------------------------------------ EMA Workbench
    def to_ema(self, name: str = "techtransfer"):
        """An ``ema_workbench.Model`` calling this model: uncertainties, levers and outcomes by name.

        EMA passes names as keyword arguments; dotted keys are passed as ``a__b`` and mapped back
        (:func:`from_ema`); a log-scale parameter is EMA's ``log__a__b``, its logarithm, sampled
        uniformly as our designs sample it.
        """
        import warnings

        with warnings.catch_warnings():  # its optional cluster evaluator's missing package, said on import
            warnings.filterwarnings("ignore", message="ipyparallel not installed")
            from ema_workbench import BooleanParameter, IntegerParameter, Model, RealParameter, ScalarOutcome

        def param(p: Param):
            if p.scale == "log" and not p.integer:  # EMA samples uniformly: on the logarithm, as our designs do
                return RealParameter(LOG + p.name, math.log(p.low), math.log(p.high))
            cls = IntegerParameter if p.integer else RealParameter
            low, high = (int(p.low), int(p.high)) if p.integer else (p.low, p.high)
            return cls(p.name, low, high)

        model = Model(name, function=_EmaFunction(self))
        model.uncertainties = [param(p) for p in self.uncertainties]
        model.levers = ([BooleanParameter(ema_name(SWITCH + s)) for s in self.levers.switches]
                        + [param(p) for p in self.levers.params])
        kinds = {"max": ScalarOutcome.MAXIMIZE, "min": ScalarOutcome.MINIMIZE, "info": ScalarOutcome.INFO}
        model.outcomes = [ScalarOutcome(o, kind=kinds[OUTCOMES[o].kind]) for o in self.outcomes]
        return model


LOG = "log__"   # EMA's name of a log-scale parameter: its logarithm, sampled uniformly


def ema_name(key: str) -> str:
    """A dotted key as a Python identifier (EMA passes parameters as keyword arguments)."""
    return key.replace(".", "__")


def from_ema(name: str, value) -> tuple[str, float]:
    """EMA's keyword argument back to our dotted key and value (a log-scale parameter exponentiated)."""
    value = float(value)
    if name.startswith(LOG):
        return name[len(LOG):].replace("__", "."), math.exp(value)
    return name.replace("__", "."), value


class _EmaFunction:
    """The model's function with EMA's names (picklable, so EMA's multiprocessing evaluator can use it too)."""

    def __init__(self, model: ExploratoryModel):
        self.model = model

    def __call__(self, **kwargs):
        return self.model(**dict(from_ema(k, v) for k, v in kwargs.items()))


class _PointFn:
    """One point's outcomes (picklable for the executor's processes and Slurm jobs)."""

    def __init__(self, model: ExploratoryModel):
        self.model = model

    def __call__(self, point: dict) -> dict:
        return self.model(**point)


# --------------------------------------------------------------------------- building one
def build_model(base: Config, space=None, parameters: Optional[Sequence[str]] = None, levers: Optional[Levers] = None,
                outcomes: Sequence[str] = ("conversions",), replicates: int = 4, seed: int = 0,
                engine: str = "numba", posterior: Optional[str] = None) -> ExploratoryModel:
    """An :class:`ExploratoryModel` from a space (its ``parameters`` only, or all of them) and levers.

    Parameters that do not apply to ``base``'s scenario (``Param.scenarios``) are refused: they would be inert by
    construction, not by the model.
    """
    uncertainties = ()
    if space is not None:
        params = space.params
        if parameters is not None:
            known = {p.key: p for p in params}
            for k in parameters:
                if k not in known:
                    raise ConfigError(f"parameters: {k!r} is not in space {space.name}; allowed: " + ", ".join(known))
            params = tuple(known[k] for k in parameters)
        for p in params:
            if not p.applies_to(base.scenario.name):
                raise ConfigError(f"parameters: {p.key!r} applies to scenarios {list(p.scenarios)} only, "
                                  f"not to {base.scenario.name!r}")
        uncertainties = tuple(params)
    post = None
    if posterior is not None:
        from ..runs.posterior import load_posterior

        post = load_posterior(posterior)
    return ExploratoryModel(base, uncertainties, levers or Levers("none"), tuple(outcomes), replicates, seed, engine,
                            post)
