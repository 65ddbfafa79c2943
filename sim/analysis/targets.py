"""Calibration targets as data: each reported figure with its source, definition, count and setting.

A *target set* is a YAML file, ``configs/targets/<name>.yaml`` (or any path), with two
sections:

* ``settings``: the situations the figures were measured in, each a scenario, the
  instruments on, its months and the overrides that reproduce it (``county`` with the
  free trial and expert visits for one year, for Longquan's funnel);
* ``targets``: each figure, with its ``source``, ``definition`` and ``period``; the
  ``setting`` it was measured in; the model's ``statistic``, an arithmetic expression of
  run metrics (``matches_by_visits / needs_surfaced_by_visits``); the figure itself as a
  ``count`` of a ``denominator`` (a share: its sampling uncertainty is binomial) or as a
  ``value`` with its ``sd``; a ``discrepancy`` (the model's structural error, in the
  statistic's units: judgement, stated); and its ``use``, ``fit`` or ``holdout`` with the
  reason (``why``). Held-out targets are predicted, never fitted.

:func:`load_targets` validates a file like a config (one-line :class:`ConfigError` naming
the key, the value and what is allowed: a count larger than its denominator, an unknown
metric in a statistic, a setting no target uses, ...).
"""

from __future__ import annotations

import ast
import functools
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..core.config import Config, ConfigError, one_line
from ..core.locations import CONFIG_DIR
from ..core.schema import is_finite_number
from ..core.yamlsafe import YamlError, read_yaml

TARGETS_DIR = CONFIG_DIR / "targets"
USES = ("fit", "holdout")
SD_RELATIVE_MIN = 1e-12  # least sd of a value, relative to max(|value|, 1): the distance's scale stays a normal float
# quantities of a run's setting a statistic may use besides the run metrics (sim.core.results.METRICS)
SETTING_QUANTITIES = {
    "firms": lambda cfg: cfg.scenario.firms.n,
    "stock_initial": lambda cfg: cfg.scenario.universities.n * cfg.scenario.universities.achievements_each,
    "months": lambda cfg: cfg.scenario.months,
}


@dataclass(frozen=True)
class Setting:
    """Where a figure was measured: a scenario, the instruments on, the months, and overrides."""

    name: str
    scenario: str
    instruments: tuple[str, ...] = ()
    months: Optional[int] = None
    overrides: dict = field(default_factory=dict)
    seeds: int = 1          # replicates per evaluation (more for small settings whose counts are few)
    note: str = ""

    def overrides_list(self) -> list[str]:
        """Hydra overrides that compose this setting's config (before any calibrated parameter)."""
        out = [f"scenario={self.scenario}", f"regime.name=setting_{self.name}",
               "regime.instruments=[" + ",".join(self.instruments) + "]", "progress=false", "engine=numba"]
        if self.months is not None:
            out.append(f"scenario.months={self.months}")
        out += [f"{k}={_hydra_value(v)}" for k, v in self.overrides.items()]
        return out

    def config(self, config_dirs=()) -> Config:
        """The validated config of this setting."""
        from ..core.config import compose

        try:
            return compose(*self.overrides_list(), config_dirs=config_dirs)
        except ConfigError as e:
            raise ConfigError(f"settings.{self.name}: {e}") from None


@dataclass(frozen=True)
class Target:
    """One reported figure and how the model computes it."""

    name: str
    setting: str
    statistic: str
    source: str
    definition: str
    period: str
    use: str
    why: str
    count: Optional[float] = None
    denominator: Optional[float] = None
    value: Optional[float] = None
    sd: Optional[float] = None
    discrepancy: float = 0.0

    @property
    def observed(self) -> float:
        return self.count / self.denominator if self.count is not None else self.value

    @property
    def sampling_sd(self) -> float:
        """The figure's own sampling uncertainty: binomial for a count of a denominator, else the stated sd."""
        if self.count is not None:
            # binomial at (count + 1/2) / (denominator + 1): a share of 0 or 1 would otherwise claim certainty
            p = (self.count + 0.5) / (self.denominator + 1.0)
            return math.sqrt(p * (1 - p) / self.denominator)
        return self.sd

    @property
    def sigma(self) -> float:
        """The scale of this target's error in the distance: sampling and model discrepancy together."""
        return math.sqrt(self.sampling_sd ** 2 + self.discrepancy ** 2)

    def evaluate(self, means: dict, cfg: Config) -> float:
        """The statistic from the mean over replicates of each run metric (a ratio of sums); NaN where undefined."""
        return evaluate(self.statistic, means, cfg)


@dataclass(frozen=True)
class TargetSet:
    """A validated target file: its settings and targets."""

    name: str
    description: str
    path: Path
    settings: dict
    targets: dict

    def by_use(self, use: str) -> list[Target]:
        return [t for t in self.targets.values() if t.use == use]

    def settings_for(self, targets) -> list[Setting]:
        """The settings the given targets need, in file order."""
        wanted = {t.setting for t in targets}
        return [s for name, s in self.settings.items() if name in wanted]


# --------------------------------------------------------------------------- statistics
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b if b != 0 else math.nan}


@functools.lru_cache(maxsize=None)
def metric_names(expr: str) -> frozenset:
    """The run metrics a statistic reads (not the setting's quantities)."""
    names = {n.id for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, ast.Name)}
    return frozenset(names - set(SETTING_QUANTITIES))


def check_statistic(expr: str, where: str) -> None:
    """Refuse a statistic that is not arithmetic (+ - * / and parentheses) of known metrics and numbers."""
    from ..core.results import METRICS

    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(f"{where} = {expr!r}: must be an expression of run metrics, e.g. 'successes / contracts'")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise ConfigError(f"{where} = {one_line(expr, 80)!r}: cannot be parsed; use + - * / of run metrics") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id not in METRICS and node.id not in SETTING_QUANTITIES:
                raise ConfigError(f"{where} = {one_line(expr, 80)!r}: unknown metric '{node.id}'; allowed are the "
                                  "run metrics (docs/reference/outputs.md) and " + ", ".join(SETTING_QUANTITIES))
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _OPS:
                raise ConfigError(f"{where} = {one_line(expr, 80)!r}: only + - * / are allowed")
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, numbers.Real):
                raise ConfigError(f"{where} = {one_line(expr, 80)!r}: constants must be numbers")
        elif not isinstance(node, (ast.Expression, ast.Load, ast.operator, ast.UnaryOp, ast.USub)):
            raise ConfigError(f"{where} = {one_line(expr, 80)!r}: only + - * / of run metrics and numbers")


@functools.lru_cache(maxsize=None)
def _parsed(expr: str):
    return ast.parse(expr, mode="eval")


def evaluate(expr: str, means: dict, cfg: Config) -> float:
    """Evaluate a checked statistic on the means of run metrics over replicates (and the setting's quantities)."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            return -ev(node.operand)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if node.id in SETTING_QUANTITIES:
            return float(SETTING_QUANTITIES[node.id](cfg))
        return float(means[node.id])

    value = ev(_parsed(expr))
    return value if math.isfinite(value) else math.nan


# --------------------------------------------------------------------------- loading
def target_set_names() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.yaml"))


def resolve_path(name_or_path: str) -> Path:
    """``configs/targets/<name>.yaml`` for a name, else the path given."""
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ConfigError(f"target_set = {name_or_path!r}: must name a target set ({', '.join(target_set_names())}) "
                          "or a YAML file")
    if "/" not in name_or_path and not name_or_path.endswith((".yaml", ".yml")):
        path = TARGETS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(f"target_set = {name_or_path}: no such target set; allowed: "
                              + ", ".join(target_set_names()) + " (or the path of a YAML file)")
        return path
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"target_set = {name_or_path}: no such file")
    return path


def _hydra_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    return str(v)


def _text(d: dict, key: str, where: str, required: bool = True) -> str:
    v = d.get(key)
    if v is None and not required:
        return ""
    if isinstance(v, numbers.Real) and not isinstance(v, bool):  # a year: period: 2019
        v = str(v)
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}.{key} = {v!r}: must be a non-empty text")
    return " ".join(v.split())


def _number(d: dict, key: str, where: str, lo: float = 0.0, strict: bool = False, required: bool = False):
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError(f"{where}.{key}: missing; must be a number")
        return None
    if not is_finite_number(v):  # (1 and 400 zeros: no float, refused here)
        raise ConfigError(f"{where}.{key} = {v!r}: must be a finite number")
    if v < lo or (strict and v == lo):
        raise ConfigError(f"{where}.{key} = {v!r}: must be {'>' if strict else '>='} {lo:g}")
    return float(v)


_SETTING_KEYS = {"scenario", "instruments", "months", "overrides", "seeds", "note"}
_TARGET_KEYS = {"setting", "statistic", "source", "definition", "period", "use", "why", "count", "denominator",
                "value", "sd", "discrepancy"}


def _check_keys(d: Any, allowed: set, where: str) -> None:
    """A mapping with none but the allowed keys."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where} = {d!r}: must be a mapping with keys " + ", ".join(sorted(allowed)))
    unknown = sorted(set(d) - allowed, key=str)   # (keys of a file: any type, any text)
    if unknown:
        raise ConfigError(f"unknown key '{where}.{one_line(unknown[0], 80)}': allowed keys are "
                          + ", ".join(sorted(allowed)))


def _setting(name: str, d: Any) -> Setting:
    from ..core.config import INSTRUMENT_NAMES, parameter_keys

    where = f"settings.{one_line(name, 80)}"
    _check_keys(d, _SETTING_KEYS, where)
    instruments = d.get("instruments", []) or []
    if not isinstance(instruments, list) or any(i not in INSTRUMENT_NAMES for i in instruments):
        raise ConfigError(f"{where}.instruments = {instruments!r}: must be a list of " + ", ".join(INSTRUMENT_NAMES))
    overrides = d.get("overrides", {}) or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}.overrides = {overrides!r}: must be a mapping of dotted keys to values")
    keys = set(parameter_keys())
    for k in overrides:
        if k not in keys or k == "scenario.months" or k.startswith("regime."):
            raise ConfigError(f"{where}.overrides: unknown key '{one_line(k, 80)}': must be a model parameter (not "
                              "regime.* nor scenario.months: use instruments and months)")
    months = d.get("months")
    if months is not None and (isinstance(months, bool) or not isinstance(months, int) or months < 1):
        raise ConfigError(f"{where}.months = {months!r}: must be an integer >= 1")
    seeds = d.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise ConfigError(f"{where}.seeds = {seeds!r}: must be an integer >= 1 and <= 100")
    scenario = d.get("scenario")
    if not isinstance(scenario, str) or not scenario:
        raise ConfigError(f"{where}.scenario = {scenario!r}: must name a scenario (configs/scenario/<name>.yaml)")
    return Setting(name, scenario, tuple(instruments), months, dict(overrides), seeds, str(d.get("note", "") or ""))


def _target(name: str, d: Any, settings: dict) -> Target:
    where = f"targets.{one_line(name, 80)}"
    _check_keys(d, _TARGET_KEYS, where)
    setting = d.get("setting")
    if not isinstance(setting, str) or setting not in settings:  # (a list is no setting: `in` a dict raised TypeError)
        raise ConfigError(f"{where}.setting = {setting!r}: must be one of the settings: "
                          + ", ".join(map(str, settings)))
    check_statistic(d.get("statistic"), f"{where}.statistic")
    use = d.get("use")
    if use not in USES:
        raise ConfigError(f"{where}.use = {use!r}: must be one of " + ", ".join(USES))
    count = _number(d, "count", where)
    denominator = _number(d, "denominator", where, lo=1.0)
    value = d.get("value")
    sd = _number(d, "sd", where, strict=True)
    if (count is None) != (denominator is None):
        raise ConfigError(f"{where}: give both count and denominator (a share), or value and sd")
    if count is not None:
        if value is not None or sd is not None:
            raise ConfigError(f"{where}: give either count and denominator, or value and sd, not both")
        if count > denominator:
            raise ConfigError(f"{where}.count = {count:g}: must be <= its denominator ({denominator:g})")
        p = (count + 0.5) / (denominator + 1.0)   # as Target.sampling_sd: the distance divides by it
        if not math.sqrt(p * (1 - p) / denominator) >= SD_RELATIVE_MIN:  # (a denominator of 1e162 gave 0: inf)
            raise ConfigError(f"{where}.denominator = {denominator:g}: too large: the share's sampling sd, "
                              f"sqrt(p (1 - p) / denominator), must be at least {SD_RELATIVE_MIN:g}")
    else:
        value = _number(d, "value", where, lo=-math.inf, required=True)
        if sd is None:
            raise ConfigError(f"{where}.sd: missing; a value needs its sampling sd (> 0)")
        floor = SD_RELATIVE_MIN * max(abs(value), 1.0)
        if sd < floor:  # the distance divides by it (squared): smaller underflows to 0 or overflows every distance
            raise ConfigError(f"{where}.sd = {sd!r}: must be at least {SD_RELATIVE_MIN:g} x max(|value|, 1) = "
                              f"{floor:g}")
    discrepancy = _number(d, "discrepancy", where) or 0.0
    return Target(name, setting, " ".join(d["statistic"].split()), _text(d, "source", where),
                  _text(d, "definition", where), _text(d, "period", where), use, _text(d, "why", where),
                  count, denominator, value, sd, discrepancy)


def load_targets(name_or_path: str, fitting: bool = True) -> TargetSet:
    """Read and validate a target set (a name of ``configs/targets/`` or a path); ``fitting``: it must have a target to
    fit (a set only predicted, from an earlier posterior, need not)."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = resolve_path(name_or_path)
    try:
        raw = read_yaml(path, omegaconf=True)  # within limits of size and aliases (sim/core/yamlsafe.py)
    except YamlError as e:
        raise ConfigError(f"target_set = {path}: cannot be read ({one_line(e.reason, 160)})") from None
    # as OmegaConf.load: an empty file is an empty mapping (a text would be parsed again: refused below); interpolations
    # (${...}) are read as plain text, never resolved (an exponential chain `b: ${a}${a}`, `c: ${b}${b}`... would hang)
    try:
        data = OmegaConf.to_container(OmegaConf.create({} if raw is None else raw), resolve=False) \
            if isinstance(raw, (dict, list)) or raw is None else raw
    except (OmegaConfBaseException, yaml.YAMLError, ValueError, OSError) as e:
        raise ConfigError(f"target_set = {path}: cannot be read ({one_line(e, 120)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"target_set = {path}: must be a mapping with name, description, settings, targets")
    unknown = sorted(set(data) - {"name", "description", "settings", "targets"}, key=str)
    if unknown:
        raise ConfigError(f"unknown key '{one_line(unknown[0], 80)}' in {path.name}: allowed keys are name, "
                          "description, settings, targets")
    for key in ("settings", "targets"):
        if not isinstance(data.get(key), dict) or not data[key]:
            raise ConfigError(f"{key} = {data.get(key)!r} in {path.name}: must be a non-empty mapping")
    settings = {n: _setting(n, d) for n, d in data["settings"].items()}
    targets = {n: _target(n, d, settings) for n, d in data["targets"].items()}
    if fitting and not any(t.use == "fit" for t in targets.values()):
        raise ConfigError(f"targets in {path.name}: at least one target must have use: fit")
    unused = [s for s in settings if not any(t.setting == s for t in targets.values())]
    if unused:
        raise ConfigError(f"settings.{one_line(unused[0], 80)} in {path.name}: no target uses it")
    name = data.get("name", path.stem)
    return TargetSet(str(name), " ".join(str(data.get("description", "")).split()), path, settings, targets)
