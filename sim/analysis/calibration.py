"""Calibration to reported figures: a Morris screen, then ABC-SMC (pyabc), then posterior predictions.

The pieces, each usable alone (``experiments/calibrate.py`` chains them):

* :class:`Space`: the free parameters and their ranges (``configs/spaces/<name>.yaml``);
* :class:`TargetModel`: a parameter vector -> the statistics of a set of targets, each
  computed in its own setting (``sim.analysis.targets``), on the Numba engine, every run's
  invariants checked;
* :func:`morris_screen`: elementary effects (SALib) of every free parameter on every fitted
  target, in units of the target's uncertainty, to keep the few that matter;
* :func:`run_abc`: approximate Bayesian computation by sequential Monte Carlo with pyabc,
  its history in a SQLite database (resumable after a kill), the distance a Euclidean
  norm of the errors in units of each target's sigma (sampling sd and model discrepancy);
  the particles of a generation are simulated by :class:`OrderedSampler`, which makes the
  result independent of the number of processes;
* :func:`predictive`: the posterior predictive distribution of every target, fitted and
  held out, and :func:`fit_table`, which flags the targets the model cannot meet (misfits).

Why ABC-SMC (and pyabc): the model is stochastic with no likelihood, a dozen targets with
stated uncertainties fit the ABC distance directly, and pyabc is maintained, keeps every
generation in a database (a run can be resumed) and adapts the tolerance and the proposal.
History matching would rule out implausible regions but gives no posterior to carry into
the policy runs; neural simulation-based inference would need far more runs to train
than the few thousand a laptop calibration has.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..core.config import Config, ConfigError, one_line, parameter_keys, replace
from ..runs.executor import Executor  # noqa: F401  (re-exported: the calibration's runner)
from ..core.locations import CONFIG_DIR
from ..core.schema import is_finite_number
from .targets import Setting, Target, TargetSet

SPACES_DIR = CONFIG_DIR / "spaces"


# --------------------------------------------------------------------------- the parameter space
@dataclass(frozen=True)
class Param:
    """A free parameter: its dotted key, range, prior scale, and the scenarios it applies to."""

    key: str
    low: float
    high: float
    scale: str = "linear"        # "linear" or "log": uniform prior on the value or on its logarithm
    integer: bool = False
    scenarios: Optional[tuple] = None  # None: every scenario
    why: str = ""

    @property
    def name(self) -> str:
        """The parameter's name in pyabc's database (no dots)."""
        return self.key.replace(".", "__")

    def to_unit(self, value: float) -> float:
        """The value in the prior's coordinates (the log for a log-scale parameter)."""
        return math.log(value) if self.scale == "log" else float(value)

    def from_unit(self, x: float) -> float:
        v = math.exp(x) if self.scale == "log" else float(x)
        v = float(round(v)) if self.integer else v
        return min(max(v, self.low), self.high)

    @property
    def bounds(self) -> tuple[float, float]:
        """The prior's range in its coordinates; an integer's is widened by half a step each side, so that every
        value, the ends included, has the same prior mass once rounded."""
        if self.integer and self.scale == "linear":
            return self.low - 0.5, self.high + 0.5
        return self.to_unit(self.low), self.to_unit(self.high)

    def applies_to(self, scenario: str) -> bool:
        return self.scenarios is None or scenario in self.scenarios


@dataclass(frozen=True)
class Space:
    name: str
    params: tuple

    def subset(self, keys: Sequence[str]) -> "Space":
        by_key = {p.key: p for p in self.params}
        return Space(self.name, tuple(by_key[k] for k in keys))

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]


def space_path(name_or_path: str) -> Path:
    """``configs/spaces/<name>.yaml`` for a name, else the file given."""
    path = Path(name_or_path) if name_or_path.endswith((".yaml", ".yml")) else SPACES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
        raise ConfigError(f"space = {name_or_path}: no such parameter space; allowed: {names} (or a YAML file)")
    return path


def read_yaml_mapping(path: Path, key: str) -> dict:
    """A YAML file's content as a mapping, or a one-line ConfigError naming ``key`` (the config key that chose it)."""
    from omegaconf import OmegaConf

    from ..core.yamlsafe import YamlError, read_yaml

    try:
        raw = read_yaml(path, omegaconf=True)   # within limits: no alias bomb, no huge file
    except YamlError as e:
        raise ConfigError(f"{key} = {path}: not a readable YAML file ({e.reason})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{key} = {path}: must be a YAML mapping")
    try:
        # interpolations (${...}) are read as plain text, never resolved: OmegaConf resolves `b: ${a}${a}`,
        # `c: ${b}${b}`, ... anew at each reference, so a file of a few lines would take hours (no file of ours has one)
        data = OmegaConf.to_container(OmegaConf.create(raw), resolve=False)
    except Exception as e:  # noqa: BLE001  (any parse error of a user's file: one line)
        raise ConfigError(f"{key} = {path}: not a readable YAML file ({one_line(e, 160)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{key} = {path}: must be a YAML mapping")
    return data


def parse_params(entries, where: str, allow_regime: bool = False) -> tuple:
    """Validate ``{dotted key: {low, high, scale, integer, scenarios, why}}`` into :class:`Param` s.

    Every value of a range must be one the schema accepts (checked at both ends), so a design drawn from it runs.
    """
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{where}: must be a non-empty mapping of dotted keys to {{low, high}}")
    keys = set(parameter_keys())
    defaults = Config()
    params = []
    for key, d in entries.items():
        at = f"{where}.{one_line(key, 80)}"   # (a key of a file: any text, one line shown)
        if key not in keys or (key.startswith("regime.") and not allow_regime):
            raise ConfigError(f"{at}: unknown key; must be a model parameter (docs/reference/parameters.md)")
        if not isinstance(d, dict):
            raise ConfigError(f"{at} = {d!r}: must be a mapping with low, high")
        unknown = sorted(set(d) - {"low", "high", "scale", "integer", "scenarios", "why"}, key=str)
        if unknown:
            raise ConfigError(f"unknown key '{at}.{one_line(unknown[0], 80)}': allowed are low, high, scale, integer, "
                              "scenarios, why")
        low, high = d.get("low"), d.get("high")
        for k, v in (("low", low), ("high", high)):
            if not is_finite_number(v):  # (1 and 400 zeros: no float, refused here)
                raise ConfigError(f"{at}.{k} = {v!r}: must be a finite number")
        if not low < high:
            raise ConfigError(f"{at}: low = {low} must be < high = {high}")
        scale = d.get("scale", "linear")
        if scale not in ("linear", "log") or (scale == "log" and low <= 0):
            raise ConfigError(f"{at}.scale = {scale!r}: must be linear or log (log needs low > 0)")
        integer = d.get("integer", False)
        if not isinstance(integer, bool):
            raise ConfigError(f"{at}.integer = {integer!r}: must be true or false")
        for v in (low, high):  # every value of the range must be one the schema accepts
            try:
                replace(defaults, **{key: int(v) if integer else float(v)})
            except ConfigError as e:
                raise ConfigError(f"{at}: {e}") from None
        scenarios = d.get("scenarios")
        if scenarios is not None and (not isinstance(scenarios, list) or not all(isinstance(s, str) for s in scenarios)):
            raise ConfigError(f"{at}.scenarios = {scenarios!r}: must be a list of scenario names or null")
        params.append(Param(key, float(low), float(high), scale, integer,
                            tuple(scenarios) if scenarios is not None else None, str(d.get("why", ""))))
    return tuple(params)


def load_space(name_or_path: str) -> Space:
    """Read and validate a parameter space (a name of ``configs/spaces/`` or a path)."""
    path = space_path(name_or_path)
    data = read_yaml_mapping(path, "space")
    entries = data.get("parameters")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"space = {path}: must have a non-empty mapping 'parameters'")
    return Space(str(data.get("name", path.stem)), parse_params(entries, "space.parameters"))


# --------------------------------------------------------------------------- the model as a function
@dataclass
class TargetModel:
    """Parameters -> the statistics of ``targets``, each in its setting, averaged over the setting's seeds.

    A parameter applies to a setting when it applies to the setting's scenario (``Param.scenarios``) and the
    setting does not fix that key itself (its ``overrides`` describe where the figure was measured: they win).
    """

    targets: list
    settings: list
    base: dict                      # setting name -> its validated Config
    space: Space
    runs: int = field(default=0)    # runs this process has made (a benchmark's count)

    @classmethod
    def build(cls, target_set: TargetSet, targets: Sequence[Target], space: Space, config_dirs=()) -> "TargetModel":
        settings = target_set.settings_for(targets)
        return cls(list(targets), settings, {s.name: s.config(config_dirs) for s in settings}, space)

    @property
    def runs_per_evaluation(self) -> int:
        return sum(s.seeds for s in self.settings)

    def config(self, setting: Setting, theta: dict) -> Config:
        """The setting's config with the parameters of ``theta`` (dotted key -> value) that apply to it."""
        over = {p.key: (int(theta[p.key]) if p.integer else float(theta[p.key]))
                for p in self.space.params
                if p.key in theta and p.applies_to(setting.scenario) and p.key not in setting.overrides}
        return replace(self.base[setting.name], **over) if over else self.base[setting.name]

    def __call__(self, theta: dict, seed: int) -> dict:
        """{target name: statistic}; a setting's replicate k runs seed ``seed + k`` (invariants checked)."""
        from ..runs.parallel import run_validated

        from .targets import metric_names

        configs = [self.config(s, theta) for s in self.settings]
        every = run_validated([(cfg, seed + k) for s, cfg in zip(self.settings, configs) for k in range(s.seeds)])
        self.runs += len(every)
        out, done = {}, 0
        for s, cfg in zip(self.settings, configs):   # a batch of every setting's runs, checked and summarised together
            runs = [r.summary for r in every[done:done + s.seeds]]
            done += s.seeds
            mine = [t for t in self.targets if t.setting == s.name]
            needed = set().union(*(metric_names(t.statistic) for t in mine))
            means = {m: sum(r[m] for r in runs) / len(runs) for m in needed}
            for t in mine:
                out[t.name] = t.evaluate(means, cfg)
        return out


def distance(sim: dict, obs: dict, sigma: dict) -> float:
    """Euclidean norm of the errors in units of each target's sigma; inf where a statistic is undefined."""
    total = 0.0
    for name, s in sigma.items():
        x = sim[name]
        if not math.isfinite(x):
            return math.inf
        total += ((x - obs[name]) / s) ** 2
    return math.sqrt(total)


# --------------------------------------------------------------------------- Morris screening
def _evaluate_point(model: TargetModel, seed: int):
    def run(theta):
        return model(theta, seed)
    return run


def morris_screen(model: TargetModel, trajectories: int, seed: int, executor: Executor, levels: int = 4):
    """Elementary effects of every parameter of ``model.space`` on every target, in units of the target's sigma.

    Returns ``(table, runs)``: one row per parameter, ``mu_star`` (the largest over the
    targets of the mean absolute elementary effect divided by the target's sigma, with
    the range of the parameter as its step unit), its bootstrap confidence half-width,
    ``sigma`` (spread of the effects: interactions and non-linearity), and one column per
    target. Every point of the design runs on the same seeds (common random numbers), so
    an effect is a difference of two runs that share their chance events.
    """
    import pandas as pd
    from SALib.analyze import morris as morris_analyze
    from SALib.sample import morris as morris_sample

    space = model.space
    problem = {"num_vars": len(space.params), "names": space.keys,
               "bounds": [list(p.bounds) for p in space.params]}
    X = morris_sample.sample(problem, N=trajectories, num_levels=levels, seed=seed)
    thetas = [{p.key: p.from_unit(x) for p, x in zip(space.params, row)} for row in X]
    stats = executor.map(_evaluate_point(model, seed), thetas)
    rows = {p.key: {} for p in space.params}
    combined = {p.key: (0.0, 0.0, 0.0) for p in space.params}
    for t in model.targets:
        y = np.array([s[t.name] for s in stats], dtype=float)
        y = np.where(np.isfinite(y), y, np.nanmedian(y) if np.isfinite(y).any() else 0.0) / t.sigma
        res = morris_analyze.analyze(problem, X, y, num_levels=levels, seed=seed, print_to_console=False)
        for i, p in enumerate(space.params):
            mu, conf, sd = float(res["mu_star"][i]), float(res["mu_star_conf"][i]), float(res["sigma"][i])
            rows[p.key][t.name] = mu
            if mu > combined[p.key][0]:
                combined[p.key] = (mu, conf, sd)
    table = pd.DataFrame([{"parameter": k, "mu_star": combined[k][0], "mu_star_conf": combined[k][1],
                           "sigma": combined[k][2], **rows[k]} for k in rows])
    return table.sort_values("mu_star", ascending=False, ignore_index=True), len(thetas) * model.runs_per_evaluation


SCREEN_COLUMNS = ("parameter", "mu_star", "mu_star_conf", "sigma")  # then one column per target (morris_screen)


def read_screen(path, keys: Sequence[str], targets: Sequence[str]):
    """A screen stored by :func:`morris_screen` (``screen.csv``), read back: ``(table, None)``, or ``(None, why)``
    when it is not a screen of these parameters (``keys``) on these targets, or its numbers could not have come out
    of one: every effect finite and >= 0, each parameter once, its ``mu_star`` the largest of its per-target effects
    (re-derived), the rows in decreasing ``mu_star``. Such a file was edited or damaged: its caller moves it aside
    and screens again."""
    import io

    import pandas as pd

    from ..core.yamlsafe import YamlError, read_bytes

    try:  # a regular file within 1 MiB (never a FIFO): a screen of 10^3 parameters x 10^2 targets is smaller
        table = pd.read_csv(io.BytesIO(read_bytes(Path(path), kind="a screen")))
    except YamlError as e:
        return None, e.reason
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        return None, f"not a readable table ({one_line(e, 80)})"
    columns = [*SCREEN_COLUMNS, *targets]
    if sorted(map(str, table.columns)) != sorted(columns):
        return None, f"its columns are not {', '.join(columns)}"
    names = [str(k) for k in table["parameter"]]
    if sorted(names) != sorted(keys):
        return None, "not a screen of this space's parameters (each once)"
    values = table[list(columns[1:])]
    try:
        numbers = values.to_numpy(dtype=float)
    except (TypeError, ValueError):
        return None, "a value that is not a number"
    if not (np.isfinite(numbers).all() and (numbers >= 0).all()):
        return None, "an effect that is not a finite number >= 0"
    effects = table[list(targets)].to_numpy(dtype=float)
    largest = effects.max(axis=1) if len(targets) else np.zeros(len(table))
    if not np.allclose(table["mu_star"].to_numpy(dtype=float), largest, rtol=1e-12, atol=0):
        return None, "a mu_star that is not its parameter's largest effect on a target"
    if (np.diff(table["mu_star"].to_numpy(dtype=float)) > 0).any():
        return None, "rows not in decreasing mu_star"
    return table, None


def informs(table, keys: Sequence[str], threshold: float) -> dict:
    """Which fitted target informs which parameter: for each of ``keys``, the targets on which the Morris screen
    (``table`` of :func:`morris_screen`) measured an effect of at least ``threshold`` target sigmas, largest first,
    as ``[(target, mu_star)]``."""
    targets = [c for c in table.columns if c not in ("parameter", "mu_star", "mu_star_conf", "sigma")]
    rows = table.set_index("parameter")
    out = {}
    for key in keys:
        effects = [(t, float(rows.loc[key, t])) for t in targets if float(rows.loc[key, t]) >= threshold]
        out[key] = sorted(effects, key=lambda te: -te[1])
    return out


def select_parameters(table, keep: int, threshold: float) -> list[str]:
    """The parameters to fit: the ``keep`` largest effects, of those whose effect is at least ``threshold`` sigmas."""
    chosen = table[table["mu_star"] >= threshold].head(keep)
    return list(chosen["parameter"])


def union_of_screens(kept: Sequence[str], again: Sequence[str]) -> list[str]:
    """The parameters fitted after two screens: those either keeps (the first screen's in its order, then the second's
    others). The cut at ``keep`` falls among parameters of similar effect, so neither screen's noise may leave an
    influential parameter at its default."""
    return list(kept) + [k for k in again if k not in kept]


# --------------------------------------------------------------------------- ABC-SMC
def _candidate_seed(seed: int, t: int, index: int) -> int:
    """A candidate's random state: a pure function of the calibration's seed, the generation and its index."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(f"{seed}/{t}/{index}".encode(), digest_size=8).digest(), "little")


def _simulate_candidate(simulate_one, seed: int, t: int):
    def run(index):
        state = _candidate_seed(seed, t, index)
        np.random.seed(state % 2**32)
        random.seed(state)
        return simulate_one()
    return run


def _ordered_sampler_class():
    from pyabc.sampler import Sampler

    class OrderedSampler(Sampler):
        """Candidates of a generation are numbered; candidate i's random state is a function of (seed, t, i).

        They are simulated in batches (in parallel, in any order) and taken in their
        numbering until ``n`` are accepted, so the generation does not depend on the number
        of processes or on which finished first. A batch is sized from the acceptance
        rate seen so far in the run (deterministic); evaluations past the ``n``-th
        acceptance are discarded (not counted).
        """

        def __init__(self, executor: Executor, seed: int, budget: float = math.inf, on_batch=None):
            super().__init__()
            self.executor, self.seed, self.rate, self.evaluated = executor, seed, 1.0, 0
            self.budget = budget  # evaluations this sampler may still make (a hard cap)
            self.on_batch = on_batch  # called with self.evaluated after each batch (to persist what was spent)

        def sample_until_n_accepted(self, n, simulate_one, t, *, max_eval=np.inf, all_accepted=False, ana_vars=None):
            sample = self._create_empty_sample()
            accepted, index = 0, 0
            left = self.budget - self.evaluated
            # the budget cannot pay for this generation: stop before it (acceptance falls from one generation to the
            # next, by about half late in a run: the last rate, halved, is the estimate)
            if n / max(0.5 * self.rate, 1e-3) > left:
                sample.ok = False
                self.nr_evaluations_ = 0
                return sample
            run = _simulate_candidate(simulate_one, self.seed, t)
            while accepted < n and index < max_eval:
                size = int(min(max(math.ceil((n - accepted) / max(self.rate, 0.02) * 1.1), 8), 20 * n,
                               self.budget - self.evaluated))
                if size <= 0:
                    break
                batch = self.executor.map(run, list(range(index, index + size)))
                self.evaluated += len(batch)
                if self.on_batch is not None:
                    self.on_batch(self.evaluated)
                for particle in batch:
                    sample.append(particle)
                    index += 1
                    if particle.accepted:
                        accepted += 1
                        if accepted == n:
                            break
            self.rate = max(accepted / max(index, 1), 1e-3)
            self.nr_evaluations_ = index
            if accepted < n:
                sample.ok = False
            return sample

    return OrderedSampler


class HistoryError(Exception):
    """The history database cannot be continued (damaged, truncated, or written by two calibrations at once)."""


@dataclass
class AbcResult:
    history: object          # pyabc.History
    params: Space
    evaluations: int         # candidates evaluated in this session (runs = evaluations x runs per evaluation)
    seconds: float
    spent: int = 0           # candidates evaluated in every session of this history, discarded ones included


def uniform_prior(space: Space):
    """pyabc's prior of ``space``: uniform on each parameter's range (its logarithm's for log-scale ones).

    A :class:`pyabc.Distribution` of ``pyabc.RV("uniform", lo, hi - lo)`` whose density is computed
    as SciPy computes it (1 / width where ``(x - lo) / width`` lies in [0, 1], 0 elsewhere, NaN
    for NaN, the product in the parameter's order: the same float) without SciPy's overhead per
    call, ~0.15 ms a parameter, which pyabc pays for every candidate and every accepted particle
    (``tests/analysis/test_calibration.py`` holds the two equal bit for bit). A range of width 0 (a log-scale
    one whose ends have one logarithm) keeps pyabc's own density (SciPy's NaN).
    """
    import pyabc

    rvs = {p.name: pyabc.RV("uniform", p.bounds[0], p.bounds[1] - p.bounds[0]) for p in space.params}
    if not rvs or any(p.bounds[1] - p.bounds[0] <= 0 for p in space.params):
        return pyabc.Distribution(**rvs)
    return _pyabc_classes()["prior"](**rvs)


def fast_transition(name: str = "normal"):
    """pyabc's transition ``name`` (``normal``: :class:`pyabc.MultivariateNormalTransition`, Silverman's bandwidth;
    ``local``: :class:`pyabc.LocalTransition`) whose ``rvs_single`` draws the same numbers from NumPy's global
    generator as pyabc's, in the same order (a particle chosen by its weight's CDF, as ``numpy.random.choice(p=w)``,
    then a normal step through the SVD of its covariance, as ``numpy.random.multivariate_normal``), with the CDF and
    the SVDs computed once a generation (at ``fit``) rather than at every proposal (~0.5 ms a proposal for
    ``normal``, pandas' row lookup included; ~0.4 ms for ``local``; a candidate takes ~3.5 proposals to land inside
    the prior's bounds). Where NumPy would refuse the weights or warn of a covariance, or the particles are not
    float64, pyabc's own method runs (``tests/analysis/test_calibration.py`` holds the two equal bit for bit: draws, types,
    the generator's state, a whole posterior)."""
    if name not in TRANSITIONS:
        raise ValueError(f"transition = {name!r}: must be one of {', '.join(TRANSITIONS)}")
    return _pyabc_classes()[name]()


TRANSITIONS = ("normal", "local")
_PYABC_CLASSES = {}


def _pyabc_classes() -> dict:
    """The fast prior and transitions, subclasses of pyabc's, made when a calibration first needs them (pyabc is
    imported then, not with this module)."""
    if not _PYABC_CLASSES:
        import pyabc

        _PYABC_CLASSES.update(prior=_uniform_box_class(pyabc.Distribution),
                              normal=_fast_normal_class(pyabc.MultivariateNormalTransition, pyabc.Parameter),
                              local=_fast_local_class(pyabc.LocalTransition, pyabc.Parameter))
    return _PYABC_CLASSES


def _uniform_box_class(base):
    class UniformBox(base):
        """A product of uniform priors of positive widths with SciPy's density, computed in Python
        (:func:`uniform_prior`)."""

        def pdf(self, x):
            keys = self.__dict__.get("_keys")
            if keys is None:
                keys = self.__dict__["_keys"] = sorted(self.keys())
            if sorted(x.keys()) != keys:
                return super().pdf(x)   # pyabc's own message for a mismatch
            out = None
            for key, val in x.items():
                loc, width = self[key].args
                y = (float(val) - loc) / width
                d = 1.0 / width if 0.0 <= y <= 1.0 else (math.nan if y != y else 0.0)
                out = d if out is None else out * d
            return np.float64(out)

    return UniformBox


def _choice_cdf(weights, n: int):
    """The CDF ``numpy.random.choice(n, p=weights)`` searches (its legacy code), or None where NumPy would refuse
    the weights (then pyabc's own draw runs and raises as it would)."""
    w = np.asarray(weights, dtype=np.float64)
    if not (w.ndim == 1 and w.size == n and n > 0 and bool(np.all(w >= 0)) and bool(np.isfinite(w).all())
            and abs(float(w.sum()) - 1.0) <= 0.5 * math.sqrt(np.finfo(np.float64).eps)):   # clear of NumPy's limit
        return None
    cdf = w.cumsum()
    cdf /= cdf[-1]
    return cdf


def _normal_factor(cov):
    """The factor ``numpy.random.multivariate_normal`` multiplies its standard normals by (the SVD of ``cov``), or
    None where it would warn that ``cov`` is not positive semi-definite (then pyabc's own draw runs and warns)."""
    cov = np.array(cov).astype(np.double)
    _, s, v = np.linalg.svd(cov)
    if not np.allclose(np.dot(v.T * s, v), cov, rtol=1e-8, atol=1e-8):
        return None
    return np.sqrt(s)[:, None] * v


def _pick(cdf):
    return cdf.searchsorted(np.random.random_sample(), side="right")   # numpy's choice(p=w)


def _normal_step(factor, mean):
    """``numpy.random.multivariate_normal(mean, cov)``'s arithmetic with the factor of ``cov`` given."""
    d = factor.shape[0]
    step = np.random.standard_normal([d]).reshape(-1, d)
    step = np.dot(step, factor)
    step += mean
    step.shape = (d,)
    return step


def _fast_normal_class(base, parameter):
    class FastMultivariateNormalTransition(base):
        """:func:`fast_transition`'s ``normal``."""

        def fit(self, X, w):
            super().fit(X, w)
            self._cdf = _choice_cdf(self.w, len(self._X_arr))
            self._factor = _normal_factor(self.cov)
            self._fast = self._cdf is not None and self._factor is not None and self._X_arr.dtype == np.float64
            self._zeros = np.zeros(self._X_arr.shape[1])
            self._columns = list(self.X.columns)

        def rvs_single(self):
            if not getattr(self, "_fast", False):
                return super().rvs_single()
            row = self._X_arr[_pick(self._cdf)]
            step = _normal_step(self._factor, self._zeros)   # pyabc: the row plus a draw of N(0, cov)
            return parameter(dict(zip(self._columns, (row + step).tolist())))

    return FastMultivariateNormalTransition


def _fast_local_class(base, parameter):
    class FastLocalTransition(base):
        """:func:`fast_transition`'s ``local``."""

        def fit(self, X, w=None):
            super().fit(X, w)
            self._cdf = _choice_cdf(self.w, len(self.X_arr))
            factors = [_normal_factor(c) for c in self.covs]
            self._fast = (self._cdf is not None and all(f is not None for f in factors)
                          and self.X_arr.dtype == np.float64)
            self._factors = factors
            self._columns = list(self.X.columns)

        def rvs_single(self):
            if not getattr(self, "_fast", False):
                return super().rvs_single()
            i = _pick(self._cdf)
            return parameter(dict(zip(self._columns, _normal_step(self._factors[i], self.X_arr[i]))))

    return FastLocalTransition


def run_abc(model: TargetModel, observed: dict, sigma: dict, db: Path, *, population: int, generations: int,
            max_evaluations: int, min_epsilon: float, seed: int, executor: Executor, resume: bool = True,
            progress: bool = True, spent: int = 0, on_spent=None, transition: str = "local") -> AbcResult:
    """ABC-SMC on ``model.space`` with pyabc; the history in the SQLite file ``db`` (continued if it holds a run).

    ``transition`` is how a generation proposes its candidates from the last one's particles:
    ``local`` (the default), pyabc's ``LocalTransition``, a normal around a particle with the
    covariance of its nearest neighbours (a quarter of the population), which follows a
    posterior that is curved or pressed against its prior's bounds; or ``normal``, pyabc's
    multivariate normal with the whole population's covariance (Silverman's bandwidth;
    :func:`fast_transition`). On the reported targets, the local one keeps about twice the
    effective sample size at a higher acceptance (docs/explanation/calibration.md).

    Priors are uniform on each parameter's range (on its logarithm for log-scale ones).
    The tolerance is the median of the last generation's distances (pyabc's default rule);
    it stops after ``generations`` generations, below ``min_epsilon``, or when the
    evaluations left of ``max_evaluations`` (in all, the history's included) cannot pay for
    the next generation at the last acceptance rate: it never evaluates more (a generation
    cut short by the budget is not kept). ``spent``: the evaluations earlier sessions recorded (the larger of it and
    the history's own count is taken: neither can undercount a killed session); ``on_spent(total)`` is called after
    every batch with the evaluations spent in all (to persist them: a kill loses no count).
    """
    import logging

    import pyabc

    logging.getLogger("ABC").propagate = False  # pyabc prints its own lines; not twice through Hydra's handler
    if not progress:
        logging.getLogger("ABC").setLevel(logging.WARNING)
    space = model.space
    prior = uniform_prior(space)
    names = {p.name: p for p in space.params}
    obs = {k: float(v) for k, v in observed.items()}

    def simulate(par):
        theta = {names[k].key: names[k].from_unit(float(v)) for k, v in par.items()}
        sim = model(theta, int(np.random.randint(0, 2**31 - 1)))
        return {k: sim[k] for k in obs}

    def dist(x, x0):
        return distance(x, x0, sigma)

    sampler = _ordered_sampler_class()(executor, seed)
    sampler.show_progress = False
    abc = pyabc.ABCSMC(simulate, prior, dist, population_size=population, sampler=sampler,
                       transitions=fast_transition(transition), eps=pyabc.QuantileEpsilon(alpha=0.5))
    url = "sqlite:///" + str(Path(db).resolve())
    done = 0
    np.random.seed(seed % 2**32)  # pyabc's own draws in the parent (none with a fixed distance; set for safety)
    if resume and Path(db).exists():
        why = check_history(db)
        if why is not None:
            raise HistoryError(why)
        try:
            history = abc.load(url, 1)
            done = int(history.total_nr_simulations)
            left_generations = generations - (history.max_t + 1)
            pops = history.get_all_populations()
            last = pops[pops["t"] == history.max_t]
            if len(last) and history.max_t >= 0:  # the acceptance rate the last generation had, to size the next
                sampler.rate = max(population / max(float(last["samples"].iloc[0]), 1.0), 1e-3)
        except Exception as e:  # noqa: BLE001  (whatever pyabc raises on a history it cannot read: one line)
            raise HistoryError(f"pyabc cannot continue it ({one_line(e, 160)})") from None
    else:
        if Path(db).exists():
            Path(db).unlink()
        abc.new(url, obs)
        left_generations = generations
    base = max(done, int(spent))
    sampler.budget = max_evaluations - base
    if on_spent is not None:
        sampler.on_batch = lambda evaluated: on_spent(base + evaluated)
    t0 = time.perf_counter()
    if left_generations > 0 and base < max_evaluations:
        history = abc.run(minimum_epsilon=min_epsilon, max_nr_populations=left_generations,
                          max_total_nr_simulations=max_evaluations)
    else:
        history = abc.history
    return AbcResult(history, space, sampler.evaluated, time.perf_counter() - t0, base + sampler.evaluated)


def check_history(db: Path) -> Optional[str]:
    """Why the SQLite file ``db`` is not a pyabc history this calibration can continue (None: it is): unreadable or
    truncated, not pyabc's tables, more than one run, or a generation stored twice (two writers at once)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True, timeout=5) as con:
            check = con.execute("pragma quick_check").fetchone()
            if not check or check[0] != "ok":
                return f"damaged ({one_line(check[0], 160) if check else 'no answer'})"  # (SQLite's report has lines)
            tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
            missing = {"abc_smc", "populations", "particles", "samples"} - tables
            if missing:
                return "not a pyabc history (no table " + ", ".join(sorted(missing)) + ")"
            runs = con.execute("select count(*) from abc_smc").fetchone()[0]
            if runs != 1:
                return f"holds {runs} runs, not one"
            twice = con.execute("select t from populations group by abc_smc_id, t having count(*) > 1").fetchall()
            if twice:
                return f"generation {twice[0][0]} is stored twice"
    except sqlite3.Error as e:
        return f"not a readable SQLite file ({one_line(e, 120)})"
    return None


def posterior_frame(history, space: Space, t: Optional[int] = None):
    """The particles of generation ``t`` (default the last): one column per dotted key (natural units), ``weight``."""
    import pandas as pd

    df, w = history.get_distribution(m=0, t=t)
    by_name = {p.name: p for p in space.params}
    out = pd.DataFrame({by_name[c].key: [by_name[c].from_unit(v) for v in df[c]] for c in df.columns})
    out = out[[p.key for p in space.params]]
    out["weight"] = np.asarray(w, dtype=float) / float(np.sum(w))
    return out.reset_index(drop=True)


def weighted_quantile(values, weights, qs):
    """Quantiles of a weighted sample (the inverse of its weighted CDF, interpolated at mid-points)."""
    v, w = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    v, w = v[w > 0], w[w > 0]  # a particle without weight is no part of the distribution
    order = np.argsort(v)
    v, w = v[order], w[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, cdf, v)


def posterior_summary(post, space: Space):
    """One row per parameter: its prior range, the posterior's weighted mean, median and 5th / 95th percentiles."""
    import pandas as pd

    rows = []
    for p in space.params:
        q05, q50, q95 = weighted_quantile(post[p.key], post["weight"], [0.05, 0.5, 0.95])
        rows.append({"parameter": p.key, "low": p.low, "high": p.high, "scale": p.scale,
                     "mean": float(np.average(post[p.key], weights=post["weight"])), "median": float(q50),
                     "q05": float(q05), "q95": float(q95),
                     "shrinkage": 1.0 - (q95 - q05) / (0.9 * (p.high - p.low)) if p.scale == "linear" else
                     1.0 - (math.log(q95) - math.log(q05)) / (0.9 * (math.log(p.high) - math.log(p.low)))})
    return pd.DataFrame(rows)


def draw_particles(post, n: int, seed: int) -> list[dict]:
    """``n`` particles drawn by weight (systematic resampling with a fixed seed: deterministic)."""
    gen = np.random.default_rng(seed)
    cum = np.cumsum(post["weight"].to_numpy())
    cum /= cum[-1]
    points = (gen.random() + np.arange(n)) / n
    idx = np.minimum(np.searchsorted(cum, points), len(cum) - 1)
    keys = [c for c in post.columns if c != "weight"]
    return [{"draw": int(i), **{k: float(post[k].iloc[i]) for k in keys}} for i in idx]


# --------------------------------------------------------------------------- posterior predictive
def predictive(model: TargetModel, particles: list[dict], seed: int, executor: Executor):
    """Every target's statistic under each drawn particle (one row per draw), seeds ``seed + 1000 x k``."""
    import pandas as pd

    def run(item):
        k, theta = item
        return {"draw": theta["draw"], **model({key: v for key, v in theta.items() if key != "draw"},
                                               seed + 1000 * k)}

    return pd.DataFrame(executor.map(run, list(enumerate(particles))))


MISFIT_Z = 3.0  # |z| beyond which a target is reported as not met


def fit_table(targets: Sequence[Target], pred, prior_pred=None):
    """Per target: observed and its 95% sampling interval, the posterior predictive median and 90% interval,
    ``ratio`` (predicted median / reported), ``inside90`` (the reported figure within the 90% predictive interval),
    z = (observed - predictive mean) / sqrt(predictive var + sampling var + discrepancy^2) (the uncertainty the
    distance allowed it), and ``misfit`` (|z| > 3)."""
    import pandas as pd

    rows = []
    for t in targets:
        x = pred[t.name].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        obs, sd = t.observed, t.sampling_sd
        if x.size:
            q05, q50, q95 = np.quantile(x, [0.05, 0.5, 0.95])
            z = (obs - x.mean()) / math.sqrt(x.var() + t.sigma ** 2)
        else:
            q05 = q50 = q95 = z = math.nan
        row = {"target": t.name, "use": t.use, "setting": t.setting, "observed": obs,
               "observed_low": obs - 1.96 * sd, "observed_high": obs + 1.96 * sd, "discrepancy": t.discrepancy,
               "predicted_median": q50, "predicted_q05": q05, "predicted_q95": q95,
               "ratio": q50 / obs if obs != 0 else math.nan, "inside90": bool(q05 <= obs <= q95), "z": z,
               "misfit": bool(not math.isfinite(z) or abs(z) > MISFIT_Z), "undefined_draws": int(len(pred) - x.size)}
        if prior_pred is not None and t.name in prior_pred:
            y = prior_pred[t.name].to_numpy(dtype=float)
            y = y[np.isfinite(y)]
            row["prior_median"] = float(np.median(y)) if y.size else math.nan
        rows.append(row)
    return pd.DataFrame(rows)
