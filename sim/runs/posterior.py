"""A calibration's posterior as the main job's source of parameters: each replicate runs on a draw.

A posterior directory holds ``posterior.csv`` (one row per particle: a ``weight`` and one
column per calibrated parameter, named by its dotted key) and ``posterior.yaml``
(``target_set``, and ``scenarios: {name: [dotted keys that apply to it]}``). Effects
computed over draws x seeds then carry the uncertainty of the calibrated parameters as
well as the model's own chance. Draws depend on the config's seed alone, so a job is
reproduced exactly, and every regime runs on the same draws.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.config import Config, ConfigError, check_value, one_line, parameter_keys, replace
from ..core.schema import _show
from ..core.yamlsafe import YamlError, read_yaml

CSV, YAML = "posterior.csv", "posterior.yaml"
WEIGHT = "weight"
_STREAM = 0x706F7374  # "post": the draws' own stream, apart from the model's (sim.core.rng hashes its own keys)
# keys a calibration cannot set: they name what is compared (regime), the scenario itself, or the policy's budget
_NOT_CALIBRATED = ("regime.", "scenario.name", "government.")
# keys that set a run's horizon or its population's size: a posterior whose draws differ in these would mix runs of
# different lengths and sizes in one table (headers, equal-spend budgets, per-year figures are per horizon and size),
# so a posterior may not set them (issue 23, point 4); set them in the config, the same for every draw
STRUCTURAL = ("scenario.months", "scenario.sectors", "scenario.firms.n", "scenario.universities.n",
              "scenario.universities.achievements_each", "scenario.brokers.max")


@dataclass(frozen=True, eq=False)
class Posterior:
    """The particles of a posterior (values as the schema takes them), their normalised weights, and which keys
    apply to which scenario."""

    path: str
    target_set: str
    keys: tuple            # the calibrated parameters, the columns of posterior.csv
    values: tuple          # one tuple per particle, in the order of ``keys``
    weights: np.ndarray    # sum 1
    scenarios: dict        # {scenario name: [dotted keys applied to it]}

    def applied(self, scenario: str) -> list[str]:
        """The keys applied to runs of ``scenario``; a ConfigError if the posterior has none for it."""
        keys = self.scenarios.get(scenario) or []
        if not keys:
            raise ConfigError(f"posterior = {self.path}: no keys for scenario '{scenario}'; it calibrated "
                              + ", ".join(f"{s} ({len(k)} keys)" for s, k in self.scenarios.items()))
        return list(keys)

    def sample(self, seed: int, n: int) -> np.ndarray:
        """``n`` particle indices drawn by weight, independently, from a generator of ``seed`` alone (the first
        draws do not depend on ``n``)."""
        n = check_count(n)
        rng = np.random.default_rng([int(seed), _STREAM])
        return rng.choice(len(self.weights), size=n, p=self.weights)

    def config(self, cfg: Config, particle: int) -> Config:
        """``cfg`` with the values of one particle for the keys of its scenario (validated as a whole)."""
        row = dict(zip(self.keys, self.values[particle]))
        try:
            return replace(cfg, **{k: row[k] for k in self.applied(cfg.scenario.name)})
        except ConfigError as e:
            if str(e).startswith("posterior = "):
                raise
            raise ConfigError(f"posterior = {self.path}: particle {particle}: {e}") from None

    def draws(self, cfg: Config, n: int) -> list[Config]:
        """``n`` configs, each ``cfg`` with the parameters of a particle drawn by weight (seeded by ``cfg.seed``)."""
        return self.configs(cfg, self.sample(cfg.seed, n))

    def configs(self, cfg: Config, particles) -> list[Config]:
        """The config of each particle index (one object per distinct particle)."""
        made: dict[int, Config] = {}
        for i in map(int, particles):
            if i not in made:
                made[i] = self.config(cfg, i)
        return [made[int(i)] for i in particles]


def _refuse(path, what: str) -> ConfigError:
    return ConfigError(f"posterior = {path}: {one_line(what, 300)}")


def _read_meta(path: Path, shown) -> dict:
    """posterior.yaml: a mapping with a target_set and {scenario: [keys]}."""
    try:  # within limits of size and aliases (sim/core/yamlsafe.py)
        meta = read_yaml(path / YAML)
    except YamlError as e:
        raise _refuse(shown, f"{YAML}: {e.reason}") from None
    if not isinstance(meta, dict):
        raise _refuse(shown, f"{YAML} must be a mapping with target_set and scenarios")
    target = meta.get("target_set")
    if not isinstance(target, str) or not target:
        raise _refuse(shown, f"{YAML}: target_set = {target!r}: must name the calibration's target set")
    scenarios = meta.get("scenarios")
    if not isinstance(scenarios, dict) or not scenarios:
        raise _refuse(shown, f"{YAML}: scenarios must map each scenario name to the list of keys applied to it")
    for name, keys in scenarios.items():
        if not isinstance(name, str) or not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise _refuse(shown, f"{YAML}: scenarios.{name} = {keys!r}: must be a list of dotted keys")
        if len(set(keys)) != len(keys):
            raise _refuse(shown, f"{YAML}: scenarios.{name} = {keys!r}: each key may appear once")
    return meta


# a posterior's particles: 10^5 particles of 50 parameters as text are ~100 MB; ours are 200 x ~10 (~50 kB)
POSTERIOR_MAX_BYTES = 1 << 28


def _read_particles(path: Path, shown):
    """posterior.csv as (keys, values by particle, weights): known keys, values the schema takes, weights >= 0."""
    import io

    import pandas as pd

    from ..core.yamlsafe import YamlError, read_bytes

    try:  # a regular file (never a FIFO) within POSTERIOR_MAX_BYTES
        df = pd.read_csv(io.BytesIO(read_bytes(path / CSV, POSTERIOR_MAX_BYTES, kind="a posterior")))
    except YamlError as e:
        raise _refuse(shown, f"{CSV}: {e.reason}") from None
    except OSError as e:
        raise _refuse(shown, f"cannot read {CSV} ({e.strerror or e})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise _refuse(shown, f"{CSV} is not a table ({e})") from None
    if WEIGHT not in df.columns:
        raise _refuse(shown, f"{CSV} has no '{WEIGHT}' column")
    if len(df) == 0:
        raise _refuse(shown, f"{CSV} has no particle")
    if len(set(df.columns)) != len(df.columns):
        raise _refuse(shown, f"{CSV}: each column may appear once")
    weights = np.array([_weight(v) for v in df[WEIGHT].tolist()], dtype=float)
    bad = np.flatnonzero(~(np.isfinite(weights) & (weights >= 0)))
    if bad.size:
        weight = _show(df[WEIGHT].tolist()[bad[0]])
        raise _refuse(shown, f"{CSV}: particle {bad[0]}: weight = {weight}: must be a finite number >= 0")
    if not weights.max() > 0:
        raise _refuse(shown, f"{CSV}: the weights sum to 0: at least one must be > 0")
    weights = weights / weights.max()   # scaled first: weights near the float limit (1e308, 1e308) sum to inf
    known = set(parameter_keys())
    keys = [c for c in df.columns if c != WEIGHT]
    for key in keys:
        if key not in known:
            raise _refuse(shown, f"{CSV}: unknown key '{key}': columns are {WEIGHT} and dotted parameter keys "
                                 "such as scenario.firms.risk_aversion_sme")
        if key.startswith(_NOT_CALIBRATED):
            raise _refuse(shown, f"{CSV}: {key}: not a parameter a calibration sets (regime.*, scenario.name and "
                                 "government.* are what a job compares)")
        if key in STRUCTURAL:
            raise _refuse(shown, f"{CSV}: {key}: a posterior may not set the horizon or the population's size (its "
                                 "draws' runs would be tabled, budgeted and counted by year as one); set it in the "
                                 "config, the same for every draw")
    columns = [[_value(key, v, i, shown) for i, v in enumerate(df[key].tolist())] for key in keys]
    values = tuple(zip(*columns)) if keys else ((),) * len(df)
    return tuple(keys), values, weights / weights.sum()


def _weight(v) -> float:
    """A weight as a float, NaN if it is none (refused then); 1 and 400 zeros is inf (pd.to_numeric raised
    OverflowError on it, errors="coerce" or not)."""
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _value(key: str, value, particle: int, shown):
    """One particle's value of ``key`` as the schema takes it."""
    if isinstance(value, float) and math.isnan(value):
        raise _refuse(shown, f"{CSV}: particle {particle}: {key} is empty")
    try:
        return check_value(key, value)
    except ConfigError as e:
        raise _refuse(shown, f"{CSV}: particle {particle}: {e}") from None


def load_posterior(path) -> Posterior:
    """Read and validate a posterior directory; any problem is a one-line ConfigError naming ``posterior = path``.

    Each value is checked against the schema (type and range); the rules between values
    are checked when a draw's config is built (:meth:`Posterior.config`).
    """
    shown = one_line(path, 200)
    folder = Path(path)
    if not os.path.isdir(folder):  # (Path.is_dir raises on a name too long)
        raise _refuse(shown, "not a directory (a calibration's posterior: posterior.csv and posterior.yaml)")
    for name in (CSV, YAML):
        if not os.path.isfile(folder / name):
            raise _refuse(shown, f"no {name} in it (a calibration's posterior: posterior.csv and posterior.yaml)")
    meta = _read_meta(folder, shown)
    keys, values, weights = _read_particles(folder, shown)
    for name, listed in meta["scenarios"].items():
        missing = [k for k in listed if k not in keys]
        if missing:
            raise _refuse(shown, f"{YAML}: scenarios.{name} lists {missing[0]}, which is no column of {CSV}")
    scenarios = {name: list(listed) for name, listed in meta["scenarios"].items()}
    return Posterior(shown, meta["target_set"], keys, values, weights, scenarios)


def check_count(n) -> int:
    """A number of draws as an int >= 1."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ConfigError(f"posterior_draws = {n!r}: must be an integer >= 1")
    return int(n)
