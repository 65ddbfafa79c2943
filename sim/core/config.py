"""The typed configuration: a dataclass schema, validated on load.

Every number of the model lives here (with its default and unit) and in the
YAML files under ``configs/`` that mirror these classes. ``load_config`` turns a
Hydra/OmegaConf node or a plain dict into a :class:`Config` and rejects, with a
one-line :class:`ConfigError` naming the key, the value and what is allowed:
unknown keys, wrong types, values out of range and inconsistent combinations.

Money is in yuan; time in months; probabilities and shares in [0, 1].
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import threading
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..instruments import INSTRUMENTS
from .state import COPAYMENTS
from .schema import (ENGINES, BETA_MAX, BETA_MIN, COUNT_MAX, MONEY_MAX, MONTHS_MAX, MULTIPLIER_MAX, PER_MONTH_MAX,  # noqa: F401
                     NEGOTIATION_MIN, SPEEDUP_MIN, POPULATION_MAX, PROJECTS_MAX, SEED_MAX, SIGMA_MAX, VISITS_MAX, ConfigError, _c, _describe, _factor, _money,
                     _months, _nested, _shape, _share, _show, _sigma)

# --------------------------------------------------------------------------- scenario
@dataclass
class FirmsConfig:
    n: int = _c(2000, ge=1, le=POPULATION_MAX, doc="number of firms")
    sme_share: float = _share(0.9, "share of firms that are SMEs")
    need_rate_sme: float = _share(0.03, "monthly probability that a technology need arises in an SME with a project "
                                        "slot free (one not negotiating, implementing or holding an open need)")
    need_rate_large: float = _share(0.06, "same, large firms")
    projects_sme: int = _c(2, ge=1, le=PROJECTS_MAX, doc="technology projects an SME can run at once, each from its "
                           "own need through negotiation to the outcome (judgement: Lishui's firm took 5 patents in "
                           "one deal and county pilots report firms taking several achievements in a year, seed 000; "
                           "an SME's R&D team carries one or two projects; 1 = one project at a time)")
    projects_large: int = _c(5, ge=1, le=PROJECTS_MAX, doc="same, large firms (judgement: several R&D teams)")
    need_patience: int = _months(6, "months an unmatched need stays open before the firm gives up")
    self_search_prob: float = _share(0.05, "monthly chance a firm with an open need searches the published lists "
                                           "itself (universities' catalogues, platforms, open-licence lists)")
    list_match: float = _share(0.01, "chance that one achievement on the published lists of the firm's sector meets "
                                     "its need, when it searches them: it finds something with 1 - (1 - list_match)^L "
                                     "of L listed, so take-up grows with what is listed (judgement)")
    list_screen: int = _c(3, ge=1, le=PER_MONTH_MAX, doc="listed achievements of its sector a searching firm judges, "
                                                         "keeping the best by its own judgement (judgement)")
    search_cost: float = _money(2000.0, "a firm's cost of one search of the published lists: staff time and platform "
                                        "fees (yuan; judgement: a day of an engineer's time)")
    self_noise: float = _factor(0.15, "sd of a firm's own error in judging a candidate's success chance", hi=10.0)
    cash_median_sme: float = _money(3.0e6, "median cash of an SME (yuan)", positive=True)
    cash_median_large: float = _money(6.0e7, "median cash of a large firm (yuan)", positive=True)
    cash_sigma: float = _sigma(0.8, "log-sd of cash")
    assets_to_cash_sme: float = _factor(2.0, "an SME's net assets beyond cash (plant, equipment, inventory, receivables, "
                                             "less its debts), as a multiple of its cash: what it can pledge with a patent "
                                             "(sim/instruments/ip_pledge.py; judgement from orders of magnitude: Chinese industrial firms "
                                             "hold ~15% of their assets as cash and owe ~55% of them, NBS/listed-firm "
                                             "balance sheets, so equity beyond cash is ~2x cash; range 1-4; 0: nothing "
                                             "beyond cash to pledge)", hi=100.0)
    assets_to_cash_large: float = _factor(2.0, "same, large firms (judgement: the same balance-sheet ratios)", hi=100.0)
    assets_sigma: float = _sigma(0.7, "log-sd of that multiple across firms: how unevenly firms hold their wealth as "
                                      "cash (judgement: cash holdings range from a few per cent to about half of firms' "
                                      "assets, so firms of the same net worth differ several-fold in cash; 0.7 puts the "
                                      "middle half within a factor 1.6 of the median; 0: every firm at the median)")
    scale_large: float = _factor(3.0, "value and cost of a project in a large firm, relative to an SME", positive=True)
    absorptive_sme_a: float = _shape(2.0, "Beta(a, b) of absorptive capacity, SMEs")
    absorptive_sme_b: float = _shape(3.0, "")
    absorptive_large_a: float = _shape(4.0, "Beta(a, b) of absorptive capacity, large firms")
    absorptive_large_b: float = _shape(2.0, "")
    risk_aversion_sme: float = _factor(5.0, "median relative risk aversion (CARA coefficient x net worth: cash plus "
                                       "net assets beyond cash), SMEs (judgement: SMEs 'fear failure', seeds 000, 002: "
                                       "at the top of the 1-5 usually reported for owners' relative risk aversion; "
                                       "range 1.5-15 in the calibration's space, configs/spaces/judgement.yaml)", hi=100.0)
    risk_aversion_large: float = _factor(2.0, "same, large firms (judgement: less averse than SMEs)", hi=100.0)
    risk_aversion_sigma: float = _sigma(0.3, "log-sd of risk aversion across firms")
    prior_success: float = _c(0.55, gt=0.0, lt=1.0, doc="prior mean belief in the success chance of university "
                              "technology (near the ~60% of new products that succeed, Castellion & Markham 2013, and "
                              "the success share firms then see, so that learning does not drift beliefs)")
    prior_strength: float = _factor(4.0, "weight of that prior, in pseudo-observations", positive=True, hi=1.0e6)
    belief_weight: float = _share(0.5, "weight of the firm's belief (vs. the match's signal) in its success estimate")
    peer_weight: float = _factor(0.05, "weight of one peer outcome in the same sector, relative to an own outcome", hi=10.0)


@dataclass
class UniversitiesConfig:
    n: int = _c(10, ge=1, le=COUNT_MAX, doc="number of universities and research institutes")
    achievements_each: int = _c(60, ge=1, le=COUNT_MAX, doc="achievements (patents or bundles) per university")
    tto_capacity: int = _c(6, ge=1, le=COUNT_MAX, doc="negotiations a transfer office can open per month")
    reservation_share: float = _share(0.6, "lowest acceptable licence price, as a share of the asking price")
    bargaining_power: float = _share(0.5, "university's Nash bargaining weight over the price")
    pilot_share: float = _share(0.5, "share of universities in a 'use first' pilot that obliges them to offer every "
                                     "achievement for free trial (judgement; Lishui: all); the others offer a form only "
                                     "when it is worth their reservation to them")
    risk_aversion: float = _factor(1.0, "a university's CARA coefficient x the achievement's asking price (judgement)",
                                   hi=100.0)
    public_share: float = _share(0.95, "share of universities and institutes that are public bodies, whose income is "
                                       "public money (judgement: almost all Chinese universities and CAS institutes "
                                       "holding patents are public)")
    inventor_share: float = _share(0.7, "share of university income passed to the inventors")
    max_failures: int = _c(2, ge=1, le=1000, doc="failed implementations after which an achievement is abandoned")
    arrivals_per_month: float = _c(1.6667, ge=0.0, le=1000.0, doc="new achievements a university discloses a month "
                                   "(judgement: its stock renewed over expiry_months, 60 / 36, so that the initial "
                                   "stock is the portfolio's steady state; floor(rate) and one more with the "
                                   "fraction's chance)")
    expiry_months: int = _c(36, ge=1, le=MONTHS_MAX, doc="months after disclosure a shelved achievement leaves the "
                            "portfolio unconverted (Zhejiang pilot: to the sector pools after 3 years); the initial "
                            "stock's ages are spread evenly over this span")


@dataclass
class AchievementsConfig:
    quality_a: float = _shape(8.0, "Beta(a, b) of latent quality (with the success floors, calibrated so that ~45% "
                              "of implementations fail, near the ~40% of new products, Castellion & Markham 2013)")
    quality_b: float = _shape(1.0, "")
    maturity_a: float = _shape(2.0, "Beta(a, b) of maturity (1 = ready to use; most are early-stage)")
    maturity_b: float = _shape(5.0, "")
    value_median: float = _money(5.0e6, "median value of a successful implementation to an SME (yuan)", positive=True)
    value_sigma: float = _sigma(1.0, "log-sd of that value")
    cost_share: float = _factor(0.12, "implementation (front-end) cost as a share of value", hi=10.0)
    immaturity_cost: float = _factor(1.0, "extra cost factor for an immature achievement: cost x (1 + k (1 - maturity))",
                                     hi=10.0)
    ask_share: float = _factor(0.2, "asking price as a share of value", hi=10.0)
    use_months: int = _months(60, "months an achievement stays in use after a successful implementation (judgement: "
                              "a product life of five years)")
    ask_sigma: float = _sigma(0.5, "log-sd of the university's error in setting the asking price")


@dataclass
class SuccessConfig:
    maturity_floor: float = _share(0.7, "success multiplier of a fully immature achievement (with the other floors "
                                   "and the quality: ~45% of implementations fail, near Castellion & Markham's ~40%)")
    absorptive_floor: float = _share(0.7, "success multiplier of a firm with no absorptive capacity (as maturity_floor)")
    fit_floor: float = _share(0.7, "success multiplier of the worst-fitting match (as maturity_floor)")


@dataclass
class NegotiationConfig:
    months_licence: float = _c(4.0, ge=NEGOTIATION_MIN, le=MONTHS_MAX, doc="mean months to conclude a "
                               "licence/transfer negotiation (at least 0.01: any mean up to a month concludes in the "
                               "first month)")
    breakdown_hazard: float = _share(0.1, "monthly chance a running negotiation breaks down")
    broker_speedup: float = _c(0.6, ge=SPEEDUP_MIN, le=1.0, doc="factor on the mean duration when a broker is involved "
                               "(at least 0.01, judgement: a broker cuts a negotiation to a hundredth of its time at most)")
    implementation_months: int = _months(12, "months from licence signing to the outcome of the implementation")


@dataclass
class BrokersConfig:
    initial: int = _c(28, ge=0, le=COUNT_MAX, doc="active brokers at month 0 (the number the default region's deal "
                      "flow sustains at monthly_cost: measured, 27-35 at each year's end from year 1 to 10 without "
                      "instruments, 60 seeds, so that the market starts in balance)")
    max: int = _c(60, ge=0, le=COUNT_MAX, doc="brokers that can ever exist (pool of potential entrants)")
    capacity: int = _c(5, ge=1, le=PER_MONTH_MAX, doc="firms a broker visits per month")
    skill_a: float = _shape(3.0, "Beta(a, b) of broker skill")
    skill_b: float = _shape(3.0, "")
    noise: float = _factor(0.2, "sd of a broker's error in judging success chance, at skill 0 (falls linearly to 0 at "
                                "skill 1)", hi=10.0)
    screen: int = _c(5, ge=1, le=PER_MONTH_MAX, doc="achievements a broker screens to make one proposal")
    surface_prob: float = _share(0.05, "chance a visit surfaces a latent need in a firm that has none")
    fee_rate: float = _c(0.02, ge=0.0, le=0.5, doc="broker fee as a share of the contract value, paid by the parties")
    fee_fixed: float = _money(3000.0, "broker's service fee per signed contract, paid by the firm at signing (yuan)")
    fee_firm_share: float = _share(0.5, "share of the broker's fee on payments paid by the firm (rest by the university)")
    monthly_cost: float = _money(5700.0, "a broker's operating cost per month (yuan): a full-time broker's wage, the "
                                 "average of urban private units, 68,340 yuan a year in 2023 (NBS)")
    profit_memory: float = _c(0.9, ge=0.0, lt=1.0, doc="weight of the past in a broker's moving average of monthly profit")
    exit_loss: float = _money(2500.0, "a broker exits when its average monthly profit falls below minus this (yuan)")
    grace_months: int = _months(12, "months before a new broker may exit", lo=0)
    entry_candidates: int = _c(2, ge=0, le=PER_MONTH_MAX, doc="potential entrants considering the market each month")
    entry_max: float = _share(0.2, "entry chance of a candidate when incumbents are very profitable")
    entry_sensitivity: float = _factor(2.0, "slope of the logistic entry chance in incumbents' average profit / monthly "
                                            "cost")


@dataclass
class ScenarioConfig:
    name: str = _c("default", doc="scenario name")
    months: int = _months(60, "months simulated")
    discount_rate: float = _c(0.08, ge=0.0, le=1.0, doc="yearly discount rate of deferred payments (NDRC/MOHURD social "
                                                        "discount rate for project appraisal, 8%)")
    sectors: int = _c(6, ge=1, le=COUNT_MAX, doc="industrial sectors (firms and achievements each belong to one)")
    firms: FirmsConfig = _nested(FirmsConfig)
    universities: UniversitiesConfig = _nested(UniversitiesConfig)
    achievements: AchievementsConfig = _nested(AchievementsConfig)
    success: SuccessConfig = _nested(SuccessConfig)
    negotiation: NegotiationConfig = _nested(NegotiationConfig)
    brokers: BrokersConfig = _nested(BrokersConfig)


# --------------------------------------------------------------------------- regime and instruments
INSTRUMENT_NAMES = tuple(m.NAME for m in INSTRUMENTS)
# the main job's regimes: the baseline, every instrument alone (its regime file has its name), all together
DEFAULT_REGIMES = ("baseline", *INSTRUMENT_NAMES, "combined")
ALL = "all"  # regime.instruments: all, every registered instrument (the combined regime)

# The names instruments' sections and regimes had before 0.2.0, when each instrument got one name (its NAME: its
# regime, its config section, the kernels' view of its parameters). They are refused, naming the new one, rather
# than accepted: a key of 0.1 would otherwise run with a section of defaults and say nothing.
RENAMED = {"trial": "free_trial", "broker": "broker_reward", "voucher": "vouchers", "pledge": "ip_pledge",
           "experts": "expert_visits", "inventors": "income_share", "failure_insurance": "insurance"}


def hydra_renamed(line: str) -> str:
    """:func:`renamed`'s hint for Hydra's error on an old name: ``Could not override 'trial.term_months'`` (a key),
    ``Could not find 'regime/failure_insurance'`` (a regime)."""
    import re

    m = re.search(r"Could not override '([^']+)'|Could not find '(?:regime/)?([^'/]+)'", line)
    return renamed(m.group(1) or m.group(2)) if m else ""


def renamed(name: Any) -> str:
    """For a dotted key or a regime name written with an instrument's name before 0.2.0, the one-line hint naming
    the new one ('' for any other)."""
    if not isinstance(name, str):
        return ""
    head, dot, rest = name.partition(".")
    new = RENAMED.get(head)
    return f" (renamed in 0.2.0, an instrument has one name: write {new}{dot}{rest})" if new else ""


@dataclass
class RegimeConfig:
    name: str = _c("baseline", doc="regime name (configs/regime/<name>.yaml, or a label of your own)")
    instruments: list = _c([], doc="the instruments it switches on, each once, any combination of "
                                   + ", ".join(INSTRUMENT_NAMES) + f"; or {ALL}, every one (the combined regime)")


@dataclass
class GovernmentConfig:
    annual_budget: Optional[float] = _money(None, "cap on government's payments to all instruments in each budget "
                                                  "year (months 0-11, 12-23, ...; null = none); a payment promised "
                                                  "in one year and made in the next counts in both")


# --------------------------------------------------------------------------- root
HORIZONS = (5, 10)   # the run lengths `horizon` offers, in years
# how to run, the scenario, the regime, then one section per instrument (sim/instruments/), government
Config = dataclasses.make_dataclass("Config", [
    ("seed", int, _c(0, ge=0, le=SEED_MAX, doc="first seed; replicates use seed, seed+1, ...")),
    ("seeds", int, _c(10, ge=1, le=COUNT_MAX, doc="replicates per regime in the main job")),
    ("posterior", Optional[str], _c(None, doc="main job: a calibration's posterior directory (posterior.csv + "
                                              "posterior.yaml); each replicate runs on a posterior draw, so effects "
                                              "carry parameter uncertainty as well as seed noise")),
    ("posterior_draws", int, _c(20, ge=1, le=COUNT_MAX, doc="draws from the posterior, each run for `seeds` seeds")),
    ("engine", str, _c("mesa", choices=ENGINES, doc="simulation engine")),
    ("regimes", list, _c(list(DEFAULT_REGIMES),
                         doc="regimes compared by the main job (names of configs/regime/*.yaml): baseline, every "
                             "instrument alone, all together")),
    ("progress", bool, _c(True, doc="show a progress bar")),
    ("workers", int, _c(1, ge=1, le=1024, doc="processes for the runs of a job (results do not depend on it)")),
    ("grid", dict, _c({}, doc="sweeps: more points run inside each job, {dotted key: [values]}")),
    ("results_dir", Optional[str], _c(None, doc="sweeps: where result files go (null: <sweep dir>/results)")),
    ("at_spend", Optional[str], _c("broker_reward", doc="main job: compare every regime also at the yearly public "
                                                        "budget this regime spends (null: no such comparison)")),
    ("robust_share", float, _c(0.9, gt=0.5, le=1.0, doc="main job: a conclusion (an instrument raises conversions, "
                                                       "is the cheapest or dearest spending instrument per extra "
                                                       "conversion) holds when at least this share of replicates "
                                                       "(posterior draws) agree, and is printed as one that flips "
                                                       "otherwise (judgement: nine in ten)")),
    ("robust_parameters", list, _c(["scenario.firms.risk_aversion_sme", "scenario.firms.prior_success",
                                    "scenario.negotiation.breakdown_hazard"],
                                   doc="main job on a posterior: judgement parameters at whose range's ends (robust_space) "
                                       "the comparison is re-run, to show how the ranking moves (the three with the "
                                       "largest Sobol total indices on the combined regime's outcomes, docs/explanation/"
                                       "exploration-results.md); a key the posterior fits splits its draws at the median "
                                       "instead; [] for none")),
    ("robust_space", str, _c("judgement", doc="main job: the parameter space (configs/spaces/<name>.yaml or a path) "
                                              "whose ranges robust_parameters are varied over")),
    ("horizon", Optional[int], _c(None, choices=HORIZONS, doc="run length in years, the horizon of the accounts "
                                                            "(deals still running then count as expected "
                                                            "conversions): sets scenario.months to 12 x horizon "
                                                            "(judgement: 5, a five-year plan, the default's 60 "
                                                            "months; 10, two plans, so that deals signed late "
                                                            "weigh less; null: scenario.months decides)")),
    ("scenario", ScenarioConfig, _nested(ScenarioConfig)),
    ("regime", RegimeConfig, _nested(RegimeConfig)),
    *((m.NAME, m.Params, _nested(m.Params)) for m in INSTRUMENTS),
    ("government", GovernmentConfig, _nested(GovernmentConfig)),
])
Config.__module__ = __name__  # picklable as sim.core.config.Config (worker processes)
Config.__doc__ = "The whole configuration of a job: how to run, the scenario, the regime, the instruments' parameters."


# --------------------------------------------------------------------------- validation
# top-level keys that say how to run, not what is run: not parameters of a run
RUN_SETTINGS = ("seed", "seeds", "posterior", "posterior_draws", "engine", "regimes", "progress", "workers", "grid",
                "results_dir", "at_spend", "robust_share", "robust_parameters", "robust_space",
                "horizon")   # horizon: a run length; the parameter it sets, scenario.months
_TEXT_MAX = 200  # characters of a name or a path


def one_line(text: Any, limit: int = 200) -> str:
    """Any text (a file's, an exception's, a command line's) as one printable line, cut short."""
    text = " ".join(str(text).split())
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_value(path: str, value: Any, typ, meta) -> Any:
    origin = typing.get_origin(typ)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        typ = [a for a in typing.get_args(typ) if a is not type(None)][0]

    def refuse(what: str):  # messages are built only when a value is refused
        rng = _describe(meta)
        return ConfigError(f"{path} = {_show(value)}: {what}" + (f" {rng}" if rng else ""))

    if typ is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise ConfigError(f"{path} = {_show(value)}: must be true or false")
        return bool(value)
    if typ is int:
        if isinstance(value, (bool, np.bool_)):
            raise refuse("must be an integer")
        if isinstance(value, numbers.Integral):
            value = int(value)
        elif isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise refuse("must be an integer")
    elif typ is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise refuse("must be a number")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond any float
            raise refuse("must be a finite number") from None
        if not math.isfinite(value):
            raise refuse("must be a finite number")
    elif typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} = {_show(value)}: must be a string")
        if not value or len(value) > _TEXT_MAX or not value.isprintable():
            raise ConfigError(f"{path} = {_show(value)}: must be printable text of 1 to {_TEXT_MAX} characters")
    elif typ is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} = {_show(value)}: must be a list")
        return list(value)
    elif typ is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path} = {_show(value)}: must be a mapping")
        return dict(value)
    bad = (
        (meta.get("ge") is not None and value < meta["ge"])
        or (meta.get("gt") is not None and value <= meta["gt"])
        or (meta.get("le") is not None and value > meta["le"])
        or (meta.get("lt") is not None and value >= meta["lt"])
        or (meta.get("choices") and value not in meta["choices"])
    )
    if bad:
        raise refuse("must be")
    return value


@functools.lru_cache(maxsize=None)
def _schema(cls) -> tuple[dict, dict]:
    """(type hints, fields by name) of a config class (typing.get_type_hints is slow: computed once)."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _build(cls, data: Any, path: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'} = {_show(data)}: must be a mapping with keys "
                          + ", ".join(f.name for f in dataclasses.fields(cls)))
    hints, fields = _schema(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        name = _show(unknown[0])[1:-1] if isinstance(unknown[0], str) else _show(unknown[0])
        where = f"{path}.{name}" if path else name
        raise ConfigError(f"unknown key '{where}'{renamed(where)}: allowed keys{' in ' + path if path else ''} are "
                          + ", ".join(fields))
    kwargs = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            if name in data and not isinstance(data[name], dict):  # null would silently mean the defaults
                raise ConfigError(f"{key} = {_show(data[name])}: must be a mapping with keys "
                                  + ", ".join(f.name for f in dataclasses.fields(typ)))
            kwargs[name] = _build(typ, data.get(name), key)
        elif name in data:
            kwargs[name] = _check_value(key, data[name], typ, f.metadata)
    return cls(**kwargs)


def parameter_keys(cls=None, prefix: str = "") -> list[str]:
    """The dotted keys of every model parameter (``scenario.firms.n``, ``broker_reward.rate``, ...)."""
    cls = cls or Config
    hints = _schema(cls)[0]
    out = []
    for f in dataclasses.fields(cls):
        if not prefix and f.name in RUN_SETTINGS:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            out += parameter_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def check_value(key: str, value: Any) -> Any:
    """One dotted parameter's value as the schema takes it (type and range), or its one-line ConfigError.

    The checks of :func:`load_config` for one value alone, in microseconds: many values (a posterior's particles)
    are checked without building a config for each; rules between values are checked when a config is built.
    """
    cls, parts = Config, key.split(".")
    for part in parts[:-1]:
        cls = _schema(cls)[0].get(part)
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"unknown key '{key}'{renamed(key)}")
    hints, fields = _schema(cls)
    if parts[-1] not in fields or dataclasses.is_dataclass(hints[parts[-1]]):
        raise ConfigError(f"unknown key '{key}'{renamed(key)}")
    return _check_value(key, value, hints[parts[-1]], fields[parts[-1]].metadata)


def section_keys() -> set[str]:
    """The dotted keys of the sections of the schema (``scenario``, ``scenario.firms``, ``broker``, ...)."""
    return {k.rsplit(".", i)[0] for k in parameter_keys() for i in range(1, k.count(".") + 1)}


def flat_grid(grid: dict, prefix: str = "") -> dict:
    """{dotted key: [values]} from a grid given flat or nested (``+grid.broker_reward.rate=[...]``)."""
    out = {}
    for k, v in grid.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_grid(v, key + "."))
        else:
            out[key] = v
    return out


GRID_POINTS_MAX = COUNT_MAX


def _check_grid(cfg: Config) -> None:
    """A grid sweeps model parameters, each over a non-empty list of values the schema accepts."""
    grid = flat_grid(cfg.grid)
    if not grid:
        return
    allowed = set(parameter_keys())
    base = dataclasses.replace(cfg, grid={})
    points = 1
    for key, values in grid.items():
        where = f"grid.{key}"
        if key in RUN_SETTINGS or key.startswith("regime.") or key == "regime":
            raise ConfigError(f"{where}: a grid sweeps model parameters; sweep regimes with regime=a,b and seeds "
                              f"with seeds=N or seed=range(a,b) on the command line")
        if key not in allowed:
            raise ConfigError(f"unknown key '{key}' in grid{renamed(key)}: a grid sweeps model parameters such as "
                              "broker_reward.rate, free_trial.term_months, scenario.firms.n")
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"{where} = {_show(values)}: must be a non-empty list of values")
        if len({repr(v) for v in values}) != len(values):
            raise ConfigError(f"{where} = {_show(values)}: each value may appear once")
        for v in values:
            try:
                replace(base, **{key: v})
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
        points *= len(values)
    if points > GRID_POINTS_MAX:
        raise ConfigError(f"grid: {points} points: must be at most {GRID_POINTS_MAX}")


def _get_dotted(cfg: Config, key: str) -> Any:
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _cross_checks(cfg: Config) -> None:
    """Rules that involve more than one value."""
    files = regime_files()
    for name in cfg.regimes:
        if regime_instruments(name) is None:
            raise ConfigError(f"regimes contains {_show(name)}{renamed(name)}: allowed regimes are "
                              f"{allowed_regimes_text()}")
    if not cfg.regimes:
        raise ConfigError("regimes = []: must name at least one of " + ", ".join(files))
    if len(set(cfg.regimes)) != len(cfg.regimes):
        raise ConfigError(f"regimes = {_show(cfg.regimes)}: each regime may appear once")
    if cfg.at_spend is not None and regime_instruments(cfg.at_spend) is None:
        raise ConfigError(f"at_spend = {_show(cfg.at_spend)}{renamed(cfg.at_spend)}: allowed regimes are "
                          f"{allowed_regimes_text()}")
    r = cfg.regime
    for name in r.instruments:
        if name not in INSTRUMENT_NAMES:
            raise ConfigError(f"regime.instruments contains {_show(name)}{renamed(name)}: instruments are "
                              + ", ".join(INSTRUMENT_NAMES))
    if len(set(r.instruments)) != len(r.instruments):
        raise ConfigError(f"regime.instruments = {_show(r.instruments)}: each instrument may appear once")
    if r.name in files and sorted(files[r.name]) != sorted(r.instruments):
        raise ConfigError(f"regime.instruments = {_show(r.instruments)}: regime '{r.name}' "
                          f"(configs/regime/{r.name}.yaml) has {_show(files[r.name])}; name a combination of your "
                          "own with regime.name=<label>, or pick a regime by name (regime=NAME)")
    mix = regime_instruments(r.name) if r.name not in files else None
    if mix is not None and sorted(mix) != sorted(r.instruments):  # a mix's name says its instruments
        raise ConfigError(f"regime.instruments = {_show(r.instruments)}: regime.name '{r.name}' is the mix of "
                          f"{_show(mix)}; give the mix's instruments with its name, or name a combination of your own "
                          "with regime.name=<label> (no +); the main job runs a mix as regimes=[a+b]")
    for m in INSTRUMENTS:
        if m.NAME in r.instruments and hasattr(m, "check"):
            m.check(cfg)
    copays = [(key, _get_dotted(cfg, key)) for owner, key in COPAYMENTS if owner in r.instruments]
    if len(copays) > 1 and sum(rate for _, rate in copays) >= 1.0:  # each one's own range keeps a single one below 1
        raise ConfigError(" + ".join(f"{k} ({v:g})" for k, v in copays) + ": co-payments of the same payments must "
                          f"sum below 1 under regime '{r.name}', or together they would pay more than the firm pays")
    b = cfg.scenario.brokers
    if b.max < b.initial:
        raise ConfigError(f"scenario.brokers.max = {b.max}: must be >= scenario.brokers.initial ({b.initial})")
    u = cfg.scenario.universities
    if u.n * u.achievements_each > POPULATION_MAX:
        raise ConfigError(f"scenario.universities.achievements_each = {u.achievements_each}: "
                          f"{u.n} universities x {u.achievements_each} achievements must be at most {POPULATION_MAX:g}")
    arrivals = u.n * math.ceil(u.arrivals_per_month) * cfg.scenario.months
    if u.n * u.achievements_each + arrivals > POPULATION_MAX:
        raise ConfigError(f"scenario.universities.arrivals_per_month = {u.arrivals_per_month:g}: up to {arrivals:g} "
                          f"arrivals over {cfg.scenario.months} months, with the initial stock, must be at most "
                          f"{POPULATION_MAX:g} achievements")
    visits = b.max * b.capacity * (b.screen + 1)
    if visits > VISITS_MAX:
        raise ConfigError(f"scenario.brokers.screen = {b.screen}: {b.max} brokers x {b.capacity} visits x "
                          f"{b.screen} screened achievements a month must be at most {VISITS_MAX:g} (a run would "
                          "take days)")
    if cfg.seed + cfg.seeds - 1 > SEED_MAX:
        raise ConfigError(f"seed = {cfg.seed}: the last seed, seed + seeds - 1, must be <= {SEED_MAX}")
    if cfg.posterior is not None and cfg.seed + cfg.posterior_draws * cfg.seeds - 1 > SEED_MAX:
        raise ConfigError(f"seed = {cfg.seed}: with a posterior the last seed, seed + posterior_draws x seeds - 1, "
                          f"must be <= {SEED_MAX}")
    _check_grid(cfg)


@functools.lru_cache(maxsize=None)
def _regime_files(folder: str) -> dict:
    from omegaconf import OmegaConf

    from .yamlsafe import read_yaml

    out = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        raw = read_yaml(path, omegaconf=True)  # within limits of size and aliases
        # interpolations read as plain text, never resolved (an exponential chain of them would hang)
        data = OmegaConf.to_container(OmegaConf.create(raw), resolve=False) if isinstance(raw, (dict, list)) else raw
        instruments = data.get("instruments", []) if isinstance(data, dict) else []
        out[path.stem] = list(INSTRUMENT_NAMES) if instruments == ALL else list(instruments)
    return out


def regime_files() -> dict[str, list]:
    """{name: instruments} of the named regimes, ``configs/regime/*.yaml``."""
    from .locations import CONFIG_DIR

    return _regime_files(str(CONFIG_DIR / "regime"))


MIX = "+"  # a mix of instruments as a regime of the comparison: free_trial+vouchers


def regime_instruments(name: Any) -> Optional[list]:
    """The instruments of the regime called ``name`` in ``regimes``/``at_spend``: a named regime's
    (``configs/regime/<name>.yaml``), or a mix's, two or more distinct instruments joined by ``+``
    (``free_trial+vouchers``); None for any other value."""
    if not isinstance(name, str):
        return None
    files = regime_files()
    if name in files:
        return list(files[name])
    parts = name.split(MIX)
    if len(parts) >= 2 and all(p in INSTRUMENT_NAMES for p in parts) and len(set(parts)) == len(parts):
        return parts
    return None


def allowed_regimes_text() -> str:
    """The regimes allowed, for messages: the named ones (baseline first, combined last), then the mixes."""
    names = sorted(regime_files(), key=lambda n: (n != "baseline", n == "combined", n))
    return (", ".join(names) + ", or a mix of two or more distinct instruments joined by + (free_trial+vouchers; "
            "instruments: " + ", ".join(INSTRUMENT_NAMES) + ")")


def _resolve(node) -> Any:
    """A Hydra/OmegaConf node as plain data, its interpolations resolved (an unresolvable one is a ConfigError)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raw = node
        for part in key.split(".") if key != "config" else []:  # the text the user wrote, unresolved
            raw = raw._get_node(part) if raw is not None and hasattr(raw, "_get_node") else None
        shown = _show(raw._value()) if raw is not None and hasattr(raw, "_value") else "?"
        raise ConfigError(f"{key} = {shown}: cannot be resolved ({msg})") from None


def load_config(data: Any) -> Config:
    """Validate a mapping (dict, OmegaConf node or Config) and return a :class:`Config`.

    Every value is checked against its type and range, unknown keys are refused, and
    the rules that involve several values (regime flags, grids, populations) are
    checked; the first problem raises a one-line :class:`ConfigError`. A ``horizon`` (5 or 10
    years) sets ``scenario.months``.
    """
    if isinstance(data, Config):
        data = dataclasses.asdict(data)
    else:
        from omegaconf import DictConfig

        if isinstance(data, DictConfig):
            data = _resolve(data)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "hydra"}
        if isinstance(data.get("regime"), dict) and data["regime"].get("instruments") == ALL:
            data["regime"] = {**data["regime"], "instruments": list(INSTRUMENT_NAMES)}
    cfg = _build(Config, data, "")
    if cfg.horizon is not None and cfg.scenario.months != 12 * cfg.horizon:
        cfg = dataclasses.replace(cfg, scenario=dataclasses.replace(cfg.scenario, months=12 * cfg.horizon))
    _cross_checks(cfg)
    return cfg


def with_regime(cfg: Config, regime: "RegimeConfig | dict") -> Config:
    """A copy of ``cfg`` under another regime (validated again)."""
    data = dataclasses.asdict(cfg)
    data["regime"] = dataclasses.asdict(regime) if isinstance(regime, RegimeConfig) else dict(regime)
    return load_config(data)


def replace(cfg: Config, **dotted: Any) -> Config:
    """A copy of ``cfg`` with dotted keys replaced, e.g. ``replace(cfg, **{"broker_reward.cap": 5e5})``."""
    data = dataclasses.asdict(cfg)
    for key, value in dotted.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], dict):
                raise ConfigError(f"unknown key '{key}'{renamed(key)}")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"unknown key '{key}'{renamed(key)}: allowed keys are " + ", ".join(node))
        node[parts[-1]] = value
    return load_config(data)


def to_yaml(obj, indent: int = 0) -> str:
    """YAML text of a config dataclass, each value commented with its meaning and range."""
    lines = []
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:")
            lines.append(to_yaml(value, indent + 1))
            continue
        if value is None:
            text = "null"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = value
        elif isinstance(value, list):
            text = "[" + ", ".join(map(str, value)) + "]"
        elif isinstance(value, dict):
            text = "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
        elif isinstance(value, float):
            text = repr(value) if abs(value) < 1e5 else f"{value:.6g}".replace("e+0", "e").replace("e+", "e")
            if "e" in text and "." not in text:
                text = text.replace("e", ".0e")
        else:
            text = str(value)
        doc = f.metadata.get("doc", "")
        rng_text = _describe(f.metadata)
        comment = "  # " + "; ".join(x for x in (doc, rng_text) if x) if doc or rng_text else ""
        lines.append(f"{pad}{f.name}: {text}{comment}")
    return "\n".join(lines)


DEFAULT_SCENARIO_HEADER = """\
# The default scenario: a mixed region of SMEs and some large firms, ten universities.
# Every number of the model's population and behaviour; docs/explanation/assumptions.md gives the sources.
# Written by `python -m sim.core.config` from the schema in sim/core/config.py;
# tests/core/test_config.py checks that the two agree.
"""


REGISTRY_CONFIG = "registry"  # the Hydra config of what the instrument registry decides (configs/config.yaml's defaults)


def register_hydra_defaults() -> None:
    """Give Hydra the config's parts that the instrument registry decides, as the config ``registry`` that
    ``configs/config.yaml``'s defaults list names: each instrument's section with its schema defaults (its module's
    ``Params``, sources in the docs) and the main job's default ``regimes``. An instrument added to the registry is
    in every app's config with nothing else edited. Call before Hydra composes (idempotent)."""
    from hydra.core.config_store import ConfigStore

    node = {"regimes": list(DEFAULT_REGIMES), **{m.NAME: dataclasses.asdict(m.Params()) for m in INSTRUMENTS}}
    ConfigStore.instance().store(name=REGISTRY_CONFIG, node=node)


_COMPOSE_LOCK = threading.Lock()  # Hydra's GlobalHydra is process-wide: compose clears and initialises it


def compose(*overrides: str, config_dirs: Sequence[str | Path] = ()) -> Config:
    """The validated config of ``configs/`` with Hydra-style overrides, e.g. ``compose("scenario=lishui")``.

    ``config_dirs`` are more config folders searched after the project's own (as Hydra's
    ``--config-dir``), for scenarios of your own: ``<dir>/scenario/<name>.yaml``.
    A bad override or value raises a one-line :class:`ConfigError`.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .locations import CONFIG_DIR

    search = ([f"hydra.searchpath=[{','.join('file://' + str(Path(d).resolve()) for d in config_dirs)}]"]
              if config_dirs else [])
    try:
        with _COMPOSE_LOCK:  # GlobalHydra is one per process: one thread composes at a time
            if GlobalHydra.instance().is_initialized():
                GlobalHydra.instance().clear()
            register_hydra_defaults()
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                node = hydra_compose(config_name="config", overrides=search + list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError, RecursionError) as e:  # ValueError: scenario=3
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        first = lines[0] if lines else type(e).__name__
        raise ConfigError(first + hydra_renamed(first)) from None
    return load_config(node)


def flat_params(cfg: Config) -> dict:
    """The model's parameters as dotted columns (``scenario.firms.n``, ``broker_reward.rate``, ...), and the engine."""
    out = {"engine": cfg.engine}
    for key in parameter_keys():
        out[key] = _get_dotted(cfg, key)
    return out


if __name__ == "__main__":  # regenerate configs/scenario/default.yaml from the schema
    target = Path(__file__).resolve().parents[2] / "configs" / "scenario" / "default.yaml"
    if not target.exists():  # an installed wheel: its configs are a copy, the source is the repository's
        raise SystemExit(f"{target} not found: run this in a source checkout (the repository's configs/)")
    target.write_text(DEFAULT_SCENARIO_HEADER + to_yaml(Config().scenario) + "\n")
    print(f"wrote {target}")
