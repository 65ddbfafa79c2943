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
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

REGIME_NAMES = ("baseline", "free_trial", "broker_reward", "failure_insurance", "combined")
ENGINES = ("mesa", "numba")


class ConfigError(ValueError):
    """A user error in the configuration (reported in one line, exit code 2)."""


def _c(default, *, ge=None, gt=None, le=None, lt=None, choices=None, doc=""):
    """A field with its allowed range, checked by :func:`validate`."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _share(default, doc=""):
    return _c(default, ge=0.0, le=1.0, doc=doc)


def _nested(cls):
    return field(default_factory=cls, metadata={})


# --------------------------------------------------------------------------- scenario
@dataclass
class FirmsConfig:
    n: int = _c(2000, ge=1, doc="number of firms")
    sme_share: float = _share(0.9, "share of firms that are SMEs")
    need_rate_sme: float = _share(0.03, "monthly probability that an idle SME raises a technology need")
    need_rate_large: float = _share(0.06, "same, large firms")
    need_patience: int = _c(6, ge=1, doc="months an unmatched need stays open before the firm gives up")
    self_search_prob: float = _share(0.05, "monthly chance a firm with an open need finds a candidate itself")
    self_noise: float = _c(0.15, ge=0.0, doc="sd of a firm's own error in judging a candidate's success chance")
    cash_median_sme: float = _c(3.0e6, gt=0.0, doc="median cash of an SME (yuan)")
    cash_median_large: float = _c(6.0e7, gt=0.0, doc="median cash of a large firm (yuan)")
    cash_sigma: float = _c(0.8, ge=0.0, doc="log-sd of cash")
    scale_large: float = _c(3.0, gt=0.0, doc="value and cost of a project in a large firm, relative to an SME")
    absorptive_sme_a: float = _c(2.0, gt=0.0, doc="Beta(a, b) of absorptive capacity, SMEs")
    absorptive_sme_b: float = _c(3.0, gt=0.0, doc="")
    absorptive_large_a: float = _c(4.0, gt=0.0, doc="Beta(a, b) of absorptive capacity, large firms")
    absorptive_large_b: float = _c(2.0, gt=0.0, doc="")
    risk_aversion_sme: float = _c(3.0, ge=0.0, doc="median relative risk aversion (CARA coefficient x cash), SMEs")
    risk_aversion_large: float = _c(1.0, ge=0.0, doc="same, large firms")
    risk_aversion_sigma: float = _c(0.3, ge=0.0, doc="log-sd of risk aversion across firms")
    prior_success: float = _c(0.3, gt=0.0, lt=1.0, doc="prior mean belief in the success chance of university technology")
    prior_strength: float = _c(4.0, gt=0.0, doc="weight of that prior, in pseudo-observations")
    belief_weight: float = _share(0.5, "weight of the firm's belief (vs. the match's signal) in its success estimate")
    peer_weight: float = _c(0.05, ge=0.0, doc="weight of one peer outcome in the same sector, relative to an own outcome")


@dataclass
class UniversitiesConfig:
    n: int = _c(10, ge=1, doc="number of universities and research institutes")
    achievements_each: int = _c(60, ge=1, doc="achievements (patents or bundles) per university")
    tto_capacity: int = _c(6, ge=1, doc="negotiations a transfer office can open per month")
    reservation_share: float = _share(0.6, "lowest acceptable licence price, as a share of the asking price")
    bargaining_power: float = _share(0.5, "university's Nash bargaining weight over the price")
    trial_acceptance: float = _share(0.8, "share of universities whose risk appetite admits free-trial contracts")
    inventor_share: float = _share(0.7, "share of university income passed to the inventors")
    max_failures: int = _c(2, ge=1, doc="failed implementations after which an achievement is abandoned")


@dataclass
class AchievementsConfig:
    quality_a: float = _c(6.0, gt=0.0, doc="Beta(a, b) of latent quality")
    quality_b: float = _c(2.0, gt=0.0, doc="")
    maturity_a: float = _c(2.0, gt=0.0, doc="Beta(a, b) of maturity (1 = ready to use; most are early-stage)")
    maturity_b: float = _c(5.0, gt=0.0, doc="")
    value_median: float = _c(5.0e6, gt=0.0, doc="median value of a successful implementation to an SME (yuan)")
    value_sigma: float = _c(1.0, ge=0.0, doc="log-sd of that value")
    cost_share: float = _c(0.12, ge=0.0, doc="implementation (front-end) cost as a share of value")
    immaturity_cost: float = _c(1.0, ge=0.0, doc="extra cost factor for an immature achievement: cost x (1 + k (1 - maturity))")
    ask_share: float = _c(0.2, ge=0.0, doc="asking price as a share of value")
    ask_sigma: float = _c(0.5, ge=0.0, doc="log-sd of the university's error in setting the asking price")


@dataclass
class SuccessConfig:
    maturity_floor: float = _share(0.4, "success multiplier of a fully immature achievement")
    absorptive_floor: float = _share(0.5, "success multiplier of a firm with no absorptive capacity")
    fit_floor: float = _share(0.5, "success multiplier of the worst-fitting match")


@dataclass
class NegotiationConfig:
    months_licence: float = _c(4.0, gt=0.0, doc="mean months to conclude a licence/transfer negotiation")
    breakdown_hazard: float = _share(0.1, "monthly chance a running negotiation breaks down")
    broker_speedup: float = _c(0.6, gt=0.0, le=1.0, doc="factor on the mean duration when a broker is involved")
    implementation_months: int = _c(12, ge=1, doc="months from licence signing to the outcome of the implementation")


@dataclass
class BrokersConfig:
    initial: int = _c(15, ge=0, doc="active brokers at month 0")
    max: int = _c(60, ge=0, doc="brokers that can ever exist (pool of potential entrants)")
    capacity: int = _c(5, ge=1, doc="firms a broker visits per month")
    skill_a: float = _c(3.0, gt=0.0, doc="Beta(a, b) of broker skill")
    skill_b: float = _c(3.0, gt=0.0, doc="")
    noise: float = _c(0.2, ge=0.0, doc="sd of a broker's error in judging success chance, at skill 0 (falls linearly to 0 at skill 1)")
    screen: int = _c(5, ge=1, doc="achievements a broker screens to make one proposal")
    surface_prob: float = _share(0.05, "chance a visit surfaces a latent need in a firm that has none")
    fee_rate: float = _share(0.02, "broker fee as a share of the contract value, paid by the parties")
    fee_fixed: float = _c(3000.0, ge=0.0, doc="broker's service fee per signed contract, paid by the firm at signing (yuan)")
    fee_firm_share: float = _share(0.5, "share of the broker's fee on payments paid by the firm (rest by the university)")
    monthly_cost: float = _c(3000.0, ge=0.0, doc="a broker's operating cost per month (yuan)")
    profit_memory: float = _c(0.9, ge=0.0, lt=1.0, doc="weight of the past in a broker's moving average of monthly profit")
    exit_loss: float = _c(2500.0, ge=0.0, doc="a broker exits when its average monthly profit falls below minus this (yuan)")
    grace_months: int = _c(12, ge=0, doc="months before a new broker may exit")
    entry_candidates: int = _c(2, ge=0, doc="potential entrants considering the market each month")
    entry_max: float = _share(0.2, "entry chance of a candidate when incumbents are very profitable")
    entry_sensitivity: float = _c(2.0, ge=0.0, doc="slope of the logistic entry chance in incumbents' average profit / monthly cost")


@dataclass
class ScenarioConfig:
    name: str = _c("default", doc="scenario name")
    months: int = _c(60, ge=1, doc="months simulated")
    sectors: int = _c(6, ge=1, doc="industrial sectors (firms and achievements each belong to one)")
    firms: FirmsConfig = _nested(FirmsConfig)
    universities: UniversitiesConfig = _nested(UniversitiesConfig)
    achievements: AchievementsConfig = _nested(AchievementsConfig)
    success: SuccessConfig = _nested(SuccessConfig)
    negotiation: NegotiationConfig = _nested(NegotiationConfig)
    brokers: BrokersConfig = _nested(BrokersConfig)


# --------------------------------------------------------------------------- instruments
@dataclass
class RegimeConfig:
    name: str = _c("baseline", doc="regime name")
    free_trial: bool = _c(False, doc="use first, pay later contracts allowed")
    broker_reward: bool = _c(False, doc="government rewards brokers per converted contract")
    insurance: bool = _c(False, doc="patent implementation failure insurance offered")


@dataclass
class TrialConfig:
    term_months: int = _c(24, ge=0, doc="free-trial term: months of free use before payment is due (Lishui: 2 years)")
    success_fee: float = _c(20000.0, ge=0.0, doc="one-off fee paid only if the use succeeds (Tianjin: 20,000 yuan)")
    price_share: float = _share(0.0, "share of the asking price also paid on success (Lishui-style 'pay later')")
    negotiation_months: float = _c(0.5, gt=0.0, doc="mean months to conclude a free-trial negotiation (Lishui: ~half a month)")


@dataclass
class BrokerRewardConfig:
    rate: float = _share(0.015, "reward as a share of the contract value (Zhenhai: at most 1.5%)")
    cap: float = _c(300000.0, ge=0.0, doc="reward cap per project, yuan (Zhenhai: 300,000)")


@dataclass
class InsuranceConfig:
    insurers: int = _c(1, ge=0, doc="insurers offering the product")
    coverage: float = _share(0.8, "share of the implementation cost insured")
    deductible: float = _c(20000.0, ge=0.0, doc="deductible per claim (yuan)")
    loading: float = _c(0.3, ge=0.0, doc="premium loading over the expected claim")
    prior_failure: float = _c(0.6, gt=0.0, lt=1.0, doc="insurer's prior failure rate of insured implementations")
    prior_strength: float = _c(20.0, gt=0.0, doc="weight of that prior, in pseudo-observations")
    subsidy_share: float = _share(0.5, "share of the premium paid by government")
    subsidy_cap: float = _c(200000.0, ge=0.0, doc="premium subsidy cap per policy (yuan)")
    initial_reserves: float = _c(3.0e7, ge=0.0, doc="an insurer's starting reserves (yuan)")
    min_reserves: float = _c(3.0e6, ge=0.0, doc="an insurer stops writing policies below these reserves (yuan)")


@dataclass
class GovernmentConfig:
    annual_budget: Optional[float] = _c(None, ge=0.0, doc="yearly cap on rewards + subsidies (null = none)")


# --------------------------------------------------------------------------- root
@dataclass
class Config:
    seed: int = _c(0, ge=0, doc="first seed; replicates use seed, seed+1, ...")
    seeds: int = _c(10, ge=1, doc="replicates per regime in the main job")
    engine: str = _c("mesa", choices=ENGINES, doc="simulation engine")
    regimes: list = _c(list(REGIME_NAMES), doc="regimes compared by the main job")
    progress: bool = _c(True, doc="show a progress bar")
    workers: int = _c(1, ge=1, doc="processes for the runs of a job (results do not depend on it)")
    grid: dict = _c({}, doc="sweeps: more points run inside each job, {dotted key: [values]}")
    results_dir: Optional[str] = _c(None, doc="sweeps: where result files go (null: <sweep dir>/results)")
    scenario: ScenarioConfig = _nested(ScenarioConfig)
    regime: RegimeConfig = _nested(RegimeConfig)
    trial: TrialConfig = _nested(TrialConfig)
    broker: BrokerRewardConfig = _nested(BrokerRewardConfig)
    insurance: InsuranceConfig = _nested(InsuranceConfig)
    government: GovernmentConfig = _nested(GovernmentConfig)


# --------------------------------------------------------------------------- validation
def _describe(meta) -> str:
    parts = []
    if meta.get("choices"):
        return "one of " + ", ".join(map(str, meta["choices"]))
    for key, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(key) is not None:
            parts.append(f"{sym} {meta[key]:g}")
    return " and ".join(parts)


def _check_value(path: str, value: Any, typ, meta) -> Any:
    origin = typing.get_origin(typ)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        typ = [a for a in typing.get_args(typ) if a is not type(None)][0]
    rng = _describe(meta)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r}: must be true or false")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{path} = {value!r}: must be an integer" + (f" {rng}" if rng else ""))
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} = {value!r}: must be a number" + (f" {rng}" if rng else ""))
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{path} = {value!r}: must be a finite number" + (f" {rng}" if rng else ""))
    elif typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} = {value!r}: must be a string" + (f", {rng}" if rng else ""))
    elif typ is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} = {value!r}: must be a list")
        return list(value)
    elif typ is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path} = {value!r}: must be a mapping")
        return dict(value)
    bad = (
        (meta.get("ge") is not None and value < meta["ge"])
        or (meta.get("gt") is not None and value <= meta["gt"])
        or (meta.get("le") is not None and value > meta["le"])
        or (meta.get("lt") is not None and value >= meta["lt"])
        or (meta.get("choices") and value not in meta["choices"])
    )
    if bad:
        raise ConfigError(f"{path} = {value!r}: must be {rng}")
    return value


def _build(cls, data: Any, path: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'} = {data!r}: must be a mapping with keys "
                          + ", ".join(f.name for f in dataclasses.fields(cls)))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"unknown key '{where}': allowed keys{' in ' + path if path else ''} are "
                          + ", ".join(fields))
    kwargs = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, data.get(name), key)
        elif name in data:
            kwargs[name] = _check_value(key, data[name], typ, f.metadata)
    return cls(**kwargs)


def _cross_checks(cfg: Config) -> None:
    """Rules that involve more than one value."""
    for name in cfg.regimes:
        if name not in REGIME_NAMES:
            raise ConfigError(f"regimes contains {name!r}: allowed regimes are " + ", ".join(REGIME_NAMES))
    if not cfg.regimes:
        raise ConfigError("regimes = []: must name at least one of " + ", ".join(REGIME_NAMES))
    if len(set(cfg.regimes)) != len(cfg.regimes):
        raise ConfigError(f"regimes = {cfg.regimes}: each regime may appear once")
    if cfg.regime.free_trial and cfg.trial.term_months < 1:
        raise ConfigError(f"trial.term_months = {cfg.trial.term_months}: must be >= 1 when free trials are on "
                          f"(regime '{cfg.regime.name}')")
    b = cfg.scenario.brokers
    if b.max < b.initial:
        raise ConfigError(f"scenario.brokers.max = {b.max}: must be >= scenario.brokers.initial ({b.initial})")


def load_config(data: Any) -> Config:
    """Validate a mapping (dict, OmegaConf node or Config) and return a :class:`Config`."""
    if isinstance(data, Config):
        data = dataclasses.asdict(data)
    else:
        try:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(data, DictConfig):
                data = OmegaConf.to_container(data, resolve=True)
        except ImportError:  # pragma: no cover - omegaconf is a dependency
            pass
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "hydra"}
    cfg = _build(Config, data, "")
    _cross_checks(cfg)
    return cfg


def with_regime(cfg: Config, regime: RegimeConfig | dict) -> Config:
    """A copy of ``cfg`` under another regime (validated again)."""
    data = dataclasses.asdict(cfg)
    data["regime"] = dataclasses.asdict(regime) if isinstance(regime, RegimeConfig) else dict(regime)
    return load_config(data)


def replace(cfg: Config, **dotted: Any) -> Config:
    """A copy of ``cfg`` with dotted keys replaced, e.g. ``replace(cfg, **{"broker.cap": 5e5})``."""
    data = dataclasses.asdict(cfg)
    for key, value in dotted.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], dict):
                raise ConfigError(f"unknown key '{key}'")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"unknown key '{key}': allowed keys are " + ", ".join(node))
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
# Every number of the model's population and behaviour; README.md gives the sources.
# Written by `python -m sim.config` from the schema in sim/config.py;
# tests/test_config.py checks that the two agree.
"""


if __name__ == "__main__":  # regenerate configs/scenario/default.yaml from the schema
    from pathlib import Path

    target = Path(__file__).resolve().parent.parent / "configs" / "scenario" / "default.yaml"
    target.write_text(DEFAULT_SCENARIO_HEADER + to_yaml(Config().scenario) + "\n")
    print(f"wrote {target}")
