"""Plots of a regime comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import columns as C
from .results import COVER_COLUMNS, FORM_COLUMNS, gov_kinds
from .stats import BASELINE, cost_per_extra_conversion

# (title, series columns summed, cumulative?, scale, unit): from the declared forms and payments
PANELS = (
    ("Contracts signed (cumulative)", tuple(C.COLUMNS[c].name for c in FORM_COLUMNS), True, 1.0, ""),
    ("Conversions: implementations succeeded (cumulative)", ("successes",), True, 1.0, ""),
    ("Active brokers", ("brokers_active",), False, 1.0, ""),
    ("University income (cumulative)", ("university_income",), True, 1e6, "M yuan"),
    ("Government spend (cumulative)", tuple(k.name for k in gov_kinds()), True, 1e6, "M yuan"),
    ("Firms' mean belief in university technology", ("mean_belief",), False, 1.0, ""),
)


def comparison_figure(series: pd.DataFrame, summary: pd.DataFrame, title: str = ""):
    """Monthly paths (mean and 95% band over seeds) of each regime, and the cost per extra conversion."""
    regimes = list(dict.fromkeys(series["regime"]))
    fig, axes = plt.subplots(2, 4, figsize=(19, 8.5), constrained_layout=True)
    colors = dict(zip(regimes, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    flat = axes.ravel()
    for ax, (name, cols, cumulative, scale, unit) in zip(flat, PANELS):
        for reg in regimes:
            d = series[series["regime"] == reg]
            values = d[list(cols)].sum(axis=1).to_numpy()
            seeds = d["seed"].nunique()
            m = values.reshape(seeds, -1) / scale
            if cumulative:
                m = m.cumsum(axis=1)
            mean = m.mean(axis=0)
            lo, hi = np.percentile(m, [2.5, 97.5], axis=0)
            x = np.arange(m.shape[1])
            ax.plot(x, mean, label=reg, color=colors[reg])
            ax.fill_between(x, lo, hi, color=colors[reg], alpha=0.15, linewidth=0)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("month")
        if unit:
            ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    flat[0].legend(fontsize=8)

    # contract forms at the end, and the public cost per extra conversion
    ax = flat[6]
    bars = [(C.COLUMNS[c].name, C.COLUMNS[c].form) for c in FORM_COLUMNS] + [
        (C.COLUMNS[c].name, f"of which {C.COLUMNS[c].cover}") for c in COVER_COLUMNS]
    means = summary.groupby("regime", sort=False)[[name for name, _ in bars]].mean().loc[regimes]
    x = np.arange(len(regimes))
    width = 0.8 / len(bars)
    for k, (name, label) in enumerate(bars):
        ax.bar(x + (k - (len(bars) - 1) / 2) * width, means[name], width, label=label)
    ax.set_xticks(x, regimes, rotation=20, fontsize=8)
    ax.set_title("Contracts by form (mean per run)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")

    ax = flat[7]
    base = summary[summary["regime"] == BASELINE].set_index("seed")
    names, est, err_lo, err_hi = [], [], [], []
    for reg in regimes:
        if reg == BASELINE or base.empty:
            continue
        runs = summary[summary["regime"] == reg].set_index("seed")
        common = runs.index.intersection(base.index)
        e, lo, hi = cost_per_extra_conversion(runs.loc[common, "gov_spend"] - base.loc[common, "gov_spend"],
                                              runs.loc[common, "successes"] - base.loc[common, "successes"])
        names.append(reg)
        est.append(e / 1e3)
        err_lo.append((e - lo) / 1e3 if np.isfinite(lo) else 0)
        err_hi.append((hi - e) / 1e3 if np.isfinite(hi) else 0)
    if names:
        ax.bar(names, np.nan_to_num(est), yerr=[err_lo, err_hi], capsize=4,
               color=[colors[n] for n in names])
        ax.tick_params(axis="x", rotation=20, labelsize=8)
    ax.set_title("Public cost per extra conversion vs baseline\n(k yuan, 95% bootstrap interval)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
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
    from .stats import mean_ci

    num = _numeric_axes(df, axes)
    group = regime_labels(df)
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    if num:
        x = num[0]
        for name, d in (df.groupby(group, sort=False) if group is not None else [("all", df)]):
            xs = sorted(d[x].unique())
            cis = [mean_ci(d.loc[d[x] == v, metric]) for v in xs]
            m = np.array([c[0] for c in cis])
            ax.plot(xs, m, marker="o", label=str(name))
            ax.fill_between(xs, [c[1] for c in cis], [c[2] for c in cis], alpha=0.2, linewidth=0)
        ax.set_xlabel(x)
        rest = [a for a in num[1:]]
        note = f" (averaged over {', '.join(rest)})" if rest else ""
    else:
        names = list(dict.fromkeys(group)) if group is not None else ["all"]
        cis = [mean_ci(df.loc[group == n, metric] if group is not None else df[metric]) for n in names]
        ax.bar(names, [c[0] for c in cis], yerr=[[c[0] - c[1] for c in cis], [c[2] - c[0] for c in cis]], capsize=4)
        note = ""
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean and 95% interval over seeds{note}", fontsize=10)
    ax.grid(alpha=0.3)
    if num:
        ax.legend(fontsize=8)
    return fig


def sweep_heatmap_figure(df: pd.DataFrame, axes: list[str], metric: str):
    """The metric's mean over the first two swept numbers (one panel per regime)."""
    num = _numeric_axes(df, axes)
    if len(num) < 2:
        return None
    x, y = num[0], num[1]
    labels = regime_labels(df)
    regimes = list(dict.fromkeys(labels)) if labels is not None else [None]
    fig, axs = plt.subplots(1, len(regimes), figsize=(4.8 * len(regimes) + 1, 4.2), constrained_layout=True,
                            squeeze=False)
    grids = []
    for reg in regimes:
        d = df if reg is None else df[labels == reg]
        grids.append(d.pivot_table(index=y, columns=x, values=metric, aggfunc="mean"))
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
