"""The building blocks of the configuration schema: limits, typed fields with ranges, errors.

:mod:`sim.core.config` (the scenario and the run) and every instrument module
(:mod:`sim.instruments`) declare their parameters with these helpers: a dataclass
field with its default, its allowed range and a one-line meaning, validated by
:func:`sim.core.config.load_config`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import field
from typing import Any

# the regimes and the instruments each switches on (free_trial, broker_reward, insurance);
# configs/regime/*.yaml say the same (tests/core/test_config.py checks that they agree)
ENGINES = ("mesa", "numba")

# --- limits of the schema (judgement: far beyond any setting the sources describe, and
# small enough that no accepted value can overflow, divide by zero or exhaust memory) ---
MONEY_MAX = 1.0e12        # yuan per amount: a trillion, ~1% of China's GDP; sums stay exact (< 2**53)
SIGMA_MAX = 3.0           # log-sd of a log-normal: the 95th percentile is ~140x the median
BETA_MIN, BETA_MAX = 0.1, 1000.0   # Beta(a, b) shapes the keyed sampler draws exactly (no 0/0)
MONTHS_MAX = 1200         # a century of months
POPULATION_MAX = 10**8    # firms, or achievements in all; memory is checked against the machine too
COUNT_MAX = 10**6         # brokers, transfer-office capacity, seeds, ...
PROJECTS_MAX = 100        # technology projects a firm runs at once
PER_MONTH_MAX = 10**4     # a broker's visits, screened achievements, entry candidates per month
SEED_MAX = 2**63 - 1      # seeds are int64 in the kernels
MULTIPLIER_MAX = 1000.0   # scale factors, pseudo-observation weights, ...
VISITS_MAX = 10**9        # broker screenings a month (brokers x visits x screened achievements)
RUN_WORK_MAX = 1.0e10     # a run's steps (sim.core.config.run_work): ~10^4 default runs, ~15 min on the Numba engine here
NEGOTIATION_MIN = 0.01    # mean months of a negotiation: any mean up to a month concludes in the first month anyway
SPEEDUP_MIN = 0.01        # a broker's factor on a negotiation's mean months: a hundredth of its time at most


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


def _money(default, doc="", positive=False):
    """An amount of yuan, up to :data:`MONEY_MAX`."""
    return _c(default, gt=0.0 if positive else None, ge=None if positive else 0.0, le=MONEY_MAX, doc=doc)


def _sigma(default, doc=""):
    return _c(default, ge=0.0, le=SIGMA_MAX, doc=doc)


def _shape(default, doc=""):
    return _c(default, ge=BETA_MIN, le=BETA_MAX, doc=doc)


def _months(default, doc="", lo=1):
    return _c(default, ge=lo, le=MONTHS_MAX, doc=doc)


def _factor(default, doc="", positive=False, hi=MULTIPLIER_MAX):
    return _c(default, gt=0.0 if positive else None, ge=None if positive else 0.0, le=hi, doc=doc)


def _nested(cls):
    return field(default_factory=cls, metadata={})



def is_finite_number(value: Any) -> bool:
    """A real number, not a bool, and finite; an integer beyond any float (``1`` and 400 zeros in a YAML file) is not
    finite (``math.isfinite`` would raise OverflowError on it)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _show(value: Any) -> str:
    """A value as the user wrote it, cut short (an error message is one line)."""
    text = repr(value)
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(meta) -> str:
    parts = []
    if meta.get("choices"):
        return "one of " + ", ".join(map(str, meta["choices"]))
    for key, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(key) is not None:
            v = meta[key]
            parts.append(f"{sym} {v}" if isinstance(v, int) else f"{sym} {v:g}")
    return " and ".join(parts)




# the names instrument modules use (the underscored ones are kept for sim.core.config)
param, share, money, months, factor, sigma, shape = _c, _share, _money, _months, _factor, _sigma, _shape


# --------------------------------------------------------------------------- sizes of an exploration's design
# judgement: a design of 10^7 points (its matrix ~80 bytes a parameter-point, ~1.6 GB for 20 parameters, before
# outcomes) and 10^7 runs (~2 days on one core at the default scenario's ~20 ms a run on the Numba engine) is beyond
# any study of this model; far more exhausted this machine (23 GB) before the first run, or never ended
DESIGN_POINTS_MAX = 10**7
DESIGN_RUNS_MAX = 10**7


def check_design(key: str, value, points: int, runs: int) -> None:
    """Refuse, in one line naming ``key = value`` with the estimate, a design of more than :data:`DESIGN_POINTS_MAX`
    points or :data:`DESIGN_RUNS_MAX` runs (e.g. ``sensitivity.sobol.n``: ``n (d + 2)`` points, times replicates)."""
    if points > DESIGN_POINTS_MAX:
        raise ConfigError(f"{key} = {_show(value)}: a design of {points:g} points, more than the "
                          f"{DESIGN_POINTS_MAX:g} that fit in memory here; make it smaller")
    if runs > DESIGN_RUNS_MAX:
        raise ConfigError(f"{key} = {_show(value)}: {points:g} points x replicates = {runs:g} runs, more than the "
                          f"{DESIGN_RUNS_MAX:g} a design may take (days on this machine); make it smaller")
