"""Robust conclusions: in how many replicates a comparison's conclusions hold, and where they flip.

A comparison's table gives means over replicates (posterior draws, on a posterior; seeds otherwise). A brief
needs more: that an instrument raises conversions, or is the cheapest way to buy one, in (nearly) every draw
of the parameters the data allow, and not just on average. For every regime against baseline this module
gives, from the same runs (paired by replicate, :func:`sim.analysis.stats.by_draw`):

* the share of replicates in which its effect on conversions has the sign of its mean effect;
* among the *spending instruments* (regimes of one instrument that pays public money, :func:`spending`, and
  spent some in these runs), the
  share of replicates in which it is the cheapest per extra conversion (extra government spend / extra expected
  conversions, the table's ``cost_per_extra_conversion``: :data:`sim.analysis.stats.COSTS`; a replicate adding none costs
  ``inf``), and in which it is the dearest;
* a verdict: a conclusion holds when at least ``robust_share`` of the replicates agree with it, and *flips*
  otherwise (said so in the report).

:func:`ranking` gives the order of the spending instruments by their mean cost per extra conversion, the
conclusion a reader takes from one table, so that :func:`moves` can say how it changes at the ends of a
judgement parameter's range (the main job re-runs the comparison there, on a posterior).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ..core import ledger
from ..core.config import regime_instruments
from .stats import BASELINE, COSTS, by_draw

CONVERSIONS = "successes"                 # the effect on conversions: realised, as the table's effect
_, SPEND, COST_CONVERSIONS = COSTS[0]     # the cost per extra conversion: as the table's first cost row


def spending(regimes: Sequence[str]) -> list[str]:
    """The regimes of one instrument that pays public money (a ledger kind paid by government): the instruments
    ranked on cost per extra conversion. A mix of instruments is no instrument of its own and is not ranked."""
    paying = {k.owner for k in ledger.KINDS if k.payer == ledger.GOVERNMENT}
    out = []
    for name in regimes:
        instruments = regime_instruments(name) or []
        if len(instruments) == 1 and instruments[0] in paying:
            out.append(name)
    return out


def paired_effects(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per regime (not baseline) and replicate: ``extra_conversions``, ``extra_expected`` (the conversions a
    cost divides by) and ``extra_spend`` (government's) against baseline on the same replicate (a posterior draw, its
    seeds averaged; a seed without a posterior)."""
    s = by_draw(summary)
    columns = [CONVERSIONS, COST_CONVERSIONS, SPEND]
    base = s[s["regime"] == BASELINE].set_index("seed")[columns]
    frames = []
    for name in dict.fromkeys(s["regime"]):
        if name == BASELINE:
            continue
        runs = s[s["regime"] == name].set_index("seed")[columns]
        common = runs.index.intersection(base.index)
        d = runs.loc[common] - base.loc[common]
        frames.append(pd.DataFrame({"regime": name, "replicate": common.to_numpy(),
                                    "extra_conversions": d[CONVERSIONS].to_numpy(dtype=float),
                                    "extra_expected": d[COST_CONVERSIONS].to_numpy(dtype=float),
                                    "extra_spend": d[SPEND].to_numpy(dtype=float)}))
    if not frames:
        return pd.DataFrame(columns=["regime", "replicate", "extra_conversions", "extra_expected", "extra_spend"])
    return pd.concat(frames, ignore_index=True)


def unit_cost(extra_spend, extra_conversions):
    """Extra spend per extra conversion; ``inf`` where more is spent and nothing added, NaN where nothing is added
    and nothing more spent (no cost to speak of, as :mod:`sim.analysis.explore`'s: never ranked, neither cheap nor dear)."""
    spend = np.asarray(extra_spend, dtype=float)
    conv = np.asarray(extra_conversions, dtype=float)
    return np.where(conv > 0, spend / np.where(conv > 0, conv, 1.0), np.where(spend > 0, np.inf, np.nan))


def _first_last(costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a replicates x regimes matrix of costs: who is cheapest (a finite least cost, ties all first) and who
    dearest (the greatest cost, ties all last) in each replicate, among the defined (not NaN) costs; a replicate where
    they all cost the same has neither."""
    defined = ~np.isnan(costs)
    lo = np.where(defined, costs, np.inf).min(axis=1, keepdims=True)
    hi = np.where(defined, costs, -np.inf).max(axis=1, keepdims=True)
    spread = hi > lo
    return defined & (costs == lo) & np.isfinite(lo) & spread, defined & (costs == hi) & spread


def ranking(effects: pd.DataFrame, ranked: Sequence[str]) -> list[str]:
    """The spending instruments cheapest first, by mean extra spend / mean extra conversions (``inf`` last, ties in
    the order given; one that on average spends nothing more and adds nothing is not ranked)."""
    means = effects.groupby("regime", sort=False)[["extra_spend", "extra_expected"]].mean()
    cost = {name: float(unit_cost(means.loc[name, "extra_spend"], means.loc[name, "extra_expected"]))
            for name in ranked if name in means.index}
    return sorted((name for name in cost if not np.isnan(cost[name])), key=lambda name: cost[name])


def table(summary: pd.DataFrame, regimes: Sequence[str], agree: float) -> pd.DataFrame:
    """One row per regime against baseline: its mean extra conversions, the share of replicates agreeing with
    their sign, and (spending instruments) the shares of replicates in which it is cheapest and dearest per extra
    conversion, with the conclusion each supports and whether it holds (share >= ``agree``) or flips."""
    effects = paired_effects(summary)
    spent = effects.groupby("regime")["extra_spend"].mean()
    # the spending instruments that spent public money in these runs (a pledge fund no loan drew on is not one)
    ranked = [r for r in spending(regimes) if r in spent.index and spent[r] > 0]
    order = ranking(effects, ranked)
    first = last = {}
    if len(ranked) >= 2:
        wide = effects[effects["regime"].isin(ranked)]
        cost = (wide.assign(cost=unit_cost(wide["extra_spend"], wide["extra_expected"]))
                .pivot(index="replicate", columns="regime", values="cost")[ranked])
        is_first, is_last = _first_last(cost.to_numpy())
        first = dict(zip(ranked, is_first.mean(axis=0)))
        last = dict(zip(ranked, is_last.mean(axis=0)))
    rows = []
    for name, d in effects.groupby("regime", sort=False):
        mean = float(d["extra_conversions"].mean())
        sign = np.sign(mean)
        agreeing = float((np.sign(d["extra_conversions"]) == sign).mean())
        effect = {1.0: "raises conversions", -1.0: "lowers conversions", 0.0: "changes no conversion"}[sign]
        row = {"regime": name, "replicates": len(d), "extra_conversions": mean,
               "share_positive": float((d["extra_conversions"] > 0).mean()),
               "effect": effect, "effect_share": agreeing, "effect_holds": agreeing >= agree,
               "spending": name in ranked, "share_cheapest": first.get(name, np.nan),
               "share_dearest": last.get(name, np.nan), "rank": order.index(name) + 1 if name in order else pd.NA,
               "ranked": len(order)}
        rows.append(row)
    columns = ["regime", "replicates", "extra_conversions", "share_positive", "effect", "effect_share", "effect_holds",
               "spending", "share_cheapest", "share_dearest", "rank", "ranked"]
    return pd.DataFrame(rows, columns=columns).astype({"rank": "Int64"})


def conclusions(rob: pd.DataFrame, agree: float, replicates: str) -> list[str]:
    """The conclusions a reader takes from the means, each with the share of replicates it holds in; those below
    ``agree`` are printed as flipping."""
    lines = []
    for r in rob.itertuples():
        lines.append(f"- {r.regime} {r.effect} (mean {r.extra_conversions:+.2f}): {_verdict(r.effect_share, agree)} "
                     f"of {replicates}")
    ranked = rob[rob["spending"] & rob["rank"].notna()].sort_values("rank")
    if len(ranked) >= 2:
        cheap, dear = ranked.iloc[0], ranked.iloc[-1]
        for row, what, share in ((cheap, "the cheapest", cheap.share_cheapest), (dear, "the dearest", dear.share_dearest)):
            lines.append(f"- {row.regime} is {what} spending instrument per extra conversion: "
                         f"{_verdict(share, agree)} of {replicates}")
    return lines


def _verdict(share: float, agree: float) -> str:
    return f"holds in {share:.0%}" if share >= agree else f"FLIPS: holds in only {share:.0%}"


def moves(base: pd.DataFrame, other: pd.DataFrame) -> str:
    """What changes between two robustness tables (the comparison as run, and at another parameter value): the
    cheapest and dearest spending instrument, and regimes whose effect changes sign where both signs hold (in at
    least the robust share of replicates: a mean near zero moving across it is noise, not a change)."""
    said = []
    for which, pick in (("cheapest", 0), ("dearest", -1)):
        a, b = _ranked_name(base, pick), _ranked_name(other, pick)
        if a != b:
            said.append(f"{which} {a} -> {b}")
    sign = {r.regime: r.effect for r in base.itertuples() if r.effect_holds}
    for r in other.itertuples():
        if r.effect_holds and r.regime in sign and sign[r.regime] != r.effect:
            said.append(f"{r.regime} now {r.effect}")
    return "; ".join(said) if said else "no change"


def _ranked_name(rob: pd.DataFrame, pick: int) -> Optional[str]:
    ranked = rob[rob["spending"] & rob["rank"].notna()].sort_values("rank")
    return None if len(ranked) < 2 else str(ranked.iloc[pick]["regime"])


def order_text(rob: pd.DataFrame) -> str:
    """The spending instruments, cheapest per extra conversion first (``a < b < c``)."""
    ranked = rob[rob["spending"] & rob["rank"].notna()].sort_values("rank")
    return " < ".join(ranked["regime"]) if len(ranked) else "-"


def check_parameters(cfg) -> list:
    """The :class:`sim.analysis.calibration.Param` of each of ``cfg.robust_parameters`` in ``cfg.robust_space``, or a
    one-line ConfigError naming the first key the space does not hold (before any run)."""
    from .calibration import load_space
    from ..core.config import ConfigError

    if not cfg.robust_parameters:
        return []
    space = {p.key: p for p in load_space(cfg.robust_space).params}
    if len(set(map(str, cfg.robust_parameters))) != len(cfg.robust_parameters):
        raise ConfigError(f"robust_parameters = {list(cfg.robust_parameters)}: each key may appear once")
    out = []
    for key in cfg.robust_parameters:
        if key not in space:
            raise ConfigError(f"robust_parameters contains {key!r}: allowed are the keys of space "
                              f"{cfg.robust_space}: {', '.join(space)}")
        out.append(space[key])
    return out


def over_parameters(cfg, regimes: Sequence[str], summary: pd.DataFrame, params, fitted=(), compare=None,
                    on_row=None) -> pd.DataFrame:
    """How the conclusions move over judgement parameters: one row per parameter and value, with the spending
    instruments' order by mean cost per extra conversion and what :func:`moves` from the comparison as run.

    A parameter the posterior fits (``fitted``) varies across its draws already: its draws are split at the median
    of its value (no new run). Any other is set to its range's low and high end and the comparison re-run on the same
    replicates (``compare(cfg, regimes)``: :func:`sim.api.compare`)."""
    from ..core.config import replace

    agree = cfg.robust_share
    base = table(summary, regimes, agree)
    rows = []
    for p in params:
        if p.key in fitted:
            per_draw = by_draw(summary).groupby("seed")[p.key].first()
            median = float(per_draw.median())
            halves = ((f"<= {median:.4g} (draws)", per_draw.index[per_draw <= median]),
                      (f"> {median:.4g} (draws)", per_draw.index[per_draw > median]))
            for label, blocks in halves:
                if len(blocks) == 0:
                    continue
                rob = table(summary[summary["draw_block"].isin(blocks)], regimes, agree)
                rows.append(_row(p.key, label, len(blocks), rob, base))
        else:
            for value in (p.low, p.high):
                value = int(round(value)) if p.integer else value
                res = compare(replace(cfg, **{p.key: value}), regimes=list(regimes))
                rob = table(res.summary, regimes, agree)
                rows.append(_row(p.key, f"{value:g} (re-run)", int(rob["replicates"].max()), rob, base))
        if on_row is not None:
            on_row(p.key)
    return pd.DataFrame(rows, columns=["parameter", "value", "replicates", "order", "raises", "moves"])


def _row(key, label, replicates, rob, base) -> dict:
    raising = rob.loc[rob["extra_conversions"] > 0, "regime"]
    return {"parameter": key, "value": label, "replicates": replicates, "order": order_text(rob),
            "raises": ", ".join(raising) if len(raising) else "-", "moves": moves(base, rob)}
