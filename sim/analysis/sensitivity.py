"""Global sensitivity: Morris screening and Sobol indices (SALib) of any outcome to any parameters with ranges.

The pipeline is three plain steps, the same for the model and for a test function with known
indices (Ishigami):

1. :func:`design`: SALib's sample of the parameters' ranges (Sobol: Saltelli's scheme on a
   scrambled Sobol' sequence, ``n * (d + 2)`` points, ``n * (2d + 2)`` with second order;
   Morris: ``n`` trajectories of ``d + 1`` points);
2. evaluate every point (:meth:`sim.analysis.explore.ExploratoryModel.evaluate`: each point the mean of
   its replicates, every point on the same seeds: common random numbers, so the indices measure
   the parameters, not the seeds' luck);
3. :func:`analyse`: SALib's estimators with bootstrap intervals (``resamples``, ``conf_level``),
   as a tidy table: outcome, index, parameter(s), value, low, high.

A parameter's range is its :class:`sim.analysis.calibration.Param`'s: uniform on the value, or on its
logarithm (``scale: log``); an integer parameter is rounded when applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.config import ConfigError

METHODS = ("sobol", "morris")


@dataclass(frozen=True)
class Design:
    """A sample of the parameters' ranges for one method, in SALib's coordinates (``X``) and as points."""

    method: str
    params: tuple
    X: np.ndarray
    second_order: bool = False
    levels: int = 4

    @property
    def problem(self) -> dict:
        return problem(self.params)

    @property
    def points(self) -> list[dict]:
        """Each row of ``X`` as ``{key: value}`` (log-scale values exponentiated, integers rounded)."""
        return [{p.key: p.from_unit(x) for p, x in zip(self.params, row)} for row in self.X]


def problem(params: Sequence) -> dict:
    """SALib's problem: the parameters' names and their ranges in prior coordinates (the log for ``scale: log``)."""
    return {"num_vars": len(params), "names": [p.key for p in params], "bounds": [list(p.bounds) for p in params]}


def design(params: Sequence, method: str, n: int, seed: int, second_order: bool = False, levels: int = 4) -> Design:
    """The points of a Sobol (``n`` a power of 2) or Morris (``n`` trajectories) analysis of ``params``."""
    if method not in METHODS:
        raise ConfigError(f"method = {method!r}: must be one of " + ", ".join(METHODS))
    if len(params) < 2:
        raise ConfigError(f"parameters = {[p.key for p in params]}: a sensitivity analysis needs at least 2")
    prob = problem(params)
    if method == "sobol":
        from SALib.sample import sobol as sobol_sample

        if n < 2 or n & (n - 1):
            raise ConfigError(f"sobol.n = {n}: must be a power of 2 (>= 2): Sobol' sequences balance only there")
        X = sobol_sample.sample(prob, n, calc_second_order=second_order, scramble=True, seed=seed)
    else:
        from SALib.sample import morris as morris_sample

        if n < 2:
            raise ConfigError(f"morris.trajectories = {n}: must be >= 2")
        X = morris_sample.sample(prob, N=n, num_levels=levels, seed=seed)
    return Design(method, tuple(params), np.asarray(X, dtype=float), second_order, levels)


def size(n_params: int, method: str, n: int, second_order: bool = False) -> int:
    """Points in a design (before replicates): Sobol ``n (d + 2)`` or ``n (2d + 2)``, Morris ``n (d + 1)``."""
    if method == "sobol":
        return n * (2 * n_params + 2 if second_order else n_params + 2)
    return n * (n_params + 1)


def analyse(d: Design, outputs: dict, resamples: int = 1000, conf_level: float = 0.95, seed: int = 0):
    """Indices of each output (``{outcome: array over the design's points}``) with bootstrap intervals.

    Returns ``(table, undefined)``: the tidy table (columns outcome, index, parameter, parameter2,
    value, conf, low, high) and ``{outcome: points}`` of the outputs left out because some points
    have no finite value (a cost per extra conversion where a point adds none): their indices
    would be meaningless, and saying so beats a table of NaN.
    Sobol indices: ``S1`` (first order), ``ST`` (total), ``S2`` (pairs, with ``second_order``);
    Morris: ``mu_star`` (mean absolute elementary effect, in the outcome's units per the whole
    range), ``sigma`` (their spread: interactions, non-linearity), ``mu``.
    """
    import pandas as pd

    rows, undefined = [], {}
    prob = d.problem
    for name, y in outputs.items():
        y = np.asarray(y, dtype=float)
        if y.shape != (len(d.X),):
            raise ValueError(f"output {name}: {y.shape[0] if y.ndim else 0} values for {len(d.X)} points")
        bad = int((~np.isfinite(y)).sum())
        if bad:
            undefined[name] = bad
            continue
        if d.method == "sobol":
            from SALib.analyze import sobol

            # a Generator, not the int: SALib's Sobol estimator ignores a seed of 0 (``if seed:``) and draws its
            # bootstrap from numpy's global state, which would make the intervals irreproducible
            res = sobol.analyze(prob, y, calc_second_order=d.second_order, num_resamples=resamples,
                                conf_level=conf_level, seed=np.random.default_rng(seed), print_to_console=False)
            for index in ("S1", "ST"):
                for i, p in enumerate(d.params):
                    rows.append(_row(name, index, p.key, "", res[index][i], res[f"{index}_conf"][i]))
            if d.second_order:
                for i in range(len(d.params)):
                    for j in range(i + 1, len(d.params)):
                        rows.append(_row(name, "S2", d.params[i].key, d.params[j].key, res["S2"][i, j],
                                         res["S2_conf"][i, j]))
        else:
            from SALib.analyze import morris

            res = morris.analyze(prob, d.X, y, num_resamples=resamples, conf_level=conf_level,
                                 num_levels=d.levels, seed=seed, print_to_console=False)
            for i, p in enumerate(d.params):
                rows.append(_row(name, "mu_star", p.key, "", res["mu_star"][i], res["mu_star_conf"][i]))
                rows.append(_row(name, "sigma", p.key, "", res["sigma"][i], math.nan))
                rows.append(_row(name, "mu", p.key, "", res["mu"][i], math.nan))
    cols = ["outcome", "index", "parameter", "parameter2", "value", "conf", "low", "high"]
    return pd.DataFrame(rows, columns=cols), undefined


def run(params: Sequence, evaluate, outcomes: Sequence[str], method: str, n: int, seed: int,
        second_order: bool = False, levels: int = 4, resamples: int = 1000, conf_level: float = 0.95):
    """The whole pipeline: :func:`design`, ``evaluate(points) -> table`` (a column per outcome, a row per point, in
    order), :func:`analyse`. Returns ``(design, table, indices, undefined)``. The app runs the model through it
    (``evaluate`` = the design's Parquet parts, :func:`sim.analysis.designs.run_design`); the tests, Ishigami's function."""
    d = design(params, method, n, seed, second_order, levels)
    table = evaluate(d.points)
    indices, undefined = analyse(d, {o: table[o].to_numpy() for o in outcomes}, resamples, conf_level, seed)
    return d, table, indices, undefined


def _row(outcome, index, p1, p2, value, conf) -> dict:
    value, conf = float(value), float(conf)
    return {"outcome": outcome, "index": index, "parameter": p1, "parameter2": p2, "value": value, "conf": conf,
            "low": value - conf if math.isfinite(conf) else math.nan,
            "high": value + conf if math.isfinite(conf) else math.nan}


def ranking(table, outcome: str, index: str = "ST"):
    """The parameters by one index of one outcome, largest first (``mu_star`` for Morris)."""
    t = table[(table["outcome"] == outcome) & (table["index"] == index)]
    return t.sort_values("value", ascending=False, ignore_index=True)


# --------------------------------------------------------------------------- plot
def figure(table, method: str, short=None):
    """One panel per outcome: the indices with their bootstrap intervals (Sobol: S1 and ST bars; Morris: mu* bars,
    sigma as dots), parameters ordered by their total effect."""
    import matplotlib.pyplot as plt

    short = short or (lambda k: k.replace("scenario.", ""))
    outcomes = list(dict.fromkeys(table["outcome"]))
    fig, axes = plt.subplots(1, max(len(outcomes), 1), figsize=(5.2 * max(len(outcomes), 1), 0.45 * max(
        table["parameter"].nunique(), 4) + 1.6), squeeze=False)
    main, second = ("ST", "S1") if method == "sobol" else ("mu_star", "sigma")
    for ax, name in zip(axes[0], outcomes):
        t = table[table["outcome"] == name]
        order = list(ranking(t, name, main)["parameter"])[::-1]
        y = np.arange(len(order))
        for k, (index, colour, dy) in enumerate(((main, "#1f77b4", 0.18), (second, "#ff7f0e", -0.18))):
            s = t[t["index"] == index].set_index("parameter").reindex(order)
            err = np.vstack([s["value"] - s["low"], s["high"] - s["value"]]) if s["conf"].notna().any() else None
            if err is not None:
                err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
            label = {"ST": "total (ST)", "S1": "first order (S1)", "mu_star": "mu* (mean |effect|)",
                     "sigma": "sigma (spread)"}[index]
            ax.barh(y + dy, s["value"], height=0.36, xerr=err, color=colour, alpha=0.85, label=label,
                    error_kw={"lw": 1, "capsize": 2})
        ax.set_yticks(y, [short(k) for k in order], fontsize=8)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("index (95% bootstrap interval)" if method == "sobol" else f"effect on {name} over the range")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{'Sobol indices' if method == 'sobol' else 'Morris elementary effects'} "
                 "(common random numbers; replicates averaged)", fontsize=11)
    fig.tight_layout()
    return fig
