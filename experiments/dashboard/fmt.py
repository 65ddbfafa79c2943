"""How the pages write numbers: money in yuan with thousands separators (or 万 / 亿), counts, shares, intervals.

One place for each rule, so a figure reads the same on every page and in every chart's hover text:

- money: ``1,752,784 yuan`` (``unit="yuan"``), ``175.3 万`` (10^4 yuan), ``0.18 亿`` (10^8 yuan); exactly zero is
  ``0``, never ``0.000``; a sign is kept (a party's net position may be negative);
- counts and other numbers: thousands separators, at most three significant decimals below 10;
- an interval ``mean [low, high]`` is clipped to its quantity's domain (a spend, a count, a share cannot be below
  zero; a share not above one), as a normal interval of a quantity bounded at zero may reach below it.
"""

from __future__ import annotations

import math
from typing import Optional

MONEY_UNITS = {"yuan": (1.0, "yuan"), "wan": (1e4, "万"), "yi": (1e8, "亿")}  # the page's choice: its divisor, its sign


def number(v: float) -> str:
    """A count or a plain number: ``0``, ``12``, ``1,234``, ``3.5``, ``0.125``; ``-`` when undefined."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:,.1f}"
    return f"{v:.3g}"


def money(v: float, unit: str = "yuan", suffix: bool = True) -> str:
    """Yuan as the page shows them: ``1,752,784 yuan``, ``175.3 万``, ``0.1753 亿``; ``0`` for zero."""
    if unit not in MONEY_UNITS:
        raise ValueError(f"unit = {unit!r}: one of {', '.join(MONEY_UNITS)}")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    div, sign = MONEY_UNITS[unit]
    x = v / div
    a = abs(x)
    text = f"{x:,.0f}" if a >= 1000 or unit == "yuan" and a >= 1 else f"{x:,.1f}" if a >= 10 else f"{x:.3g}"
    return f"{text} {sign}" if suffix else text


def clip(v: float, low: Optional[float] = None, high: Optional[float] = None) -> float:
    """``v`` within [low, high] (either bound may be None)."""
    if low is not None and v < low:
        return low
    if high is not None and v > high:
        return high
    return v


def interval(mean: float, lo: float, hi: float, kind: str = "number", unit: str = "yuan",
             low: Optional[float] = None, high: Optional[float] = None, suffix: bool = True) -> str:
    """``mean [lo, hi]`` written as ``kind`` (``money``, ``share``, ``number``), the bounds clipped to the domain
    [``low``, ``high``]; the value alone when both bounds are the mean (every replicate agreed: ``0``, not
    ``0 [0, 0]``); ``-`` when the mean is undefined. Money ends with its unit's sign unless ``suffix`` is false (a
    table whose row or column says the unit)."""
    if mean is None or not math.isfinite(mean):
        return "-"
    lo, hi = clip(lo, low, high), clip(hi, low, high)
    write = {"money": lambda x: money(x, unit, suffix=False), "share": share, "number": number}[kind]
    if lo == mean == hi:
        return money(mean, unit, suffix) if kind == "money" else write(mean)
    text = f"{write(mean)} [{write(lo)}, {write(hi)}]"
    return f"{text} {MONEY_UNITS[unit][1]}" if kind == "money" and suffix else text


def unit_name(unit: str) -> str:
    """The money unit as a column's or an axis's title says it: ``yuan``, ``万 yuan`` (10^4), ``亿 yuan`` (10^8)."""
    if unit not in MONEY_UNITS:
        raise ValueError(f"unit = {unit!r}: one of {', '.join(MONEY_UNITS)}")
    return "yuan" if unit == "yuan" else f"{MONEY_UNITS[unit][1]} yuan"


def kind_of(metric_unit: str) -> str:
    """How :func:`interval` writes a glossary unit (:mod:`sim.analysis.glossary`): ``money`` for yuan, ``share`` for a
    share, else ``number`` (counts, months, ratios)."""
    return {"yuan": "money", "share": "share"}.get(metric_unit, "number")


def share(v: float) -> str:
    """A share as a percentage: ``12.5%``, ``0%``."""
    if v is None or not math.isfinite(v):
        return "-"
    if v == 0:
        return "0%"
    return f"{100 * v:.3g}%"
