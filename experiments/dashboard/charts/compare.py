"""The Compare page's charts, from a comparison's long table (:attr:`sim.api.Comparison.table`): pure functions of
frames, so a test reads back the numbers a chart shows.

- :func:`headline_figure`: each regime's effect on conversions against baseline (paired by seed) and its cost per
  extra conversion, 95% intervals as error bars, regimes on the y axis (readable for a dozen);
- :func:`who_pays_figure`: each party's change in net position against baseline, present value, with intervals; each
  party explained (its account class's doc) in the hover text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from experiments.dashboard import fmt
from experiments.dashboard.charts import COLORS, layout
from sim.analysis import glossary
from sim.analysis.stats import BASELINE
from sim.core import ledger

ROW_PX = 34  # height of a regime's row: twelve regimes fit in ~500 pixels


def values(table: pd.DataFrame, regimes, metric: str, cols=("effect", "effect_low", "effect_high")) -> np.ndarray:
    """(regimes x 3): ``cols`` of ``metric`` for each regime, NaN where the table has none."""
    t = table[table["metric"] == metric].set_index("regime")
    return np.array([[float(t.at[r, c]) if r in t.index else np.nan for c in cols] for r in regimes]).reshape(-1, 3)


def _bars(v: np.ndarray, scale: float = 1.0):
    """(means, plus, minus) of error bars: NaN where a bound is unbounded or undefined (no bar drawn)."""
    m, lo, hi = v[:, 0] / scale, v[:, 1] / scale, v[:, 2] / scale
    with np.errstate(invalid="ignore"):
        plus = np.where(np.isfinite(hi), hi - m, np.nan)
        minus = np.where(np.isfinite(lo), m - lo, np.nan)
    return m, plus, minus


def _hover(v: np.ndarray, kind: str, unit: str = "yuan", low=None, high=None) -> list[str]:
    return [fmt.interval(m, lo, hi, kind, unit, low, high) for m, lo, hi in v]


def headline_figure(table: pd.DataFrame, regimes, unit: str = "yuan", title: str = "") -> go.Figure:
    """Two panels sharing the regimes (y axis, in ``regimes``' order, the first at the top): the extra conversions
    against baseline (mean [95% interval], paired by seed), and the cost per extra conversion (extra public spend
    over the run / extra expected conversions, in ``unit``; bootstrap interval). ``fig.data[0].x`` are the effects,
    ``fig.data[1].x`` the costs (divided by the unit)."""
    regimes = [r for r in regimes if r != BASELINE]
    div = fmt.MONEY_UNITS[unit][0]
    conv = values(table, regimes, "successes")
    cost = values(table, regimes, "cost_per_extra_conversion", ("mean", "ci_low", "ci_high"))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=(f"extra {glossary.label('successes')} against baseline",
                                        f"{glossary.label('cost_per_extra_conversion')} ({fmt.unit_name(unit)})"))
    for col, v, scale, kind, name in ((1, conv, 1.0, "number", "extra conversions"),
                                      (2, cost, div, "money", "cost per extra conversion")):
        m, plus, minus = _bars(v, scale)
        text = _hover(v, kind, unit)
        fig.add_trace(go.Bar(x=m, y=regimes, orientation="h", name=name, showlegend=False,
                             marker_color=[COLORS[i % len(COLORS)] for i in range(len(regimes))],
                             error_x=dict(type="data", array=plus, arrayminus=minus, symmetric=False, color="#333",
                                          thickness=1.5, width=4),
                             customdata=text, hovertemplate="%{y}<br>" + name + ": %{customdata}<extra></extra>"),
                      row=1, col=col)
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(zeroline=True, zerolinecolor="#888", automargin=True)
    return layout(fig, title, height=max(260, 120 + ROW_PX * len(regimes)))


def parties() -> list[tuple[str, str, str]]:
    """(metric, label, what it is) of each party in who pays and who gains: every class of accounts (from the ledger's
    declarations) and the income public universities keep; present values."""
    out = [(f"net_{a.plural}_pv", a.plural, a.doc) for a in ledger.ACCOUNT_CLASSES]
    out.append(("public_university_retained_pv", "public universities (income kept)",
                glossary.entry("public_university_retained").meaning))
    return out


def who_pays_figure(table: pd.DataFrame, regimes, unit: str = "yuan", discount_rate: float = 0.0,
                    title: str = "") -> go.Figure:
    """Each party's change in net position against baseline (present value at month 0, in ``unit``), a trace per
    regime (``fig.data[i]``: ``regimes[i]``, its x the effects over :func:`parties` divided by the unit), parties on
    the y axis, each explained in the hover text."""
    regimes = [r for r in regimes if r != BASELINE]
    div = fmt.MONEY_UNITS[unit][0]
    rows = parties()
    names = [label for _, label, _ in rows]
    fig = go.Figure()
    for i, regime in enumerate(regimes):
        t = table[table["regime"] == regime].set_index("metric")
        v = np.array([[float(t.at[m, c]) if m in t.index else np.nan for c in ("effect", "effect_low", "effect_high")]
                      for m, _, _ in rows]).reshape(-1, 3)
        m, plus, minus = _bars(v, div)
        text = [f"{label}: {doc}<br>{regime}: {fmt.interval(*x, 'money', unit)} (present value)"
                for (_, label, doc), x in zip(rows, v)]
        fig.add_trace(go.Bar(x=m, y=names, orientation="h", name=regime, marker_color=COLORS[i % len(COLORS)],
                             error_x=dict(type="data", array=plus, arrayminus=minus, symmetric=False, color="#333",
                                          thickness=1, width=3),
                             customdata=text, hovertemplate="%{customdata}<extra></extra>"))
    rate = f" at {discount_rate:.0%} a year" if discount_rate else ""
    fig.update_layout(barmode="group", xaxis_title=f"change in net position, {fmt.unit_name(unit)}, present value "
                      f"at month 0{rate}")
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(zeroline=True, zerolinecolor="#888")
    per_party = max(1, len(regimes)) * 14 + 12
    return layout(fig, title, height=max(320, 140 + per_party * len(rows)))

