"""Plots of a regime comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .stats import BASELINE, cost_per_extra_conversion

# (title, series column, cumulative?, scale, unit)
PANELS = (
    ("Contracts signed (cumulative)", ("signed_licence", "signed_trial"), True, 1.0, ""),
    ("Conversions: implementations succeeded (cumulative)", ("successes",), True, 1.0, ""),
    ("Active brokers", ("brokers_active",), False, 1.0, ""),
    ("University income (cumulative)", ("university_income",), True, 1e6, "M yuan"),
    ("Government spend (cumulative)", ("broker_rewards", "premium_subsidies"), True, 1e6, "M yuan"),
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
    means = summary.groupby("regime", sort=False)[["signed_licence", "signed_trial", "signed_insured"]].mean()
    means = means.loc[regimes]
    x = np.arange(len(regimes))
    ax.bar(x - 0.25, means["signed_licence"], 0.25, label="licence / transfer")
    ax.bar(x, means["signed_trial"], 0.25, label="free trial")
    ax.bar(x + 0.25, means["signed_insured"], 0.25, label="of which insured")
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
