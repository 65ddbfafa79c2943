"""Plots of a regime comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..core import columns as C
from ..core.results import COVER_COLUMNS, FORM_COLUMNS, gov_kinds
from .stats import BASELINE, COSTS, cost_per_extra_conversion

# (title, series columns summed, cumulative?, scale, unit): from the declared forms and payments
PANELS = (
    ("Contracts signed (cumulative)", tuple(C.COLUMNS[c].name for c in FORM_COLUMNS), True, 1.0, ""),
    ("Conversions: implementations succeeded (cumulative)", ("successes",), True, 1.0, ""),
    ("Active brokers", ("brokers_active",), False, 1.0, ""),
    ("University income (cumulative)", ("university_income",), True, 1e6, "M yuan"),
    ("Government spend (cumulative)", tuple(k.name for k in gov_kinds()), True, 1e6, "M yuan"),
    ("Firms' mean belief in university technology", ("mean_belief",), False, 1.0, ""),
)


COMBINED = "combined"  # the regime of every instrument together
# paths get a 95% band over seeds only when they are few enough to tell apart
MAX_BANDED_REGIMES = 5
LOG_SPAN = 20.0  # costs per extra conversion spanning more than this factor are shown on a log axis


def regime_colors(regimes: list[str]) -> dict[str, tuple]:
    """A colour per regime that stays distinct for up to 20 regimes: the baseline black, every instrument together
    grey, the others from tab20 without its greys (its dark shades first), then again."""
    tab20 = plt.get_cmap("tab20").colors
    palette = [tab20[i] for shade in (0, 1) for i in range(shade, 20, 2) if i not in (14, 15)]  # 14, 15: greys
    others = [r for r in regimes if r not in (BASELINE, COMBINED)]
    colors = {r: palette[k % len(palette)] for k, r in enumerate(others)}
    colors[BASELINE], colors[COMBINED] = (0.0, 0.0, 0.0), (0.45, 0.45, 0.45)
    return colors


def _paths(ax, series, regimes, colors, cols, cumulative, scale, bands):
    for reg in regimes:
        d = series[series["regime"] == reg]
        values = d[list(cols)].sum(axis=1).to_numpy()
        m = values.reshape(d["seed"].nunique(), -1) / scale
        if cumulative:
            m = m.cumsum(axis=1)
        x = np.arange(m.shape[1])
        ax.plot(x, m.mean(axis=0), label=reg, color=colors[reg], lw=2.2 if reg in (BASELINE, COMBINED) else 1.4,
                ls="--" if reg == COMBINED else "-")
        if bands:
            lo, hi = np.percentile(m, [2.5, 97.5], axis=0)
            ax.fill_between(x, lo, hi, color=colors[reg], alpha=0.15, linewidth=0)


def _forms(ax, summary, regimes):
    """Contracts by form, stacked per regime (their sum is all contracts); covers marked on top."""
    forms = [(C.COLUMNS[c].name, C.COLUMNS[c].form) for c in FORM_COLUMNS]
    covers = [(C.COLUMNS[c].name, C.COLUMNS[c].cover) for c in COVER_COLUMNS]
    means = summary.groupby("regime", sort=False)[[n for n, _ in forms + covers]].mean().loc[regimes]
    y = np.arange(len(regimes))[::-1]
    left = np.zeros(len(regimes))
    palette = plt.get_cmap("Set2").colors
    for k, (name, label) in enumerate(forms):
        ax.barh(y, means[name], left=left, color=palette[k % len(palette)], label=label, height=0.7)
        left += means[name].to_numpy()
    for k, (name, label) in enumerate(covers):
        ax.plot(means[name], y, "k|" if k == 0 else "kx", ms=12, label=f"of which with {label} cover")
    ax.set_yticks(y, regimes, fontsize=8)
    ax.set_title("Contracts by form (mean per run)", fontsize=10)
    # below the bars, in columns: beside them it took the width the next panel's labels need, and a long regime
    # name (a mix, vouchers+insurance) then collapsed the layout
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    ax.grid(alpha=0.3, axis="x")


def _cost_per_conversion(ax, summary, regimes, colors):
    """The public cost per extra conversion of each regime against the baseline, cheapest on top."""
    base = summary[summary["regime"] == BASELINE].set_index("seed")
    rows = []
    for reg in regimes:
        if reg == BASELINE or base.empty:
            continue
        runs = summary[summary["regime"] == reg].set_index("seed")
        common = runs.index.intersection(base.index)
        _, spend, conversions = COSTS[0]
        e, lo, hi = cost_per_extra_conversion(runs.loc[common, spend] - base.loc[common, spend],
                                              runs.loc[common, conversions] - base.loc[common, conversions])
        rows.append((reg, e / 1e3, lo / 1e3, hi / 1e3))
    rows.sort(key=lambda r: (not np.isfinite(r[1]), r[1]))
    y = np.arange(len(rows))[::-1]
    positive = [r[1] for r in rows if np.isfinite(r[1]) and r[1] > 0]
    # costs that span more than LOG_SPAN (a grant that buys few conversions beside cheap rewards) on a log axis,
    # as points, so that the cheap ones stay readable
    log = len(positive) > 1 and max(positive) / min(positive) > LOG_SPAN
    left = min(positive) / 3 if log else 0.0
    top = max(positive) * (3.0 if log else 1.15) if positive else 1.0
    for yk, (reg, e, lo, hi) in zip(y, rows):
        if not np.isfinite(e) or e <= 0:
            note = ("no extra conversions on average" if not np.isfinite(e) else
                    "0: no public spend" if e == 0 else f"{e:,.0f}: saves public money")
            ax.text(0.01, yk, note, va="center", fontsize=8, color="0.3", transform=ax.get_yaxis_transform())
            continue
        low = max(lo, left) if np.isfinite(lo) else left
        err = [[e - low], [hi - e if np.isfinite(hi) else 0]]
        if log:
            ax.errorbar(e, yk, xerr=err, fmt="o", ms=6, capsize=3, color=colors[reg])
        else:
            ax.barh(yk, e, xerr=err, capsize=3, color=colors[reg], height=0.7)
        if not np.isfinite(hi):
            ax.annotate("", xy=(top, yk), xytext=(e, yk), arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(left, top * 1.2)
    else:
        ax.axvline(0, color="0.3", lw=0.8)
    ax.set_title("Public cost per extra conversion vs baseline\n(k yuan" + (", log scale" if log else "")
                 + ", 95% bootstrap interval; an arrow: unbounded)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")


def comparison_figure(series: pd.DataFrame, summary: pd.DataFrame, title: str = ""):
    """Monthly paths of each regime (mean over seeds; with a 95% band when there are few regimes), contracts by form,
    and the public cost per extra conversion."""
    regimes = list(dict.fromkeys(series["regime"]))
    colors = regime_colors(regimes)
    bands = len(regimes) <= MAX_BANDED_REGIMES
    fig = plt.figure(figsize=(19, 12.5), constrained_layout=True)
    grid = fig.add_gridspec(3, 6, height_ratios=(1, 1, 0.25 + 0.06 * len(regimes)))
    for k, (name, cols, cumulative, scale, unit) in enumerate(PANELS):
        ax = fig.add_subplot(grid[k // 3, 2 * (k % 3):2 * (k % 3) + 2])
        _paths(ax, series, regimes, colors, cols, cumulative, scale, bands)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("month")
        if unit:
            ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=9, title="regime")
    _forms(fig.add_subplot(grid[2, :3]), summary, regimes)
    _cost_per_conversion(fig.add_subplot(grid[2, 3:]), summary, regimes, colors)
    if title:
        fig.suptitle(title)
    return fig


def save_comparison(series: pd.DataFrame, summary: pd.DataFrame, path: Path, title: str = "") -> Path:
    fig = comparison_figure(series, summary, title)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- sweeps
def _numeric_axes(df: pd.DataFrame, axes: list[str]) -> list[str]:
    return [a for a in axes if a in df.columns and not a.startswith("regime.")
            and pd.api.types.is_numeric_dtype(df[a]) and not pd.api.types.is_bool_dtype(df[a])]


def regime_labels(df: pd.DataFrame) -> pd.Series | None:
    """Each row's regime: its name, and its instruments where one name covers several combinations of them
    (``regime.instruments`` swept under one label); None without a ``regime.name`` column."""
    if "regime.name" not in df.columns:
        return None
    names = df["regime.name"].astype(str)
    if "regime.instruments" in df.columns:
        listed = df["regime.instruments"].map(lambda v: "[" + ", ".join(map(str, v)) + "]")
        if (listed.groupby(names).nunique() > 1).any():
            return names + " " + listed
    return names


def sweep_lines_figure(df: pd.DataFrame, axes: list[str], metric: str):
    """A metric against the first swept number: a line per regime, mean and 95% interval over seeds."""
    from .stats import mean_interval   # a level: its bootstrap interval stays in its domain

    num = _numeric_axes(df, axes)
    group = regime_labels(df)
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    if num:
        x = num[0]
        for name, d in (df.groupby(group, sort=False) if group is not None else [("all", df)]):
            xs = sorted(d[x].unique())
            cis = [mean_interval(d.loc[d[x] == v, metric]) for v in xs]
            m = np.array([c[0] for c in cis])
            ax.plot(xs, m, marker="o", label=str(name))
            ax.fill_between(xs, [c[1] for c in cis], [c[2] for c in cis], alpha=0.2, linewidth=0)
        ax.set_xlabel(x)
        rest = [a for a in num[1:]]
        note = f" (averaged over {', '.join(rest)})" if rest else ""
    else:
        names = list(dict.fromkeys(group)) if group is not None else ["all"]
        cis = [mean_interval(df.loc[group == n, metric] if group is not None else df[metric]) for n in names]
        ax.bar(names, [c[0] for c in cis], yerr=[[c[0] - c[1] for c in cis], [c[2] - c[0] for c in cis]], capsize=4)
        note = ""
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean and 95% interval over seeds{note}", fontsize=10)
    ax.grid(alpha=0.3)
    if num:
        ax.legend(fontsize=8)
    return fig


def heatmap_grids(df: pd.DataFrame, axes: list[str], metric: str):
    """A sweep's heatmaps: (x key, y key, regimes, grids), the metric's mean over the first two swept numbers in a
    grid (rows y, columns x) per regime (regimes [None] when the sweep has one); None with fewer than two numbers
    swept. What the collected sweep's figure and the dashboard's chart both draw."""
    num = _numeric_axes(df, axes)
    if len(num) < 2:
        return None
    x, y = num[0], num[1]
    labels = regime_labels(df)
    regimes = list(dict.fromkeys(labels)) if labels is not None else [None]
    grids = [(df if r is None else df[labels == r]).pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
             for r in regimes]
    return x, y, regimes, grids


def sweep_heatmap_figure(df: pd.DataFrame, axes: list[str], metric: str):
    """The metric's mean over the first two swept numbers (one panel per regime)."""
    found = heatmap_grids(df, axes, metric)
    if found is None:
        return None
    x, y, regimes, grids = found
    fig, axs = plt.subplots(1, len(regimes), figsize=(4.8 * len(regimes) + 1, 4.2), constrained_layout=True,
                            squeeze=False)
    vmin = min(np.nanmin(g.to_numpy()) for g in grids)
    vmax = max(np.nanmax(g.to_numpy()) for g in grids)
    for ax, reg, g in zip(axs[0], regimes, grids):
        im = ax.imshow(g.to_numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set_xticks(range(len(g.columns)), [f"{v:g}" for v in g.columns], rotation=30, fontsize=8)
        ax.set_yticks(range(len(g.index)), [f"{v:g}" for v in g.index], fontsize=8)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                ax.text(j, i, f"{g.iat[i, j]:.3g}", ha="center", va="center", fontsize=7, color="w")
        ax.set_title(str(reg) if reg else metric, fontsize=10)
    fig.colorbar(im, ax=axs[0].tolist(), label=f"{metric} (mean over seeds)")
    return fig


def save_sweep_plots(df: pd.DataFrame, axes: list[str], metric: str, out_dir: Path, write_atomic) -> list[Path]:
    """Write sweep_lines.png and, with two swept numbers, sweep_heatmap.png; return their paths."""
    paths = []
    for name, fig in (("sweep_lines.png", sweep_lines_figure(df, axes, metric)),
                      ("sweep_heatmap.png", sweep_heatmap_figure(df, axes, metric))):
        if fig is None:
            continue
        path = Path(out_dir) / name
        write_atomic(path, lambda p, fig=fig: fig.savefig(p, dpi=110, format="png"))
        plt.close(fig)
        paths.append(path)
    return paths
