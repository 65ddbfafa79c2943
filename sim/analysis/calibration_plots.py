"""Figures of a calibration: the screen, the posterior's pairs, the fit and the held-out predictions."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np


def screen_figure(table, selected):
    """Morris mu* of every parameter (in sigmas of the most sensitive target) with its bootstrap interval."""
    df = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(df) + 1.5))
    colors = ["tab:blue" if p in selected else "0.6" for p in df["parameter"]]
    low = np.minimum(df["mu_star_conf"], df["mu_star"])  # mu* >= 0: the interval is cut at 0
    ax.barh(df["parameter"], df["mu_star"], xerr=[low, df["mu_star_conf"]], color=colors, ecolor="0.3", capsize=2)
    ax.set_xlabel("Morris mu* (largest over fitted targets, in units of the target's sigma);\n"
                  "bars: 95% bootstrap interval")
    ax.set_title("Screening: parameters kept for the fit in blue")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def pairs_figure(post, keys, space=None):
    """The posterior's marginals (weighted histograms) and pairs (scatter, point size by weight), on the axes of
    the prior's ranges (log axes for log-scale parameters), so that how far each narrowed shows."""
    params = {p.key: p for p in space.params} if space is not None else {}
    k = len(keys)
    fig, axes = plt.subplots(k, k, figsize=(2.0 * k + 1, 2.0 * k + 1), squeeze=False)
    w = post["weight"].to_numpy()
    for i, yi in enumerate(keys):
        for j, xj in enumerate(keys):
            ax = axes[i, j]
            px, py = params.get(xj), params.get(yi)
            if i == j:
                bins = (np.geomspace(px.low, px.high, 21) if px is not None and px.scale == "log"
                        else np.linspace(px.low, px.high, 21) if px is not None else 20)
                ax.hist(post[xj], bins=bins, weights=w, color="tab:blue", alpha=0.8)
            elif i > j:
                ax.scatter(post[xj], post[yi], s=4 + 400 * w, alpha=0.4, color="tab:blue", linewidths=0)
            else:
                ax.axis("off")
                continue
            if px is not None:
                ax.set_xlim(px.low, px.high)
                ax.set_xscale("log" if px.scale == "log" else "linear")
            if py is not None and i != j:
                ax.set_ylim(py.low, py.high)
                ax.set_yscale("log" if py.scale == "log" else "linear")
            if i == k - 1:
                ax.set_xlabel(xj.split(".", 1)[-1], fontsize=7)
            if j == 0 and i != j:
                ax.set_ylabel(yi.split(".", 1)[-1], fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle("Posterior: marginals and pairs on the prior's ranges (point size: a particle's weight)")
    fig.tight_layout()
    return fig


def fit_figure(fit):
    """Each target: predicted / observed (log axis), the posterior predictive 90% interval against the figure's
    own 95% sampling interval; fitted targets blue, held-out ones orange, misfits marked."""
    df = fit.iloc[::-1].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(df) + 1.8))
    y = np.arange(len(df))
    for i, r in df.iterrows():
        obs = r["observed"]
        if not obs or not math.isfinite(obs) or obs <= 0:
            continue
        color = "tab:blue" if r["use"] == "fit" else "tab:orange"
        lo, hi = max(r["observed_low"], obs * 1e-3) / obs, r["observed_high"] / obs
        ax.fill_between([lo, hi], i - 0.3, i + 0.3, color="0.85", linewidth=0)
        if math.isfinite(r["predicted_median"]):
            q05, q95 = (max(r["predicted_q05"], obs * 1e-4) / obs, max(r["predicted_q95"], obs * 1e-4) / obs)
            ax.plot([q05, q95], [i, i], color=color, lw=3)
            ax.plot(max(r["predicted_median"], obs * 1e-4) / obs, i, "o", color=color)
        if "prior_median" in r and math.isfinite(r.get("prior_median", math.nan)) and r["prior_median"] > 0:
            ax.plot(r["prior_median"] / obs, i, "x", color="0.3")
        if r["misfit"]:
            ax.text(1.02, i, "misfit", transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="tab:red")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.legend(handles=[Line2D([], [], color="tab:blue", marker="o", lw=3, label="fitted: predicted, 90%"),
                       Line2D([], [], color="tab:orange", marker="o", lw=3, label="held out: predicted, 90%"),
                       Patch(color="0.85", label="reported: 95% sampling interval"),
                       Line2D([], [], color="0.3", marker="x", lw=0, label="model at its defaults")],
              fontsize=7, loc="lower left")
    ax.set_yticks(y, [f"{t} ({u})" for t, u in zip(df["target"], df["use"])], fontsize=8)
    ax.set_xlabel("model / reported figure (log scale): posterior predictive median and 90% interval;\n"
                  "grey: the figure's own 95% sampling interval; x: the model at its defaults")
    ax.set_title("Fit (blue) and held-out predictions (orange)")
    fig.tight_layout()
    return fig


def save(fig, path, write_atomic):
    def write(p):
        fig.savefig(p, dpi=110, format="png")

    write_atomic(path, write)
    plt.close(fig)
