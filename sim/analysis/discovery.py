"""Scenario discovery: in which region of the uncertainties does an outcome condition hold? PRIM on a design's table.

An analyst asks of a design's table (points' uncertainties, then their outcomes, as
:meth:`sim.analysis.explore.ExploratoryModel.evaluate` returns it) questions such as *when is the cost per
extra conversion of vouchers below 1 million yuan?* or *when does the combined regime lose
universities' income?*:

1. :func:`condition` turns the question into a case per point: ``"cost_per_extra_conversion < 1e6"``;
2. :func:`discover` runs PRIM (Friedman & Fisher 1999; for scenario discovery Bryant & Lempert
   2010) on the points' uncertainties and those cases: a trajectory of ever smaller boxes (peeling
   ``peel_alpha`` of the points off one side of one parameter at a time, then pasting back), each
   with its **coverage** (the share of all cases inside the box), **density** (the share of the
   box's points that are cases) and **mass** (the share of all points inside the box); it chooses
   one box and gives its limits per parameter and the quasi-p-value of each restriction;
3. :func:`plot_tradeoff` (coverage against density along the trajectory, the chosen box marked)
   and :func:`plot_box` (each restricted parameter's range within its full range) show it.

**Which PRIM.** EMA Workbench's ``ema_workbench.analysis.prim`` (Kwakkel, TU Delft; version 2.5
here): the reference Python implementation of scenario-discovery PRIM, modelled on RAND's sdtoolkit,
maintained with the workbench. It has peeling *and* pasting, the coverage/density/mass trajectory,
the quasi-p-value of each restriction (Bryant & Lempert's one-sided binomial test), and it is the
library :meth:`sim.analysis.explore.ExploratoryModel.to_ema` already wraps the model for. The standalone
``prim`` package (Project Platypus) is a copy of EMA's code: another dependency and nothing the
original lacks. Writing our own would be short but would have to re-earn EMA's testing. What we
add is what EMA leaves to an interactive session: a safe condition language, one stated rule for
choosing a box, the box's limits against the space's full ranges, refusals in one line, files.

**Which box.** Along the peeling trajectory coverage falls and density mostly rises. We choose
*the box of highest coverage among those whose density is at least* ``threshold`` (ties: fewer
restricted parameters, then higher density): of the boxes dense enough to be a useful
description, the one explaining most cases. (EMA's last box, peeled down to ``mass_min``, is the
densest but usually explains few cases.) When no box reaches the threshold the densest box is
given and :attr:`Discovery.threshold_met` is False. ``box=i`` chooses box ``i`` of the trajectory
instead, after one has looked at the trade-off. Then, as Bryant & Lempert advise, a restriction
that is not significant (every quasi-p-value of it above ``significance``, 0.05) is dropped, the
least significant first, until none is left (EMA's ``drop_restriction``; the boxes so made are
appended to the trajectory): greedy peeling on noisy cases often trims an inert parameter by
chance, and a box should not claim it matters.

**Cases and non-finite outcomes.** A point is a case when the condition is true of its outcomes;
comparisons follow IEEE arithmetic, so a cost of ``inf`` (the point spends and adds no
conversion) is not ``< c``, as it should be. An outcome that is NaN (a cost per extra conversion
of a point that adds no conversion and spends nothing more: :data:`sim.analysis.explore.OUTCOMES`) makes a
comparison unknown, and the condition follows three-valued (Kleene) logic: ``False and unknown`` is
False, ``True or unknown`` is True. So ``"extra_conversions > 0 and cost_per_extra_conversion < c"``
is decided at every point; a condition still unknown at some point is refused, naming how many.
PRIM sees only the uncertainties (and numeric levers): a table's outcome columns are never inputs.
"""

from __future__ import annotations

import ast
import logging
import math
import textwrap
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ..core.config import ConfigError

MIN_POINTS = 20   # fewer points than this and a box of a few points is chance
COMPARISONS = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
               ast.Eq: np.equal, ast.NotEq: np.not_equal}
CONSTANTS = {"inf": math.inf}


# --------------------------------------------------------------------------- the design
def latin_hypercube(params, n: int, seed: int) -> list[dict]:
    """A Latin hypercube of ``n`` points over the parameters' ranges in their prior coordinates (the log for a
    log-scale parameter; integers rounded when applied, :meth:`sim.analysis.calibration.Param.from_unit`)."""
    from scipy.stats import qmc

    unit = qmc.LatinHypercube(d=len(params), seed=seed).random(n)
    points = []
    for row in unit:
        point = {}
        for p, u in zip(params, row):
            lo, hi = p.bounds
            point[p.key] = p.from_unit(lo + u * (hi - lo))
        points.append(point)
    return points


# --------------------------------------------------------------------------- the condition
def _allowed(columns: Sequence[str]) -> str:
    return ("comparisons (< <= > >= == !=) of outcome columns (" + ", ".join(columns) + ") with numbers or inf, "
            "joined by and/or/not (or & | ~)")


def condition(table: pd.DataFrame, query: str, columns: Optional[Sequence[str]] = None,
              key: str = "discover.query") -> np.ndarray:
    """The points of ``table`` for which ``query`` holds: a boolean array, one per row.

    ``query`` is a comparison of outcome columns with numbers, e.g. ``"cost_per_extra_conversion < 1e6"``,
    ``"university_income_change < 0"``, ``"extra_conversions > 0 and cost_per_extra_conversion <= 2e6"``. It is
    parsed (Python's ``ast``), checked and evaluated here, never by ``eval``: only the names in ``columns`` (by
    default the table's columns that are :data:`sim.analysis.explore.OUTCOMES`) and ``inf``, numbers, comparisons and
    and/or/not (or ``& | ~``) are allowed; anything else is refused in one line naming ``key``.
    """
    if columns is None:
        from .explore import OUTCOMES

        columns = [c for c in table.columns if c in OUTCOMES]
    columns = list(columns)

    def refuse(what: str):
        return ConfigError(f"{key} = {query!r}: {what}; allowed: {_allowed(columns)}")

    if not isinstance(query, str) or not query.strip():
        raise refuse("must be a non-empty condition")
    try:
        tree = ast.parse(query.strip(), mode="eval")
    except SyntaxError:
        raise refuse("not a valid expression") from None
    used: set = set()

    def num(node) -> np.ndarray | float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if node.id not in columns:
                raise refuse(f"unknown column {node.id!r}")
            used.add(node.id)
            return pd.to_numeric(table[node.id], errors="coerce").to_numpy(dtype=float)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = num(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        raise refuse(f"{_describe(node)} is not a number or an outcome column")

    n = len(table)

    def truth(node) -> tuple[np.ndarray, np.ndarray]:
        """(value, known) per point: three-valued logic, a comparison with NaN unknown."""
        if isinstance(node, ast.Compare):
            value, known, left = np.ones(n, bool), np.ones(n, bool), num(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                if type(op) not in COMPARISONS:
                    raise refuse(f"operator {type(op).__name__} is not a comparison")
                right = num(right_node)
                k = np.broadcast_to(~(np.isnan(left) | np.isnan(right)), (n,))
                v = np.broadcast_to(COMPARISONS[type(op)](left, right), (n,)) & k
                value, known = _and(value, known, v, k)
                left = right
            return value, known
        if isinstance(node, ast.BoolOp):
            parts = [truth(v) for v in node.values]
            fn = _and if isinstance(node.op, ast.And) else _or
            out = parts[0]
            for p in parts[1:]:
                out = fn(*out, *p)
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            fn = _and if isinstance(node.op, ast.BitAnd) else _or
            return fn(*truth(node.left), *truth(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            v, k = truth(node.operand)
            return ~v & k, k
        raise refuse(f"{_describe(node)} is not a condition")

    value, known = truth(tree.body)
    if not used:
        raise refuse("compares no outcome column")
    if not known.all():
        raise refuse(f"undecided at {int((~known).sum())} points, where it compares an undefined (NaN) outcome; "
                     "guard it, e.g. 'extra_conversions > 0 and cost_per_extra_conversion < 1e6'")
    return np.array(value, dtype=bool)


def _and(a, ka, b, kb):
    """Kleene's and: known when both are, or when either is known False."""
    return a & b, (ka & kb) | (ka & ~a) | (kb & ~b)


def _or(a, ka, b, kb):
    """Kleene's or: known when both are, or when either is known True."""
    return (a & ka) | (b & kb), (ka & kb) | (ka & a) | (kb & b)


def query_columns(query: str, columns: Sequence[str], key: str = "discover.query") -> list[str]:
    """The columns ``query`` compares (in order of appearance), once it is checked against ``columns``: a design can
    compute the outcomes a question needs, and a bad question is refused before any run."""
    columns = list(columns)
    condition(pd.DataFrame({c: pd.Series(dtype=float) for c in columns}), query, columns, key)
    names = [n.id for n in ast.walk(ast.parse(query.strip(), mode="eval")) if isinstance(n, ast.Name)]
    return list(dict.fromkeys(n for n in names if n not in CONSTANTS))


def _describe(node) -> str:
    kinds = {ast.Call: "a function call", ast.Attribute: "attribute access", ast.Subscript: "indexing",
             ast.NamedExpr: "an assignment", ast.Lambda: "a lambda", ast.BinOp: "arithmetic",
             ast.Constant: "a constant that is not a number"}
    for kind, text in kinds.items():
        if isinstance(node, kind):
            return text
    return f"a {type(node).__name__}"


# --------------------------------------------------------------------------- EMA, quietly
@contextmanager
def _quiet_ema():
    """EMA's INFO logging and the deprecation noise its code raises in pandas are silenced; its errors and any other
    warning are not."""
    logger = logging.getLogger("EMA")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="ipyparallel not installed", category=UserWarning)
            warnings.filterwarnings("ignore", message="altair based interactive", category=ImportWarning)
            for cat in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
                warnings.filterwarnings("ignore", category=cat, module=r"ema_workbench(\.|$)")
            yield
    finally:
        logger.setLevel(level)


def _prim_module():
    with _quiet_ema():
        from ema_workbench.analysis import prim
    return prim


# --------------------------------------------------------------------------- the result
@dataclass
class Discovery:
    """PRIM's answer: the trajectory of boxes, the chosen one and its limits.

    ``trajectory``: one row per box (``box``, ``coverage``, ``density``, ``mass``, ``n`` points inside, ``cases``
    inside, ``res_dim`` restricted parameters, ``restricted`` their names, ``origin``: peeling and pasting, or a box
    with a restriction dropped; ``chosen``: the box given). ``box``: one row per input parameter (restricted ones
    first, most significant first): ``low``, ``high`` (the chosen box; a side not restricted is the full range's
    end), ``restricted``, ``full_low``, ``full_high`` (the space's range when given, else the data's),
    ``qp_low``, ``qp_high`` (quasi-p-value of the restriction of that side; NaN: not restricted).
    """

    trajectory: pd.DataFrame
    box: pd.DataFrame
    chosen: int                # the box given (its row in the trajectory)
    picked: int                # the box the rule (or box=) picked from peeling and pasting, before any drop
    dropped: list              # restrictions dropped from it as not significant, in order
    threshold: float
    threshold_met: bool
    how: str                   # how the box was chosen, in words
    n_points: int
    n_cases: int
    limits: list               # every trajectory box's limits: DataFrames (rows low, high) over the inputs
    scales: dict               # parameter -> "linear" or "log": how plot_box draws its range

    @property
    def coverage(self) -> float:
        return float(self.trajectory.at[self.chosen, "coverage"])

    @property
    def density(self) -> float:
        return float(self.trajectory.at[self.chosen, "density"])

    @property
    def mass(self) -> float:
        return float(self.trajectory.at[self.chosen, "mass"])

    @property
    def restricted(self) -> list[str]:
        return list(self.box.loc[self.box["restricted"], "parameter"])

    def inside(self, x: pd.DataFrame) -> np.ndarray:
        """Which rows of ``x`` lie in the chosen box (limits inclusive, as PRIM counts them)."""
        ok = np.ones(len(x), dtype=bool)
        for row in self.box.itertuples():
            v = x[row.parameter].to_numpy(dtype=float)
            ok &= (v >= row.low) & (v <= row.high)
        return ok


def _check(value, key: str, low: float, high: float) -> float:
    """A number in (low, high], or a one-line refusal."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) \
        and math.isfinite(float(value)) and low < value <= high
    if not ok:
        raise ConfigError(f"{key} = {value!r}: must be a number in ({low}, {high}]")
    return float(value)


def discover(x: pd.DataFrame, y, threshold: float = 0.8, peel_alpha: float = 0.05, paste_alpha: float = 0.05,
             mass_min: float = 0.05, significance: Optional[float] = 0.05, params: Optional[Sequence] = None,
             box: Optional[int] = None, query: str = "", key: str = "discover") -> Discovery:
    """PRIM on the points ``x`` (one numeric column per uncertainty or lever) and the cases ``y`` (booleans).

    ``threshold``: the density wanted of the chosen box (see the module's doc for the rule); ``peel_alpha``: the share
    of a box's points peeled off per step; ``paste_alpha``: pasted back per step; ``mass_min``: the smallest box, as a
    share of all points. ``significance``: a restriction of the chosen box whose quasi-p-values all exceed it is
    dropped (the least significant first, until none is left; None: keep them all). ``params``: the space's
    :class:`sim.analysis.calibration.Param` s of the columns, for their full ranges and scales (else the data's range).
    ``box``: choose this box of the trajectory instead of by the rule. ``query``: the condition's text, for messages.
    Refused in one line (``key.*``): fewer than :data:`MIN_POINTS` points, a condition true of none or of all of
    them, non-numeric or undefined inputs, points outside ``params``.
    """
    threshold = _check(threshold, f"{key}.threshold", 0.0, 1.0)
    peel_alpha = _check(peel_alpha, f"{key}.peel_alpha", 0.0, 0.5)
    paste_alpha = _check(paste_alpha, f"{key}.paste_alpha", 0.0, 0.5)
    mass_min = _check(mass_min, f"{key}.mass_min", 0.0, 1.0)
    if significance is not None:
        significance = _check(significance, f"{key}.significance", 0.0, 1.0)
    if not isinstance(x, pd.DataFrame) or x.shape[1] == 0:
        raise ConfigError(f"{key}: the points must be a table with at least one input column")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x) or not (y.dtype == bool or np.isin(y, (0, 1)).all()):
        raise ConfigError(f"{key}: the cases must be one boolean per point ({len(x)} points)")
    y = y.astype(bool)
    what = f"{key}.query = {query!r}" if query else f"{key}: the condition"
    n, cases = len(y), int(y.sum())
    if n < MIN_POINTS:
        raise ConfigError(f"{key}: {n} points are too few for PRIM; at least {MIN_POINTS}")
    if cases == 0 or cases == n:
        raise ConfigError(f"{what}: true for {'none' if cases == 0 else 'all'} of the {n} points; nothing to "
                          f"discover (a condition true for some points and not others)")

    x = x.reset_index(drop=True).copy()
    for c in x.columns:
        if x[c].dtype == bool:
            x[c] = x[c].astype(int)
        if not pd.api.types.is_numeric_dtype(x[c]):
            raise ConfigError(f"{key}: input column {c!r} is not numeric")
        x[c] = x[c].astype(float)
        if x[c].isna().any():
            raise ConfigError(f"{key}: input column {c!r} has undefined (NaN) values")
    full, scales = _full_ranges(x, params, key)
    varying = [c for c in x.columns if x[c].min() < x[c].max()]  # a constant column cannot be restricted
    if not varying:
        raise ConfigError(f"{key}: every input column is constant; nothing to restrict")

    prim = _prim_module()
    with _quiet_ema():
        alg = prim.Prim(x[varying], y.astype(int), threshold=_CASE, peel_alpha=peel_alpha, paste_alpha=paste_alpha,
                        mass_min=mass_min)
        found = alg.find_box()
        peeled = found.peeling_trajectory
        if box is not None:
            if isinstance(box, bool) or not isinstance(box, (int, np.integer)) or not 0 <= box < len(peeled):
                raise ConfigError(f"{key}.box = {box!r}: must be a box of the trajectory, 0 to {len(peeled) - 1}")
            picked, how = int(box), f"box {int(box)} of the trajectory, as asked ({key}.box)"
        else:
            picked, how = _pick(peeled, threshold)
        origin = ["peeling and pasting"] * len(peeled)
        chosen, dropped = picked, []
        while significance is not None:
            weak = {u: min(q for q in v if q != -1) for u, v in found.qp[chosen].items()}
            weak = {u: q for u, q in weak.items() if q > significance}
            if not weak:
                break
            u = max(weak, key=weak.get)                # the least significant first, then look again
            found.drop_restriction(u, chosen)
            origin.append(f"box {chosen} without {u}")
            chosen = len(found.peeling_trajectory) - 1
            dropped.append(u)
    if dropped:
        how += (f"; then the restriction{'s' if len(dropped) > 1 else ''} on {', '.join(dropped)} dropped: not "
                f"significant (quasi-p > {significance:g})")
    init = alg.box_init

    traj = found.peeling_trajectory
    rows, limits = [], []
    for i in range(len(traj)):
        lim = found.box_lims[i]
        res = [c for c in varying if _side(lim, init, c, 0) or _side(lim, init, c, 1)]
        full_lim = pd.DataFrame({c: [full[c][0], full[c][1]] for c in x.columns})
        for c in res:
            for s in (0, 1):
                if _side(lim, init, c, s):
                    full_lim.loc[s, c] = float(lim.loc[s, c])
        limits.append(full_lim)
        rows.append({"box": i, "coverage": float(traj.at[i, "coverage"]), "density": float(traj.at[i, "density"]),
                     "mass": float(traj.at[i, "mass"]), "n": int(traj.at[i, "n"]), "cases": int(traj.at[i, "k"]),
                     "res_dim": len(res), "restricted": "; ".join(res), "origin": origin[i]})
    trajectory = pd.DataFrame(rows)
    trajectory["chosen"] = trajectory["box"] == chosen
    met = bool(trajectory.at[chosen, "density"] >= threshold)

    qp = found.qp[chosen]
    lim = limits[chosen]
    table = []
    for c in x.columns:
        q = qp.get(c, [-1, -1])
        qlo, qhi = (float(v) if v != -1 else math.nan for v in q)
        lo_res = c in varying and _side(found.box_lims[chosen], init, c, 0)
        hi_res = c in varying and _side(found.box_lims[chosen], init, c, 1)
        table.append({"parameter": c, "low": float(lim.loc[0, c]), "high": float(lim.loc[1, c]),
                      "restricted": bool(lo_res or hi_res), "full_low": full[c][0], "full_high": full[c][1],
                      "qp_low": qlo if lo_res else math.nan, "qp_high": qhi if hi_res else math.nan})
    box_table = pd.DataFrame(table)
    box_table["_qp"] = box_table[["qp_low", "qp_high"]].min(axis=1).fillna(np.inf)
    box_table = (box_table.sort_values(["restricted", "_qp"], ascending=[False, True], kind="stable")
                 .drop(columns="_qp").reset_index(drop=True))
    return Discovery(trajectory, box_table, chosen, picked, dropped, threshold, met, how, n, cases, limits, scales)


def _pick(peeled: pd.DataFrame, threshold: float) -> tuple[int, str]:
    """The rule: the highest coverage among the boxes of density >= threshold (ties: fewer restricted parameters,
    then higher density); else the densest box (ties: higher coverage)."""
    t = pd.DataFrame({"box": range(len(peeled)), "coverage": peeled["coverage"].to_numpy(dtype=float),
                      "density": peeled["density"].to_numpy(dtype=float),
                      "res_dim": peeled["res_dim"].to_numpy(dtype=int)})
    dense = t[t["density"] >= threshold]
    if not dense.empty:
        best = dense.sort_values(["coverage", "res_dim", "density"], ascending=[False, True, False], kind="stable")
        return int(best["box"].iloc[0]), f"the box of highest coverage among those of density >= {threshold:g}"
    best = t.sort_values(["density", "coverage"], ascending=[False, False], kind="stable")
    return int(best["box"].iloc[0]), f"no box reaches density {threshold:g}: the densest box"


# EMA's Prim counts a point as a case when y >= its threshold, and replaces the whole trajectory by the initial box
# when the last box's density is below it. With y in {0, 1}, a tiny positive threshold counts exactly the points with
# y = 1 and keeps the trajectory; the density threshold is applied when choosing the box, above.
_CASE = 1e-9


def _side(lim: pd.DataFrame, init: pd.DataFrame, c: str, s: int) -> bool:
    return bool(lim.loc[s, c] != init.loc[s, c])


def _full_ranges(x: pd.DataFrame, params, key: str) -> tuple[dict, dict]:
    full = {c: (float(x[c].min()), float(x[c].max())) for c in x.columns}
    scales = {c: "linear" for c in x.columns}
    for p in params or ():
        if p.key not in x.columns:
            continue
        lo, hi = float(x[p.key].min()), float(x[p.key].max())
        slack = 1e-9 * max(1.0, abs(p.low), abs(p.high))
        if lo < p.low - slack or hi > p.high + slack:
            raise ConfigError(f"{key}: column {p.key!r} has values in [{lo:g}, {hi:g}], outside its space's range "
                              f"[{p.low:g}, {p.high:g}]: the table was not made on this space")
        full[p.key] = (float(p.low), float(p.high))
        scales[p.key] = p.scale if p.scale == "log" and p.low > 0 else "linear"
    return full, scales


# --------------------------------------------------------------------------- tables and text
def summary(d: Discovery, query: str = "") -> str:
    """The chosen box in a few lines of Markdown: the question, the statistics, the restrictions."""
    lines = []
    if query:
        lines.append(f"**When is `{query}`?** True for {d.n_cases} of {d.n_points} points "
                     f"({d.n_cases / d.n_points:.0%}).")
    lines.append(f"Chosen: box {d.chosen} of {len(d.trajectory)} ({d.how}): coverage {d.coverage:.2f} (share of "
                 f"the cases inside), density {d.density:.2f} (share of the box's points that are cases), mass "
                 f"{d.mass:.2f} (share of all points inside).")
    if not d.threshold_met and d.dropped and d.trajectory.at[d.picked, "density"] >= d.threshold:
        lines.append(f"Its density is below the threshold {d.threshold:g}: box {d.picked} reached it, but with "
                     f"restrictions this table cannot tell from chance (quasi-p above the significance level).")
    elif not d.threshold_met:
        lines.append(f"Its density is below the threshold {d.threshold:g}: the condition has no region of that "
                     f"density in this table.")
    res = d.box[d.box["restricted"]]
    if res.empty:
        lines.append("No parameter is restricted: the box is the whole space.")
    else:
        lines += ["", "| parameter | box | full range | quasi-p (low, high) |", "|---|---|---|---|"]
        for r in res.itertuples():
            qps = ", ".join("-" if math.isnan(v) else f"{v:.2g}" for v in (r.qp_low, r.qp_high))
            lines.append(f"| {r.parameter} | [{r.low:.4g}, {r.high:.4g}] | [{r.full_low:.4g}, {r.full_high:.4g}] "
                         f"| {qps} |")
        free = list(d.box.loc[~d.box["restricted"], "parameter"])
        if free:
            lines.append("")
            lines.append("Not restricted: " + ", ".join(free) + ".")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots
def plot_tradeoff(d: Discovery, title: str = ""):
    """Coverage against density of every box on the trajectory, colour: the number of restricted parameters; the
    chosen box ringed, the density threshold dashed. A ``matplotlib.figure.Figure`` (no pyplot state)."""
    from matplotlib import colors
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    import matplotlib

    t = d.trajectory
    peel = t[t["origin"] == "peeling and pasting"]
    drops = t[t["origin"] != "peeling and pasting"]
    fig = Figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot(111)
    top = int(t["res_dim"].max())
    cmap = colors.ListedColormap([matplotlib.colormaps["viridis"](v) for v in np.linspace(0, 1, top + 1)])
    norm = colors.BoundaryNorm(np.arange(-0.5, top + 1.5), cmap.N)
    ax.plot(peel["coverage"], peel["density"], color="0.8", lw=0.8, zorder=1)
    ax.scatter(peel["coverage"], peel["density"], c=peel["res_dim"], cmap=cmap, norm=norm, s=22, zorder=2)
    if not drops.empty:
        path = t.loc[[d.picked] + list(drops["box"])]
        ax.plot(path["coverage"], path["density"], color="0.5", lw=0.8, ls=":", zorder=1)
        ax.scatter(drops["coverage"], drops["density"], c=drops["res_dim"], cmap=cmap, norm=norm, s=30, marker="s",
                   zorder=2, label="an insignificant restriction dropped")
    ax.scatter([d.coverage], [d.density], s=160, facecolors="none", edgecolors="red", lw=1.6, zorder=3,
               label=f"chosen: box {d.chosen} (coverage {d.coverage:.2f}, density {d.density:.2f})")
    ax.axhline(d.threshold, color="red", ls="--", lw=0.8, label=f"density threshold {d.threshold:g}")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("coverage (share of the cases inside the box)")
    ax.set_ylabel("density (share of the box's points that are cases)")
    ax.legend(loc="lower left", fontsize=8)
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, ticks=range(top + 1))
    cb.set_label("restricted parameters")
    ax.set_title(textwrap.fill(title or "PRIM: the peeling trade-off", 70), fontsize=10)
    fig.tight_layout()
    return fig


def plot_box(d: Discovery, title: str = ""):
    """Each restricted parameter's range in the chosen box (thick) within its full range (thin), on the parameter's
    own scale (log for a log-scale parameter), with the limits and their quasi-p-values."""
    from matplotlib.figure import Figure

    res = d.box[d.box["restricted"]]
    fig = Figure(figsize=(7.5, 1.2 + 0.55 * max(len(res), 1)))
    ax = fig.add_subplot(111)
    if res.empty:
        ax.text(0.5, 0.5, "no parameter restricted: the box is the whole space", ha="center", va="center")
        ax.set_axis_off()
    for j, r in enumerate(res.itertuples()):
        yj = len(res) - 1 - j
        log = d.scales.get(r.parameter) == "log"
        f = (lambda v: math.log(v)) if log else (lambda v: v)
        span = f(r.full_high) - f(r.full_low)
        lo, hi = ((f(v) - f(r.full_low)) / span for v in (r.low, r.high))
        ax.plot([0, 1], [yj, yj], color="0.75", lw=2, solid_capstyle="butt")
        ax.plot([lo, hi], [yj, yj], color="tab:blue", lw=7, solid_capstyle="butt")
        ax.text(-0.01, yj, f"{r.full_low:.3g}", ha="right", va="center", fontsize=7, color="0.4")
        ax.text(1.01, yj, f"{r.full_high:.3g}", ha="left", va="center", fontsize=7, color="0.4")
        for v, pos, q in ((r.low, lo, r.qp_low), (r.high, hi, r.qp_high)):
            if not math.isnan(q):
                ax.text(pos, yj - 0.28, f"{v:.3g}", ha="center", va="top", fontsize=7, color="tab:blue")
    if not res.empty:
        labels = []
        for r in res.itertuples():
            qps = [f"{v:.1g}" for v in (r.qp_low, r.qp_high) if not math.isnan(v)]
            labels.append(f"{r.parameter}{' (log)' if d.scales.get(r.parameter) == 'log' else ''}\nqp {', '.join(qps)}")
        ax.set_yticks(range(len(res) - 1, -1, -1), labels, fontsize=7)
        ax.set_xticks([])
        ax.set_xlim(-0.12, 1.12)
        ax.set_ylim(-0.8, len(res) - 0.4)
        for s in ("top", "right", "bottom"):
            ax.spines[s].set_visible(False)
    ax.set_title(title or f"Box {d.chosen}: coverage {d.coverage:.2f}, density {d.density:.2f}, mass {d.mass:.2f}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path) -> None:
    """Write a figure as PNG (Agg, whatever the session's backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, format="png")
