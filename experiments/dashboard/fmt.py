"""How the pages write numbers: money in yuan with thousands separators (or 万 / 亿), counts, shares, intervals.

One place for each rule, so a figure reads the same on every page and in every chart's hover text. Nothing a person
reads is written with an exponent (no ``4.78714e+07``, no ``1e-05``): numbers are fixed-point, their decimals chosen
by the size of the value AFTER rounding (99,999 and 100,000 yuan are both ``10 万``, 99.96 is ``100``), trailing
zeros dropped (``10 万``, not ``10.0 万``):

- money (:func:`money`): in yuan, whole yuan at 1 yuan and above (``1,752,784 yuan``), 2 decimals below
  (``0.5 yuan``); in 万 (10^4 yuan) or 亿 (10^8 yuan), whole at 1,000 and above (``1,000 万``), 1 decimal from 10
  (``175.3 万``), 2 below (``1.75 亿``); exactly zero is ``0``, never ``0.000``; a sign is kept (a party's net
  position may be negative);
- counts and other numbers (:func:`number`): whole at 100 and above (``1,234``), 1 decimal from 10 (``12.5``),
  2 from 1 (``3.25``), 3 below (``0.125``);
- shares (:func:`share`) as percentages: whole at 100% (``100%``), 1 decimal from 10% (``10.7%``), 2 below
  (``2.5%``);
- a value that is not zero but rounds to zero at its smallest decimal is written as a bound, never as ``0``:
  ``<0.01 万``, ``<0.001``, ``<0.01%``; a negative one as ``>-0.01 万`` (read: between -0.01 and 0), so its sign
  still shows;
- a parameter (a value the reader types back: the Compare page's fields, a sweep's swept values) is written exactly
  by :func:`exact` (the shortest text that reads back as the same float, without an exponent: ``30000000``,
  ``0.00001``), and a draw of a parameter to 3 significant digits (whole numbers whole) by :func:`significant`;
- a metric's value by its kind (:func:`value`, the kind from its glossary entry: :func:`kind_of`); an interval
  ``mean [low, high]`` (:func:`interval`) is clipped to its quantity's domain (the glossary entry's ``low``/``high``:
  a spend, a count, a share cannot be below zero; a share not above one), as a normal interval of a quantity bounded
  at zero may reach below it.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Optional, Union

MONEY_UNITS = {"yuan": (1.0, "yuan"), "wan": (1e4, "万"), "yi": (1e8, "亿")}  # the page's choice: its divisor, its sign
KINDS = ("money", "share", "number")  # how a metric's value is written (:func:`value`)

# decimals by the size of the rounded value: (at least this, decimals), largest first; the last applies below
NUMBER_DECIMALS = ((100, 0), (10, 1), (1, 2), (0, 3))
SHARE_DECIMALS = ((100, 0), (10, 1), (0, 2))        # of the percentage
YUAN_DECIMALS = ((1, 0), (0, 2))
SCALED_DECIMALS = ((1000, 0), (10, 1), (0, 2))      # money in 万 or 亿


def _special(v) -> Optional[str]:
    """The text of an undefined (``-``), infinite (``∞``) or zero (``0``) value; None for any other."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    return None


def _fixed(x: float, steps) -> str:
    """``x`` (finite, non-zero) in fixed point with thousands separators, its decimals by ``steps`` chosen for the
    ROUNDED value, trailing zeros dropped; ``<0.01`` (``>-0.01``) when it rounds to zero at the smallest decimals."""
    def decimals(a):
        return next(d for floor, d in steps if a >= floor)

    a = abs(x)
    d = decimals(a)
    r = round(a, d)
    if decimals(r) != d:  # rounding crossed a step (9.996 -> 10.00): the decimals of the rounded value
        d = decimals(r)
        r = round(a, d)
    if r == 0:
        bound = f"0.{'0' * (d - 1)}1" if d else "1"
        return f"<{bound}" if x > 0 else f">-{bound}"
    text = f"{r:,.{d}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"-{text}" if x < 0 else text


def number(v: float) -> str:
    """A count or a plain number: ``0``, ``12``, ``1,234``, ``12.5``, ``3.25``, ``0.125``, ``<0.001``; ``-`` when
    undefined."""
    s = _special(v)
    return s if s is not None else _fixed(float(v), NUMBER_DECIMALS)


def money(v: float, unit: str = "yuan", suffix: bool = True) -> str:
    """Yuan as the page shows them: ``1,752,784 yuan``, ``175.3 万``, ``0.02 亿``, ``<0.01 亿``; ``0`` for zero."""
    if unit not in MONEY_UNITS:
        raise ValueError(f"unit = {unit!r}: one of {', '.join(MONEY_UNITS)}")
    s = _special(v)
    if s is not None:
        return s
    div, sign = MONEY_UNITS[unit]
    text = _fixed(float(v) / div, YUAN_DECIMALS if unit == "yuan" else SCALED_DECIMALS)
    return f"{text} {sign}" if suffix else text


def share(v: float) -> str:
    """A share as a percentage: ``12.5%``, ``2.25%``, ``100%``, ``<0.01%``, ``0%``."""
    if v is None or not math.isfinite(v):
        return "-"
    if v == 0:
        return "0%"
    return f"{_fixed(100 * float(v), SHARE_DECIMALS)}%"


def exact(v: Union[int, float], separators: bool = False) -> str:
    """A parameter's value exactly, without an exponent: the shortest text that reads back as the same float
    (``float(exact(v)) == v``): ``30000000``, ``0.00001``, ``0.123456789``; with thousands ``separators`` for reading
    only (``30,000,000``: a table of swept values). A numpy number is written as the Python number it holds."""
    if hasattr(v, "item") and not isinstance(v, (bool, int, float)):
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "-" if math.isnan(v) else "∞" if v > 0 else "-∞"
    d = Decimal(repr(float(v))) if isinstance(v, float) else Decimal(int(v))  # float(): numpy's repr names its type
    text = format(d, ",f" if separators else "f")
    if isinstance(v, float) and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def significant(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits in fixed point (a posterior draw of a parameter), whole numbers kept
    whole: ``0.0000123``, ``0.43``, ``12.3``, ``31,415,927``; ``-`` when undefined."""
    s = _special(v)
    if s is not None:
        return s
    if abs(v) >= 10 ** (digits - 1):
        return f"{round(float(v)):,}"
    return exact(float(f"{float(v):.{digits}g}"), separators=True)


def clip(v: float, low: Optional[float] = None, high: Optional[float] = None) -> float:
    """``v`` within [low, high] (either bound may be None)."""
    if low is not None and v < low:
        return low
    if high is not None and v > high:
        return high
    return v


def value(x: float, kind: str, unit: str = "yuan", suffix: bool = True) -> str:
    """A metric's value written by its ``kind`` (:func:`kind_of`): ``money`` in ``unit`` (with its sign unless
    ``suffix`` is false: a table whose row or column says the unit), ``share`` as a percentage, ``number``."""
    if kind == "money":
        return money(x, unit, suffix)
    if kind == "share":
        return share(x)
    if kind == "number":
        return number(x)
    raise ValueError(f"kind = {kind!r}: one of {', '.join(KINDS)}")


def interval(mean: float, lo: float, hi: float, kind: str = "number", unit: str = "yuan",
             low: Optional[float] = None, high: Optional[float] = None, suffix: bool = True) -> str:
    """``mean [lo, hi]`` written as ``kind`` (:func:`value`), the bounds clipped to the domain [``low``, ``high``]
    (a glossary entry's); the value alone when both bounds are the mean (every replicate agreed: ``0``, not
    ``0 [0, 0]``); ``-`` when the mean is undefined. Money ends with its unit's sign unless ``suffix`` is false."""
    if mean is None or not math.isfinite(mean):
        return "-"
    lo, hi = clip(lo, low, high), clip(hi, low, high)
    if lo == mean == hi:
        return value(mean, kind, unit, suffix)
    text = ", ".join(value(x, kind, unit, suffix=False) for x in (lo, hi))
    text = f"{value(mean, kind, unit, suffix=False)} [{text}]"
    return f"{text} {MONEY_UNITS[unit][1]}" if kind == "money" and suffix else text


def metric_interval(entry, mean: float, lo: float, hi: float, unit: str = "yuan", suffix: bool = True) -> str:
    """A metric's level ``mean [lo, hi]``: written by its glossary ``entry``'s kind, clipped to the entry's domain."""
    return interval(mean, lo, hi, kind_of(entry), unit, entry.low, entry.high, suffix)


def unit_name(unit: str) -> str:
    """The money unit as a column's or an axis's title says it: ``yuan``, ``万 yuan`` (10^4), ``亿 yuan`` (10^8)."""
    if unit not in MONEY_UNITS:
        raise ValueError(f"unit = {unit!r}: one of {', '.join(MONEY_UNITS)}")
    return "yuan" if unit == "yuan" else f"{MONEY_UNITS[unit][1]} yuan"


def kind_of(entry) -> str:
    """How :func:`value` writes a metric, from its glossary entry (:mod:`sim.analysis.glossary`; or the entry's unit):
    ``money`` for yuan, ``share`` for a share, else ``number`` (counts, months, ratios)."""
    metric_unit = entry if isinstance(entry, str) else entry.unit
    return {"yuan": "money", "share": "share"}.get(metric_unit, "number")
