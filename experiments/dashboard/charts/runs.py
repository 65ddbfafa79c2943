"""Charts and tables of the One run, Sweep and Calibration pages (Plotly figures and frames, built without the page).

Every figure a person reads in a chart's cells and hover text is written by :mod:`experiments.dashboard.fmt`
(Plotly is given the formatted text, never asked to format a number itself: no ``%{y:,}``, no ``.3g``), so a chart
reads as the tables do. Plotly draws only the axes' tick labels itself; a chart plots a metric in the unit its hover
text and axis title say (money divided by the page's unit's divisor, a share in percent: :func:`plot_scale`).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from experiments.dashboard import fmt
from experiments.dashboard.charts import COLORS, layout
from sim.analysis import glossary


# --------------------------------------------------------------------------- metric names
def metric_label(name: str) -> str:
    """A metric's name for a reader: the glossary's label (:mod:`sim.analysis.glossary`, the same on every page), or
    the raw name for a column the glossary does not know."""
    return glossary.label(name)


def _meaning(name: str) -> str:
    e = glossary.entries().get(name)
    return e.meaning if e is not None else ""


def filter_metrics(metrics: list[str], text: str) -> list[str]:
    """The metrics whose name, label or meaning holds every word of ``text`` (case ignored); all for no text."""
    words = str(text).lower().split()
    return [m for m in metrics if all(w in f"{m} {metric_label(m)} {_meaning(m)}".lower() for w in words)]


def is_money(name: str) -> bool:
    """Whether a metric is in yuan (its glossary unit)."""
    e = glossary.entries().get(name)
    return e is not None and e.money


def metric_kind(name: str) -> str:
    """How a metric's value is written (:func:`fmt.kind_of <experiments.dashboard.fmt.kind_of>` of its glossary
    entry): ``number`` for a column the glossary does not know."""
    e = glossary.entries().get(name)
    return fmt.kind_of(e) if e is not None else "number"


def write_value(name: str, v: float, unit: str = "yuan") -> str:
    """A metric's value as every page writes it (:func:`fmt.value <experiments.dashboard.fmt.value>` by its kind)."""
    return fmt.value(v, metric_kind(name), unit)


def plot_scale(name: str, unit: str = "yuan") -> tuple[float, str]:
    """(divisor, unit's name) of a metric on a chart's axis: money in the page's ``unit`` (``万 yuan``: 10^4),
    a share in percent (``%``: 0.01), else as it is (its glossary unit: ``count``)."""
    kind = metric_kind(name)
    if kind == "money":
        return fmt.MONEY_UNITS[unit][0], fmt.unit_name(unit)
    if kind == "share":
        return 0.01, "%"
    e = glossary.entries().get(name)
    return 1.0, e.unit if e is not None else ""


def axis_title(name: str, unit: str = "yuan") -> str:
    """A metric's axis or colour bar title: its glossary label and the unit it is plotted in
    (``public spend (万 yuan)``)."""
    what = plot_scale(name, unit)[1]
    return f"{metric_label(name)} ({what})" if what else metric_label(name)


# --------------------------------------------------------------------------- one run
def flow_table(flows: pd.DataFrame, month: int, unit: str = "yuan") -> pd.DataFrame:
    """Money moved from each payer to each payee (classes of accounts): in series month ``month`` and in months
    0 .. ``month``, written in ``unit``; a row per payer and payee that moved money by then, largest first."""
    upto = flows[flows["month"] <= month]
    cum = upto.groupby(["payer", "payee"], sort=False)["amount"].sum()
    now = upto[upto["month"] == month].groupby(["payer", "payee"], sort=False)["amount"].sum()
    kinds = upto[upto["amount"] > 0].groupby(["payer", "payee"], sort=False)["kind"].agg(
        lambda k: ", ".join(dict.fromkeys(k)))
    cum = cum[cum > 0].sort_values(ascending=False)
    return pd.DataFrame({"payer": [p for p, _ in cum.index], "payee": [q for _, q in cum.index],
                         f"in month {month}": [fmt.money(now.get(i, 0.0), unit) for i in cum.index],
                         f"months 0–{month}": [fmt.money(v, unit) for v in cum.to_numpy()],
                         "payments": [kinds.get(i, "") for i in cum.index]})


def distinct_colors(n: int) -> list[str]:
    """``n`` colours, no two alike: the charts' own while they last, else Plotly's 24 dark and 24 light ones (a
    month's flows may be of ~20 kinds; a repeated colour would make two of them one)."""
    from plotly.colors import qualitative

    palette = list(COLORS) if n <= len(COLORS) else list(dict.fromkeys(qualitative.Dark24 + qualitative.Light24))
    if n > len(palette):
        raise ValueError(f"{n} series: more than {len(palette)} distinct colours")
    return palette[:n]


def flows_figure(flows: pd.DataFrame, months: int, unit: str = "yuan", by: str = "kind"):
    """Money moved each month, stacked bars by ``by`` (``kind``: each kind of payment; ``route``: payer -> payee),
    hover: the month, the payment, who paid whom, the amount (fmt.money). The x axis spans the whole run."""
    import plotly.graph_objects as go

    df = flows.copy()
    df["route"] = df["payer"] + " → " + df["payee"]
    keys = ["kind", "route"] if by == "kind" else ["route"]
    g = df.groupby(["month", *keys], sort=False)["amount"].sum().reset_index()
    totals = g.groupby(by)["amount"].sum()
    shown = [k for k in totals.sort_values(ascending=False).index if totals[k] > 0]
    div = fmt.MONEY_UNITS[unit][0]
    palette = distinct_colors(len(shown))
    fig = go.Figure()
    for i, name in enumerate(shown):
        d = g[g[by] == name]
        route = d["route"].iloc[0] if by == "kind" else name
        label = glossary.label(name) if by == "kind" else str(name)  # a kind of payment by the glossary's name
        fig.add_trace(go.Bar(
            x=d["month"], y=d["amount"] / div, name=label, meta=str(name), marker_color=palette[i],
            customdata=np.stack([[fmt.money(v, unit) for v in d["amount"]], [route] * len(d)], axis=-1),
            hovertemplate=f"{label}<br>%{{customdata[1]}}<br>month %{{x}}: %{{customdata[0]}}<extra></extra>"))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="month (as in the series: 0 is the first)", range=[-0.5, max(months, 1) - 0.5])
    fig.update_yaxes(title_text=f"money moved that month ({fmt.unit_name(unit)})")
    return layout(fig, f"Money flows each month, by {'kind of payment' if by == 'kind' else 'payer → payee'}", 460)


FUNNEL = (("needs raised", ("needs_raised",)), ("matches", ("matches",)), ("contracts", None),
          ("conversions", ("successes",)), ("failures", ("failures",)))


def funnel_figure(series: pd.DataFrame, months: int):
    """The run so far, cumulative: needs, matches, contracts (every form), conversions, failures, and the active
    brokers; a log axis (needs outnumber conversions a hundredfold), hover values."""
    import plotly.graph_objects as go

    from sim.core import columns as C
    from sim.core.results import FORM_COLUMNS

    fig = go.Figure()
    x = series["month"] if "month" in series else np.arange(len(series))
    for i, (label, cols) in enumerate(FUNNEL):
        cols = [C.COLUMNS[c].name for c in FORM_COLUMNS] if cols is None else list(cols)
        y = series[cols].sum(axis=1).cumsum()
        fig.add_trace(go.Scatter(x=x, y=y, name=label, mode="lines+markers", marker_size=4,
                                 line_color=COLORS[i], text=[fmt.number(float(v)) for v in y],
                                 hovertemplate=f"{label} by month %{{x}}: %{{text}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=series["brokers_active"], name="active brokers", mode="lines",
                             line=dict(color="black", dash="dot"),
                             text=[fmt.number(float(v)) for v in series["brokers_active"]],
                             hovertemplate="active brokers in month %{x}: %{text}<extra></extra>"))
    fig.update_xaxes(title_text="month (as in the series: 0 is the first)", range=[-0.5, max(months, 1) - 0.5])
    fig.update_yaxes(title_text="count, cumulative (brokers: active that month)", type="log", dtick=1)  # 1, 10, 100
    return layout(fig, "Funnel so far", 400)


# --------------------------------------------------------------------------- sweeps
def sweep_means(df: pd.DataFrame, axes: list[str], metric: str) -> pd.DataFrame:
    """The metric's mean, standard deviation and runs at each point of the sweep (per regime when regimes vary)."""
    from sim.analysis.plots import regime_labels

    keys = list(axes)
    d = df
    labels = regime_labels(df)
    if labels is not None and labels.nunique() > 1 and "regime.name" not in keys:
        d = df.assign(regime=labels)
        keys = ["regime", *keys]
    if not keys:
        return df[[metric]].agg(["mean", "std", "count"]).T.reset_index(drop=True)
    return d.groupby(keys, dropna=False)[metric].agg(["mean", "std", "count"]).reset_index()


def sweep_table(means: pd.DataFrame, metric: str, unit: str = "yuan") -> pd.DataFrame:
    """:func:`sweep_means` as the page shows it: the swept values exactly (fmt.exact, thousands separators), the
    mean and its standard deviation written as the metric is (fmt.value: money in ``unit``, a share as a percentage,
    else a number), the runs counted."""
    out = means.copy()
    for c in out.columns:
        if c not in ("mean", "std", "count") and pd.api.types.is_numeric_dtype(out[c]) \
                and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].map(lambda v: fmt.exact(v, separators=True))
    for c in ("mean", "std"):
        out[c] = out[c].map(lambda v: write_value(metric, float(v), unit))
    out["count"] = out["count"].map(lambda v: fmt.number(float(v)))
    return out.rename(columns={"mean": "mean over seeds", "std": "sd over seeds", "count": "runs"})


def sweep_heatmap(df: pd.DataFrame, axes: list[str], metric: str, unit: str = "yuan"):
    """The metric's mean over the first two swept numbers (x: the first, y: the second; a panel per regime),
    axis titles the swept keys, each cell written and hovered with its value (fmt); None with fewer than two."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from sim.analysis.plots import heatmap_grids

    found = heatmap_grids(df, axes, metric)
    if found is None:
        return None
    x, y, regimes, grids = found
    fig = make_subplots(1, len(regimes), subplot_titles=[str(r) if r else "" for r in regimes], horizontal_spacing=0.08)
    div = plot_scale(metric, unit)[0]
    lo = min(np.nanmin(g.to_numpy()) for g in grids) / div
    hi = max(np.nanmax(g.to_numpy()) for g in grids) / div
    label = metric_label(metric)
    for k, g in enumerate(grids):
        text = [[write_value(metric, v, unit) for v in row] for row in g.to_numpy()]
        fig.add_trace(go.Heatmap(
            z=g.to_numpy() / div, x=[fmt.exact(v, separators=True) for v in g.columns],
            y=[fmt.exact(v, separators=True) for v in g.index], text=text,
            texttemplate="%{text}", zmin=lo, zmax=hi, colorscale="Viridis", showscale=k == 0,
            colorbar=dict(title=dict(text=f"{axis_title(metric, unit)}, mean over seeds", side="right")),
            hovertemplate=f"{x} = %{{x}}<br>{y} = %{{y}}<br>{label}: %{{text}} (mean over seeds)<extra></extra>"),
            1, k + 1)
        fig.update_xaxes(title_text=x, type="category", row=1, col=k + 1)
        fig.update_yaxes(title_text=y if k == 0 else "", type="category", row=1, col=k + 1)
    return layout(fig, f"{metric_label(metric)}: mean over seeds", 440)


def sweep_lines(df: pd.DataFrame, axes: list[str], metric: str, unit: str = "yuan"):
    """The metric against the first swept number, a line per regime (and per value of a second swept number):
    mean and 95% interval over seeds (:func:`sim.analysis.stats.mean_interval`), hover values; None without a
    swept number."""
    import plotly.graph_objects as go

    from sim.analysis.plots import _numeric_axes, regime_labels
    from sim.analysis.stats import mean_interval

    num = _numeric_axes(df, axes)
    if not num:
        return None
    x = num[0]
    labels = regime_labels(df)
    d = df.assign(_line=labels.astype(str) if labels is not None else "all")
    if len(num) >= 2:
        d["_line"] = d["_line"] + ", " + num[1] + " = " + d[num[1]].map(fmt.number)
    div = plot_scale(metric, unit)[0]
    e = glossary.entries().get(metric)
    low, high = (e.low, e.high) if e is not None else (None, None)  # a level's domain: its interval stays in it
    label = metric_label(metric)
    fig = go.Figure()
    for i, (name, g) in enumerate(d.groupby("_line", sort=False)):
        xs = sorted(g[x].unique())
        cis = [mean_interval(g.loc[g[x] == v, metric]) for v in xs]
        m, lo, hi = (np.array([c[k] for c in cis], dtype=float) for k in range(3))
        lo, hi = (np.array([fmt.clip(v, low, high) for v in b], dtype=float) for b in (lo, hi))
        text = [fmt.interval(a, b, c, metric_kind(metric), unit) for a, b, c in zip(m, lo, hi)]
        fig.add_trace(go.Scatter(
            x=xs, y=m / div, name=str(name), mode="lines+markers", line_color=COLORS[i % len(COLORS)], text=text,
            error_y=dict(type="data", symmetric=False, array=(hi - m) / div, arrayminus=(m - lo) / div, thickness=1),
            hovertemplate=f"{x} = %{{x}}<br>{label}: %{{text}}<extra>{name}</extra>"))
    rest = num[2:]
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=axis_title(metric, unit))
    note = f" (averaged over {', '.join(rest)})" if rest else ""
    return layout(fig, f"{metric_label(metric)}: mean and 95% interval over seeds{note}", 440)


# --------------------------------------------------------------------------- calibrations
FIT_COLUMNS = {
    "target": "target (a reported figure)", "use": "use (fit: fitted; held out: predicted only)",
    "setting": "setting", "reported": "reported", "observed": "reported", "observed_low": "reported, 95% low",
    "observed_high": "reported, 95% high", "discrepancy": "model discrepancy allowed",
    "predicted": "predicted", "predicted_median": "predicted (posterior median)",
    "predicted_q05": "predicted, 5th pct", "predicted_q95": "predicted, 95th pct",
    "ratio": "predicted / reported", "inside90": "reported inside the 90% prediction",
    "z": "z (misfit in SDs of the prediction)", "misfit": "misfit (|z| > 3)",
    "undefined_draws": "posterior draws where the figure is undefined", "prior_median": "prior's prediction (median)"}
SUMMARY_COLUMNS = {
    "parameter": "parameter", "low": "prior range: low", "high": "prior range: high", "scale": "prior scale",
    "mean": "posterior mean (weighted)", "median": "posterior median", "q05": "5th percentile",
    "q95": "95th percentile", "shrinkage": "shrinkage (1 - 90% interval / 90% of the prior range)"}


def readable(df: pd.DataFrame, names: dict) -> pd.DataFrame:
    """A calibration's table with its columns named for a reader (``names``; others kept) and its numbers
    written (fmt.significant: 3 significant digits, a prior's bound of 0.0001 stays 0.0001; shares as percentages;
    true/false as yes/no)."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        v = df[c]
        if c == "shrinkage":
            v = v.map(lambda x: fmt.share(float(x)) if pd.notna(x) else "-")
        elif pd.api.types.is_bool_dtype(v):
            v = v.map({True: "yes", False: "no"})
        elif pd.api.types.is_numeric_dtype(v):
            v = v.map(lambda x: fmt.significant(float(x)))
        out[names.get(c, c)] = v
    return out


def _ticks(lo: float, hi: float, log: bool) -> tuple[list[float], list[str]]:
    """Few ticks that do not overlap: 3 on a linear range, the powers of ten (at most 4) on a log one."""
    if log and lo > 0 and hi > 0:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        exps = [e for e in range(a, b + 1) if lo <= 10.0 ** e <= hi] or [round(math.log10(math.sqrt(lo * hi)))]
        while len(exps) > 4:
            exps = exps[::2]
        return [float(e) for e in exps], [power_of_ten(e) if abs(e) >= 3 else fmt.exact(10.0 ** e) for e in exps]
    vals = [lo, (lo + hi) / 2, hi]
    return vals, [fmt.significant(v) for v in vals]


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(e: int) -> str:
    """A log axis's tick far from 1, as a reader writes it: ``10⁻⁴``, ``10⁶`` (short: ticks stay apart)."""
    return "10" + str(int(e)).translate(_SUPERSCRIPT)


def corner_figure(post: pd.DataFrame, summary: Optional[pd.DataFrame] = None, width: int = 900):
    """The posterior's corner plot: weighted marginal histograms on the diagonal, the pairs below it (marker area
    by weight), on the prior's ranges and scales when ``summary`` (posterior_summary.csv) gives them; few ticks,
    fonts of 12 px, each parameter's name once on its row and column."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    keys = [c for c in post.columns if c != "weight"]
    w = post["weight"].to_numpy(dtype=float) if "weight" in post else np.ones(len(post))
    w = w / w.sum()
    prior = {}
    if summary is not None and {"parameter", "low", "high"} <= set(summary.columns):
        for r in summary.itertuples(index=False):
            prior[r.parameter] = (float(r.low), float(r.high), getattr(r, "scale", "linear") == "log")
    k = len(keys)
    fig = make_subplots(k, k, horizontal_spacing=0.03, vertical_spacing=0.03)
    for i, yk in enumerate(keys):
        for j, xk in enumerate(keys):
            if j > i:
                continue
            lo, hi, log = prior.get(xk, (float(post[xk].min()), float(post[xk].max()), False))
            if i == j:
                edges = np.geomspace(lo, hi, 21) if log and lo > 0 else np.linspace(lo, hi if hi > lo else lo + 1, 21)
                h, _ = np.histogram(post[xk], bins=edges, weights=w)
                mids = np.sqrt(edges[:-1] * edges[1:]) if log and lo > 0 else (edges[:-1] + edges[1:]) / 2
                fig.add_trace(go.Bar(x=mids, y=h, width=np.diff(edges), marker_color=COLORS[0], showlegend=False,
                                     customdata=np.stack([[fmt.significant(v) for v in edges[:-1]],
                                                          [fmt.significant(v) for v in edges[1:]],
                                                          [fmt.share(v) for v in h]], axis=-1),
                                     hovertemplate=f"{xk}<br>%{{customdata[0]}} to %{{customdata[1]}}: "
                                                   "%{customdata[2]} of the weight<extra></extra>"), i + 1, j + 1)
            else:
                fig.add_trace(go.Scatter(x=post[xk], y=post[yk], mode="markers", showlegend=False,
                                         marker=dict(size=4 + 30 * np.sqrt(w), color=COLORS[0], opacity=0.5,
                                                     line_width=0),
                                         customdata=np.stack([[fmt.significant(v) for v in post[xk]],
                                                              [fmt.significant(v) for v in post[yk]],
                                                              [fmt.share(v) for v in w]], axis=-1),
                                         hovertemplate=f"{xk} = %{{customdata[0]}}<br>{yk} = %{{customdata[1]}}<br>"
                                                       "weight %{customdata[2]}<extra></extra>"),
                              i + 1, j + 1)
            for axis, key, row_or_col in (("x", xk, i == k - 1), ("y", yk, j == 0 and i != j)):
                a, b, lg = prior.get(key, (float(post[key].min()), float(post[key].max()), False))
                tv, tt = _ticks(a, b, lg)
                upd = fig.update_xaxes if axis == "x" else fig.update_yaxes
                rng = [math.log10(a), math.log10(b)] if lg and a > 0 else [a, b]
                if axis == "y" and i == j:
                    upd(row=i + 1, col=j + 1, showticklabels=False)
                    continue
                upd(row=i + 1, col=j + 1, type="log" if lg and a > 0 else "linear", range=rng,
                    tickvals=[10 ** t for t in tv] if lg and a > 0 else tv, ticktext=tt, tickfont_size=12,
                    showticklabels=bool(row_or_col),
                    title=dict(text=_short(key), font_size=12) if row_or_col else None)
    size = max(width, 160 * k + 140)
    layout(fig, "Posterior: marginals and pairs on the prior's ranges (weighted: bar heights and marker sizes)", size)
    fig.update_layout(width=size, margin=dict(l=90, r=20, t=50, b=80), bargap=0)
    return fig


def _short(key: str) -> str:
    """A dotted key without its first part, broken over two lines at its middle dot if long (an axis title)."""
    s = key.split(".", 1)[-1]
    if len(s) > 22 and "." in s:
        head, _, tail = s.rpartition(".")
        return f"{head}.<br>{tail}"
    return s
