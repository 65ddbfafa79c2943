"""Statistics of a regime comparison: means, intervals, paired effects, cost per extra conversion.

Every regime runs on the same seeds, and a seed draws the same population and
chance events under every regime (common random numbers), so a regime's
effect is estimated from the per-seed paired differences against baseline.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import pandas as pd
from scipy import stats

from ..core import ledger
from ..core.results import METRICS

# metrics reported in the comparison table, in summary order: every run metric but the parts of a group of
# payments (the group is shown: broker fees, premiums) and the brokered share of matches
_PARTS = {k.name for k in ledger.KINDS if k.metrics}
_PARTS |= {f"{name}_pv" for name in _PARTS}
_SHOWN = tuple(m for m in METRICS if m not in _PARTS and m not in ("matches_brokered", "brokers_mean"))
# the split by firm size (<metric>_sme, <metric>_large) has a table of its own
SIZE_METRICS = tuple(m for m in _SHOWN if m.endswith(("_sme", "_large")))
TABLE_METRICS = tuple(m for m in _SHOWN if m not in SIZE_METRICS)
# the outcomes whose spread across seeds the main job prints (5th, 50th, 95th percentiles)
TAIL_METRICS = ("successes", "gov_spend", "public_cost", "university_income", "claims", "insurer_reserves_final",
                "firms_below_start")
# public cost per extra conversion: (row of the table, the spend, the conversions it divides by). Conversions are
# the expected ones (realised, and the deals running at the horizon at their chance of success: a deal signed late
# adds its cost but would add no conversion otherwise); in present values both discounted at the same rate
COSTS = (
    ("cost_per_extra_conversion", "gov_spend", "successes_expected"),                # government's payments
    ("cost_per_extra_conversion_public", "public_cost", "successes_expected"),       # ... less what public bodies keep
    ("cost_per_extra_conversion_pv", "gov_spend_pv", "successes_expected_pv"),       # the same, present values
    ("cost_per_extra_conversion_public_pv", "public_cost_pv", "successes_expected_pv"),
)
COST_ROWS = tuple(c for c, _, _ in COSTS)
BASELINE = "baseline"
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240801


def mean_ci(x, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the finite values of ``x`` (for differences: paired effects, whose domain is
    the whole line; a level's interval is :func:`mean_interval`'s)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan, np.nan, np.nan
    m = float(x.mean())
    if x.size < 2 or np.all(x == x[0]):
        return m, m, m
    half = float(_t_quantile(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return m, m - half, m + half


@functools.lru_cache(maxsize=64)
def _resample_counts(n: int) -> np.ndarray:
    """How often each of ``n`` replicates is drawn in each of the bootstrap resamples, (resamples x n); from
    ``BOOTSTRAP_SEED`` alone, so every interval of a table is reproducible."""
    idx = np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    rows = np.arange(BOOTSTRAP_RESAMPLES)[:, None] * n
    counts = np.bincount((idx + rows).ravel(), minlength=BOOTSTRAP_RESAMPLES * n).reshape(BOOTSTRAP_RESAMPLES, n)
    counts.setflags(write=False)
    return counts


def _percentile_rows(sorted_values: np.ndarray, level: float):
    """The rows of ascending resampled statistics that bound the central ``level`` (the percentile interval)."""
    n = sorted_values.shape[0]
    return (sorted_values[int(np.floor((1 - level) / 2 * (n - 1)))],
            sorted_values[int(np.ceil((1 + level) / 2 * (n - 1)))])


def mean_intervals(values, level: float = 0.95) -> np.ndarray:
    """Mean and percentile-bootstrap interval of each column of ``values`` (replicates x columns), (columns x 3).

    The interval of a level (a spend, a count, a share, a ratio): the mean of replicates
    resampled with replacement lies between their smallest and largest value, so the
    interval never leaves the quantity's domain (a spend that is never negative gets no
    negative bound, as a Student-t interval of a skewed sample does). Resampled by
    replicate (seed, or posterior draw), ``BOOTSTRAP_RESAMPLES`` times, from
    ``BOOTSTRAP_SEED``. A column's non-finite values are left out; no finite value: NaN; one
    value, or all equal: the value itself.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    out = np.full((values.shape[1], 3), np.nan)
    finite = np.isfinite(values)
    whole = finite.all(axis=0)
    for cols, x in [(np.nonzero(whole)[0], values[:, whole])] + [([j], values[finite[:, j], j][:, None])
                                                                 for j in np.nonzero(~whole)[0]]:
        if len(cols) == 0 or x.shape[0] == 0:
            continue
        low, high = x.min(axis=0), x.max(axis=0)
        same = low == high
        mean = np.where(same, low, x.mean(axis=0))   # all equal: exactly their value (a sum's rounding aside)
        out[cols, 0] = out[cols, 1] = out[cols, 2] = mean
        if x.shape[0] < 2:
            continue
        means = np.sort(_resample_counts(x.shape[0]) @ x / x.shape[0], axis=0)
        lo, hi = _percentile_rows(means, level)
        # within the sample's range (the rounding of resampled sums aside)
        out[cols, 1] = np.where(same, mean, np.clip(lo, low, high))
        out[cols, 2] = np.where(same, mean, np.clip(hi, low, high))
    return out


def mean_interval(x, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of the finite values of ``x`` (:func:`mean_intervals`)."""
    m, lo, hi = mean_intervals(np.asarray(x, dtype=float).ravel(), level)[0]
    return float(m), float(lo), float(hi)


@functools.lru_cache(maxsize=256)
def _t_quantile(q: float, dof: int) -> float:
    """Student's t quantile (cached: a table asks for the same few thousands of times)."""
    return float(stats.t.ppf(q, dof))


def cost_per_extra_conversion(d_spend, d_conversions, level: float = 0.95) -> tuple[float, float, float]:
    """Public cost per additional conversion: mean extra spend / mean extra conversions.

    Interval by a paired bootstrap over seeds (fixed seed, so the table is
    reproducible). NaN where the regime adds no conversions on average.
    """
    d_spend = np.asarray(d_spend, dtype=float)
    d_conv = np.asarray(d_conversions, dtype=float)
    if d_conv.size == 0 or d_conv.mean() <= 0:
        return np.nan, np.nan, np.nan
    est = float(d_spend.mean() / d_conv.mean())
    if d_conv.size < 2:
        return est, est, est
    gen = np.random.default_rng(BOOTSTRAP_SEED)
    idx = gen.integers(0, d_conv.size, size=(BOOTSTRAP_RESAMPLES, d_conv.size))
    num = d_spend[idx].mean(axis=1)
    den = d_conv[idx].mean(axis=1)
    # a resample with no extra conversions has an unbounded cost
    ratios = np.sort(np.where(den > 0, num / np.where(den > 0, den, 1), np.inf))
    lo, hi = _percentile_rows(ratios, level)
    return est, float(lo), float(hi)


def by_draw(summary: pd.DataFrame) -> pd.DataFrame:
    """On a posterior (column ``draw_block``: the replicates of one posterior draw), one row per regime and draw:
    the mean over the draw's seeds. Runs of one draw share its parameters, so they are not independent replicates
    of the parameter uncertainty: intervals are taken over draws (seeds within a draw only sharpen its mean)."""
    if "draw_block" not in summary.columns:
        return summary
    numeric = [c for c in summary.columns if c not in ("regime", "seed", "draw_block")
               and pd.api.types.is_numeric_dtype(summary[c])]
    out = summary.groupby(["regime", "draw_block"], sort=False)[numeric].mean().reset_index()
    return out.rename(columns={"draw_block": "seed"})  # the pairing key: the same draw under every regime


def comparison_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Tidy table: one row per regime x metric with mean, interval, and paired effect vs baseline (on a posterior,
    over draws: :func:`by_draw`)."""
    summary = by_draw(summary)
    rows = []
    regimes = list(dict.fromkeys(summary["regime"]))
    base = summary[summary["regime"] == BASELINE].set_index("seed") if BASELINE in regimes else None
    metrics = list(TABLE_METRICS + SIZE_METRICS)
    for name in regimes:
        runs = summary[summary["regime"] == name].set_index("seed")
        paired = base is not None and name != BASELINE
        values = runs[metrics].to_numpy(dtype=float)  # seeds x metrics: columns read once, not cell by cell
        levels = mean_intervals(values)               # bootstrap: a level's interval stays in its domain
        if paired:
            common = runs.index.intersection(base.index)
            treated, control = runs.loc[common], base.loc[common]
            diffs = treated[metrics].to_numpy(dtype=float) - control[metrics].to_numpy(dtype=float)
        for j, metric in enumerate(metrics):
            column = values[:, j]
            m, lo, hi = levels[j]
            p5, p50, p95 = np.percentile(column, [5, 50, 95]) if np.isfinite(column).all() else (np.nan,) * 3
            row = {"regime": name, "metric": metric, "mean": m, "ci_low": lo, "ci_high": hi,
                   "effect": np.nan, "effect_low": np.nan, "effect_high": np.nan, "seeds": len(runs),
                   "p5": p5, "p50": p50, "p95": p95}
            if paired:
                row["effect"], row["effect_low"], row["effect_high"] = mean_ci(diffs[:, j])
            rows.append(row)
        for cost, spend, conversions in COSTS:
            row = {"regime": name, "metric": cost, "mean": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                   "effect": np.nan, "effect_low": np.nan, "effect_high": np.nan, "seeds": len(runs)}
            if paired:
                d_spend = treated[spend].to_numpy(dtype=float) - control[spend].to_numpy(dtype=float)
                d_conv = treated[conversions].to_numpy(dtype=float) - control[conversions].to_numpy(dtype=float)
                row["mean"], row["ci_low"], row["ci_high"] = cost_per_extra_conversion(d_spend, d_conv)
            rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v: float) -> str:
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    if not np.isfinite(v):
        return "-"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.0f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}"
    return f"{v:.3f}"


# the headline: what each regime adds against baseline, and what it costs
# extra expected conversions: the realised ones plus the deals running at the horizon at their chance of success, what
# a cost per extra conversion divides by (a regime that delays conversions may add expected ones and realise fewer)
HEADLINE = (("contracts", "effect", "extra contracts"), ("successes", "effect", "extra conversions"),
            ("successes_expected", "effect", "extra expected conversions"),
            ("gov_spend", "mean", "public spend (yuan)"),
            ("cost_per_extra_conversion", "mean", "cost per extra conversion (yuan)"))


def _cell(row, col: str) -> str:
    lo, hi = ("ci_low", "ci_high") if col == "mean" else ("effect_low", "effect_high")
    v = row[col]
    return "-" if not np.isfinite(v) else f"{_fmt(v)} [{_fmt(row[lo])}, {_fmt(row[hi])}]"


def headline_table(table: pd.DataFrame, at_equal_spend: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per regime but the baseline: its extra contracts and conversions against baseline, its public spend
    and cost per extra conversion (mean [95% interval]), and with ``at_equal_spend`` (the table of the same regimes
    under one yearly budget) the extra conversions and their cost there. Cheapest conversions first."""
    rows = []
    indexed = table.set_index(["regime", "metric"])
    cols = [(indexed, metric, col, label) for metric, col, label in HEADLINE]
    if at_equal_spend is not None:
        eq = at_equal_spend.set_index(["regime", "metric"])
        cols += [(eq, "successes", "effect", "extra conversions at equal spend"),
                 (eq, "cost_per_extra_conversion", "mean", "cost per extra conversion at equal spend (yuan)")]
    for regime in dict.fromkeys(table["regime"]):
        if regime == BASELINE:
            continue
        row = {"regime": regime}
        for t, metric, col, label in cols:
            row[label] = _cell(t.loc[(regime, metric)], col) if (regime, metric) in t.index else "-"
        key = (regime, "cost_per_extra_conversion")
        row["_cost"] = float(indexed.loc[key, "mean"]) if key in indexed.index else np.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["_key"] = df["_cost"].fillna(np.inf)
    return df.sort_values("_key", kind="stable").drop(columns=["_cost", "_key"])


def headline_numbers(table: pd.DataFrame, at_equal_spend: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """The headline's figures as numbers (what :func:`headline_table` writes as text): a row per regime but the
    baseline and figure, with its metric, statistic (``effect``: paired difference against baseline; ``mean``: the
    regime's level), whether at equal spend, and mean, low and high of its 95% interval; regimes in the headline's
    order (cheapest conversion first)."""
    figures = [(metric, col, label, False) for metric, col, label in HEADLINE]
    if at_equal_spend is not None:
        figures += [("successes", "effect", "extra conversions at equal spend", True),
                    ("cost_per_extra_conversion", "mean", "cost per extra conversion at equal spend (yuan)", True)]
    tables = {False: table.set_index(["regime", "metric"]),
              True: None if at_equal_spend is None else at_equal_spend.set_index(["regime", "metric"])}
    order = headline_table(table, at_equal_spend)
    rows = []
    for regime in (order["regime"] if len(order) else []):
        for metric, col, label, equal in figures:
            t = tables[equal]
            if (regime, metric) not in t.index:
                continue
            r = t.loc[(regime, metric)]
            lo, hi = ("ci_low", "ci_high") if col == "mean" else ("effect_low", "effect_high")
            rows.append({"regime": regime, "figure": label, "metric": metric, "statistic": col,
                         "at_equal_spend": equal, "mean": float(r[col]), "low": float(r[lo]), "high": float(r[hi])})
    return pd.DataFrame(rows, columns=["regime", "figure", "metric", "statistic", "at_equal_spend", "mean", "low",
                                       "high"])


def _cells(t: pd.DataFrame, cols) -> list[str]:
    """'mean [low, high]' of each row (``cols``: the three columns), '-' where the first is undefined."""
    return ["-" if not np.isfinite(v) else f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]"
            for v, lo, hi in t[list(cols)].to_numpy(dtype=float)]


def format_table(table: pd.DataFrame, effects: bool = False, metrics=None) -> pd.DataFrame:
    """Display form: metrics as rows, regimes as columns, cells 'mean [low, high]' (of ``metrics``: default, all but
    the split by firm size)."""
    cols = ("effect", "effect_low", "effect_high") if effects else ("mean", "ci_low", "ci_high")
    shown = set(metrics if metrics is not None else TABLE_METRICS + COST_ROWS)
    t = table[table["metric"].isin(shown)].copy()
    t["cell"] = _cells(t, cols)
    if effects:
        t = t[(t["regime"] != BASELINE)]
        costs = t["metric"].isin(COST_ROWS)
        t.loc[costs, "cell"] = _cells(t[costs], ("mean", "ci_low", "ci_high"))
    else:
        t = t[~t["metric"].isin(COST_ROWS)]
    order = list(dict.fromkeys(t["metric"]))
    out = t.pivot(index="metric", columns="regime", values="cell")
    return out.loc[order, list(dict.fromkeys(t["regime"]))]


def who_pays(table: pd.DataFrame) -> pd.DataFrame:
    """Who pays and who gains: each party's net position (payments in less out, present value) against baseline.

    Rows: every class of accounts (firms, universities, inventors, brokers, government, the
    market outside, the instruments' own: insurers), and the income public universities
    keep; columns: regimes; cells: paired effect 'mean [95% interval]'. From the ledger's
    declarations, so a new instrument's parties appear without code here.
    """
    parties = [(f"net_{a.plural}_pv", a.plural) for a in ledger.ACCOUNT_CLASSES]
    parties.append(("public_university_retained_pv", "public universities (income kept)"))
    t = table[(table["regime"] != BASELINE) & table["metric"].isin([m for m, _ in parties])].copy()
    t["cell"] = [f"{_fmt(r.effect)} [{_fmt(r.effect_low)}, {_fmt(r.effect_high)}]" if np.isfinite(r.effect) else "-"
                 for r in t.itertuples()]
    out = t.pivot(index="metric", columns="regime", values="cell")
    out = out.loc[[m for m, _ in parties if m in out.index], list(dict.fromkeys(t["regime"]))]
    out.index = [dict(parties)[m] for m in out.index]
    return out


def tails(table: pd.DataFrame, metrics=TAIL_METRICS) -> pd.DataFrame:
    """Spread across seeds: metrics as rows, regimes as columns, cells '5th / 50th / 95th percentile'."""
    t = table[table["metric"].isin(metrics)].copy()
    t["cell"] = [f"{_fmt(r.p5)} / {_fmt(r.p50)} / {_fmt(r.p95)}" for r in t.itertuples()]
    out = t.pivot(index="metric", columns="regime", values="cell")
    return out.loc[[m for m in metrics if m in out.index], list(dict.fromkeys(t["regime"]))]


def by_year(series: pd.DataFrame, column: str = "successes") -> pd.DataFrame:
    """Mean ``column`` per year of the run (months 0-11 = year 1, ...), regimes as columns."""
    s = series.assign(year=series["month"] // 12 + 1)
    per_run = s.groupby(["regime", "seed", "year"])[column].sum().reset_index()
    out = per_run.groupby(["year", "regime"])[column].mean().unstack("regime")
    return out[list(dict.fromkeys(series["regime"]))]
