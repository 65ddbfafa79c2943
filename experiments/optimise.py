"""Which mix of instruments converts most for its cost, within a budget: ``python -m experiments.optimise`` (Hydra).

    python -m experiments.optimise                                     # every lever of configs/levers/instruments.yaml
    python -m experiments.optimise optimise.budget=2e6 optimise.risk_bound=5e5
    python -m experiments.optimise optimise.cost=gov_spend_per_year    # government's payments alone
    python -m experiments.optimise optimise.generations=40 workers=8
    python -m experiments.optimise optimise.run.executor=slurm workers=64   # each generation a Slurm job array

A multi-objective search (NSGA-II, :func:`sim.analysis.optimise.search`) over the levers of ``optimise.levers``
(instruments switched on or off, their parameters within the file's ranges) on the config's scenario:
maximise ``optimise.conversions``, minimise ``optimise.cost`` a year, subject to government's payments
a year (``gov_spend_per_year``) within ``optimise.budget`` and, optionally, the 95th percentile of
insurers' losses within ``optimise.risk_bound``. Every point runs ``optimise.replicates`` seeds (the same
at every point: common random numbers; on a posterior, replicate k on draw k). The front's points are then
re-evaluated on ``optimise.interval_replicates`` fresh seeds for their intervals. Writes into
``exploration/optimise-<hash>`` (the same command resumes there, from its completed trials):

    search.journal (or search.db)   the search's trials (Optuna's storage: the unit of resumption)
    trials.parquet                  every trial: generation, levers as evaluated, outcomes, feasibility
    front.csv                       the Pareto front: levers, the search's outcomes, the re-evaluated means
                                    and 95% intervals (<outcome>_mean, _lo, _hi), the best mix marked
    intervals/parts/*.parquet       the re-evaluations as they finish (resumption)
    front.png                       the front, the other trials, the budget line, the best mix
    best.md                         the best mix for the budget, with its intervals
    report.md                       settings, the search, the front, the best mix; provenance
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from experiments.cli import (RunOptions, app_main, check_stamp, digest, model_digest, make_executor, say, stamp_line,
                             write_table)
from sim.core.config import Config, ConfigError
from sim.core.schema import _c

CONVERSIONS = ("extra_conversions", "conversions")
COSTS = ("extra_public_cost_per_year", "gov_spend_per_year", "public_cost_per_year")
SPEND = "gov_spend_per_year"
RISK = "insurer_loss_p95"
# outcomes every point reports besides the objectives (the report's columns)
REPORTED = ("extra_conversions", "conversions", "gov_spend_per_year", "extra_public_cost_per_year",
            "university_income_change", "cost_per_extra_conversion", "insurer_loss_p95")


@dataclass
class OptimiseConfig:
    levers: str = _c("instruments", doc="switches and parameter ranges: configs/levers/<name>.yaml, or a path")
    conversions: str = _c("extra_conversions", choices=CONVERSIONS, doc="the objective maximised")
    cost: str = _c("extra_public_cost_per_year", choices=COSTS,
                   doc="the cost minimised, a year: extra public cost with universities' forgone income, government's "
                       "payments alone, or the public cost in total")
    budget: float = _c(5.0e6, ge=0.0, le=1e12, doc="government's payments a year at most (yuan): the constraint "
                                                   "gov_spend_per_year <= budget")
    risk_bound: Optional[float] = _c(None, ge=0.0, le=1e12, doc="insurers' 95th-percentile loss at most (yuan; "
                                                                "null: no bound)")
    population: int = _c(20, ge=2, le=100000, doc="trials a generation (evaluated together, in parallel)")
    generations: int = _c(15, ge=1, le=100000, doc="generations of NSGA-II")
    replicates: int = _c(4, ge=1, le=100000, doc="runs a point, on seeds seed, seed + 1, ... (the same at every point)")
    interval_replicates: int = _c(20, ge=2, le=100000, doc="runs of a front point re-evaluated for its intervals, on "
                                                           "fresh seeds")
    intervals_max: int = _c(20, ge=1, le=100000, doc="front points re-evaluated at most (evenly along the front, "
                                                     "the best mix always)")
    conf_level: float = _c(0.95, gt=0.0, lt=1.0, doc="level of the intervals")
    crossover: str = _c("sbx", choices=("sbx", "uniform"), doc="crossover of real levers (switches and integers: "
                                                                "uniform)")
    mutation: str = _c("polynomial", choices=("polynomial", "random"), doc="mutation of real levers (switches and "
                                                                           "integers: redrawn)")
    storage: str = _c("journal", choices=("journal", "sqlite"), doc="the search's file: Optuna's journal (fast; "
                                                                    "network file systems) or an SQLite database")
    run: RunOptions = field(default_factory=RunOptions)


def build(cfg: Config, own: OptimiseConfig):
    """The exploratory model, its decision space and the search's objectives and constraints (refused in one line
    before any run)."""
    from sim.analysis.explore import build_model, load_levers

    try:
        levers = load_levers(own.levers)
    except ConfigError as e:
        raise ConfigError(f"optimise.{e}") from None
    from sim.core.schema import check_design

    trials = own.population * own.generations
    check_design("optimise.population", own.population, trials, trials * own.replicates)   # bounded up front
    outcomes = list(dict.fromkeys([own.conversions, own.cost, *REPORTED]))
    model = build_model(cfg, levers=levers, outcomes=outcomes, replicates=own.replicates, seed=cfg.seed,
                        engine=cfg.engine, posterior=cfg.posterior)
    objectives = {own.conversions: "max", own.cost: "min"}
    constraints = {SPEND: own.budget, **({RISK: own.risk_bound} if own.risk_bound is not None else {})}
    return model, levers, objectives, constraints


def _spread(front, n: int, cost: str, best_index) -> list:
    """At most ``n`` rows of ``front`` (their index), evenly along it by cost, the best mix always among them."""
    import numpy as np

    order = list(front.sort_values(cost, kind="stable").index)
    if len(order) <= n:
        return order
    k = n if best_index is None else n - 1
    keep = {order[int(i)] for i in np.linspace(0, len(order) - 1, k).round()} if k > 0 else set()
    if best_index is not None:
        keep.add(best_index)
    return [i for i in order if i in keep]


class _IntervalDesign:
    """Front points re-evaluated for intervals, in the shape :func:`sim.analysis.designs.run_design` resumes (its Parquet
    parts): ``names`` the levers, ``outcomes`` each outcome's ``_mean``, ``_lo`` and ``_hi``."""

    def __init__(self, model, replicates: int, level: float):
        self.model, self.replicates, self.level = model, replicates, level
        self.names = model.names
        self.outcomes = [f"{o}_{s}" for o in model.outcomes for s in ("mean", "lo", "hi")]

    def identity(self) -> dict:
        """The search model's identity (its config, levers, engine, posterior, sources), but for the replicates: the
        intervals' own, on the fresh seeds after the search's, at their level. A part of other intervals (another
        search, level or number of replicates) is never read as these."""
        return {**self.model.identity(), "replicates": self.replicates, "seed": self.model.seed + self.model.replicates,
                "level": self.level, "design": "intervals"}

    def outside_domain(self, table):
        """The first value no interval could be (None if none): a mean outside its outcome's domain, or bounds not
        around their mean."""
        import numpy as np

        from sim.analysis.explore import DOMAINS

        for o in self.model.outcomes:
            mean, lo, hi = (table[f"{o}_{s}"].to_numpy(dtype=float) for s in ("mean", "lo", "hi"))
            bad = ~DOMAINS[o](mean) if o in DOMAINS else np.zeros(len(mean), bool)
            finite = np.isfinite(mean) & np.isfinite(lo) & np.isfinite(hi)
            bad |= finite & ~((lo <= mean) & (mean <= hi))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                return f"{o}_mean = {mean[i]!r} in [{lo[i]!r}, {hi[i]!r}]"
        return None

    def evaluate(self, points, executor=None):
        import pandas as pd

        from sim.analysis.optimise import intervals

        iv = intervals(self.model, points, self.replicates, executor=executor, level=self.level)
        iv = iv.rename(columns={o: f"{o}_mean" for o in self.model.outcomes})
        return pd.concat([pd.DataFrame(points, columns=self.names).reset_index(drop=True),
                          iv[self.outcomes].reset_index(drop=True)], axis=1)


def run(cfg: Config, own: OptimiseConfig, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import pandas as pd

    from sim.analysis import optimise as opt
    from sim.analysis.designs import run_design

    model, levers, objectives, constraints = build(cfg, own)
    space = opt.decision_space(levers)
    check_stamp(out, {"app": "optimise", "model": model_digest(model.base), "posterior": cfg.posterior,
                      "design": digest([own.levers, repr(levers), own.conversions, own.cost, own.budget,
                                        own.risk_bound, own.population, own.generations, own.replicates,
                                        own.interval_replicates, own.intervals_max, own.conf_level, own.crossover,
                                        own.mutation, cfg.seed, model.outcomes]),
                      "storage": own.storage, "part_size": own.run.part_size}, own.run.resume)
    storage_path = out / ("search.journal" if own.storage == "journal" else "search.db")
    if not own.run.resume:
        for p in (storage_path, storage_path.with_name(storage_path.name + ".lock")):
            if p.exists():
                p.unlink()
    storage = str(storage_path) if own.storage == "journal" else f"sqlite:///{storage_path}"
    say(cfg, f"NSGA-II over {len(levers.switches)} switches and {len(levers.params)} parameters: {own.population} x "
             f"{own.generations} trials, each new point {model.runs_per_point} runs; objectives "
             f"{own.conversions} (max), {own.cost} (min); budget {own.budget:,.0f} a year"
             + (f"; insurers' p95 loss <= {own.risk_bound:,.0f}" if own.risk_bound is not None else "")
             + f"; regime {cfg.regime.name}, scenario {cfg.scenario.name}, {cfg.workers} "
             f"{'processes' if own.run.executor == 'local' else 'Slurm jobs'}")
    first = {k: (d.choices[0] if hasattr(d, "choices") else d.low) for k, d in space.items()}
    model(**first)  # loads the compiled kernels (and runs the baseline) here, before worker processes are forked
    executor = make_executor(own.run, cfg.workers, out)
    t0 = time.perf_counter()

    def progress(g, evaluated):
        say(cfg, f"generation {g + 1}/{own.generations}: {evaluated} points evaluated in this session "
                 f"({time.perf_counter() - t0:.0f} s)")

    try:
        res = opt.search(opt.ModelBatch(model, executor), space, objectives, constraints, own.population,
                         own.generations, cfg.seed, storage=storage, canonical=opt.Canonical(levers),
                         crossover=own.crossover, mutation=own.mutation, callback=progress)
        front = res.front()
        best = opt.best_for_budget(front, own.budget, own.conversions, SPEND)
        best_index = None if best is None else best.name
        chosen = _spread(front, own.intervals_max, own.cost, best_index)
        points = [{k: front.at[i, k] for k in res.names} for i in chosen]
        again = _IntervalDesign(model, own.interval_replicates, own.conf_level)
        if points:
            ivs, reevaluated = run_design(again, points, out / "intervals", executor, own.run.part_size,
                                          own.run.resume, cfg.progress, "front points")
        else:  # no feasible trial: no front
            ivs, reevaluated = pd.DataFrame(columns=again.names + again.outcomes, dtype=float), 0
    finally:
        executor.close()
    seconds = time.perf_counter() - t0
    ivs.index = chosen
    front_table = front.join(ivs[again.outcomes])
    front_table.insert(0, "best", [i == best_index for i in front_table.index])
    write_table(res.trials, out / "trials.parquet")
    write_table(front_table, out / "front.csv")
    title = (f"{cfg.regime.name} + levers {levers.name} on {cfg.scenario.name}: {len(res.trials)} trials, "
             f"{model.replicates} replicates a point")
    best_row = None if best is None else front_table.loc[best_index]
    _plot(res.trials, objectives, own, best_row, front_table, out / "front.png", title)
    lines = report(cfg, own, model, levers, res, front_table, best_row, reevaluated, seconds)
    from sim.runs.outputs import write_atomic

    write_atomic(out / "best.md", lambda p: Path(p).write_text("\n".join(best_lines(own, model, best_row)) + "\n"))
    write_atomic(out / "report.md", lambda p: Path(p).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    print(f"\nwrote {storage_path.name}, trials.parquet, front.csv, front.png, best.md, report.md to {out}")
    return {"trials": len(res.trials), "evaluated": res.evaluations, "seconds": seconds,
            "front": len(front), "feasible": int(np.sum(res.trials["feasible"])), "best": best_index,
            "reevaluated": reevaluated, "finite": bool(pd.notna(front_table[own.cost]).all())}


def _plot(trials, objectives, own, best, front, path, title):
    import pandas as pd

    from sim.runs.outputs import write_atomic
    from sim.analysis.optimise import plot_front

    shown = dict.fromkeys([own.conversions, own.cost, SPEND])
    done = front.dropna(subset=[f"{own.cost}_lo"])
    iv = pd.DataFrame({f"{o}{s}": done[f"{o}_mean" if s == "" else f"{o}{s}"] for o in shown
                       for s in ("", "_lo", "_hi")})
    write_atomic(path, lambda p: plot_front(trials, objectives, p, budget=own.budget, spend=SPEND, best=best,
                                            front_intervals=iv, title=title))


def _money(v) -> str:
    return "inf" if v == math.inf else f"{v:,.0f}"


def _with_interval(row, o: str, money: bool) -> str:
    fmt = _money if money else (lambda v: f"{v:.3g}")
    if f"{o}_lo" not in row or row[f"{o}_lo"] != row[f"{o}_lo"]:
        return fmt(row[o])
    return f"{fmt(row[o])} ({fmt(row[f'{o}_mean'])} [{fmt(row[f'{o}_lo'])}, {fmt(row[f'{o}_hi'])}])"


def _levers_text(row, names) -> str:
    on = [k[4:] for k in names if k.startswith("use.") and row[k] == 1]
    params = [f"{k} = {row[k]:.4g}" for k in names if not k.startswith("use.") and row[k] == row[k]]
    return (", ".join(on) or "no instrument") + ("; " + ", ".join(params) if params else "")


def best_lines(own, model, best, heading: str = "#") -> list[str]:
    lines = [f"{heading} The best mix for a budget of {own.budget:,.0f} yuan a year", ""]
    if best is None:
        return lines + ["No front point spends within the budget (every feasible trial is over it, or none is "
                        "feasible): raise the budget or the risk bound, or search longer.", ""]
    lines += [f"Levers: {_levers_text(best, model.names)}", "",
              f"The search's estimate on {model.replicates} replicates, then in brackets the mean and "
              f"{own.conf_level:.0%} interval on {own.interval_replicates} fresh replicates (Student t over "
              "replicates; a bootstrap for ratios and percentiles):", ""]
    for o in model.outcomes:
        lines.append(f"- {o}: {_with_interval(best, o, 'conversions' not in o)}")
    hi = best.get(f"{SPEND}_hi", float("nan"))
    if hi == hi and hi > own.budget:
        lines += ["", f"Caution: on fresh seeds government's payments reach {_money(hi)} a year at the interval's "
                      f"top, over the budget of {_money(own.budget)}: the budget binds within the noise."]
    return lines + [""]


def report(cfg, own, model, levers, res, front, best, reevaluated, seconds) -> list[str]:
    from tabulate import tabulate

    t = res.trials
    runs = (res.evaluations * model.runs_per_point
            + reevaluated * own.interval_replicates * (2 if model.needs_baseline else 1))
    lines = [f"# Policy search: {own.conversions} against {own.cost}, budget {own.budget:,.0f} yuan a year", "",
             f"Regime {cfg.regime.name} (its instruments stay on) with the levers of {own.levers} "
             f"(switches: {', '.join(levers.switches) or 'none'}; parameters: "
             f"{', '.join(p.key for p in levers.params) or 'none'}) on scenario {cfg.scenario.name}; NSGA-II ({own.crossover} crossover, {own.mutation} "
             f"mutation), {own.population} trials x {own.generations} generations, seed {cfg.seed}; "
             f"{model.replicates} replicates a point on seeds {cfg.seed}..{cfg.seed + model.replicates - 1} "
             "(common random numbers)" + (f"; on the posterior {cfg.posterior}" if cfg.posterior else "") + ".", "",
             f"Constraints: {SPEND} <= {own.budget:,.0f}"
             + (f"; {RISK} <= {own.risk_bound:,.0f}" if own.risk_bound is not None else "") + ".", "",
             f"{len(t)} trials, {int(t['feasible'].sum())} feasible, {int((~t['reused']).sum())} distinct points; "
             f"in this session {res.evaluations} new points and {reevaluated} front points re-evaluated ({runs} "
             f"runs besides baselines, {seconds:.1f} s).", "",
             f"## The Pareto front ({len(front)} points)", "",
             f"The search's estimate, then in brackets the mean and {own.conf_level:.0%} interval on "
             f"{own.interval_replicates} fresh replicates (seeds {cfg.seed + model.replicates} on) for the points "
             "re-evaluated. A point chosen as best on the search's seeds tends to look better there than on fresh "
             "ones: compare the two.", ""]
    rows = []
    for _, r in front.iterrows():
        rows.append({"best": "*" if r["best"] else "", "levers": _levers_text(r, model.names),
                     own.conversions: _with_interval(r, own.conversions, False),
                     own.cost: _with_interval(r, own.cost, True),
                     **({SPEND: _with_interval(r, SPEND, True)} if own.cost != SPEND else {})})
    lines += [tabulate(rows, headers="keys", tablefmt="github"), ""]
    if own.cost != SPEND:
        from sim.analysis.optimise import pareto_front

        other = pareto_front(t, {own.conversions: "max", SPEND: "min"}, t["feasible"].to_numpy())
        lines += [f"Counting government's payments alone ({SPEND}) instead, {int(other.sum())} of the trials are "
                  "non-dominated (trials.parquet has every outcome of every trial).", ""]
    lines += best_lines(own, model, best, "##")
    lines.append(stamp_line("optimise"))
    return lines


main = app_main("optimise", "optimise", OptimiseConfig, run)

if __name__ == "__main__":
    main()
