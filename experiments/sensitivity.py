"""Which parameters matter: ``python -m experiments.sensitivity`` (a Hydra app), Sobol or Morris with SALib.

    python -m experiments.sensitivity                                   # Sobol, 10 parameters, combined regime
    python -m experiments.sensitivity regime=vouchers sensitivity.method=morris
    python -m experiments.sensitivity sensitivity.sobol.n=1024 sensitivity.sobol.second_order=true workers=8
    python -m experiments.sensitivity sensitivity.run.executor=slurm workers=64   # each part a Slurm job array

The model is the regime of the config (``regime=...``) on its scenario, as a function of the
``sensitivity.parameters`` of ``sensitivity.space`` (their ranges from ``configs/spaces/``),
each point the mean of ``sensitivity.replicates`` runs on the same seeds at every point (common
random numbers). Writes into ``exploration/sensitivity-<hash>`` (the same command resumes there):

    parts/part-*.parquet     the design's outcomes as they finish (resumption)
    outcomes.parquet         every point: its parameters and outcomes
    indices.csv, .parquet    every index: outcome, index, parameter(s), value, 95% bootstrap interval
    indices.png              the indices with their intervals, one panel per outcome
    report.md                the ranking per outcome; the parameters with no effect; provenance
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from experiments.cli import (RunOptions, app_main, check_stamp, digest, model_digest, make_executor, save_figure, say,
                             stamp_line, write_table)
from sim.core.config import Config, ConfigError
from sim.core.schema import _c, _nested
from sim.runs.outputs import write_atomic


@dataclass
class SobolConfig:
    n: int = _c(256, ge=2, le=2**24, doc="base sample, a power of 2: n (d + 2) points, n (2d + 2) with second order")
    second_order: bool = _c(False, doc="also the pairs' indices S2")


@dataclass
class MorrisConfig:
    trajectories: int = _c(20, ge=2, le=100000, doc="trajectories, each d + 1 points")
    levels: int = _c(4, ge=2, le=100, doc="levels of the Morris grid (even)")


@dataclass
class SensitivityConfig:
    method: str = _c("sobol", choices=("sobol", "morris"), doc="sobol: variance-based indices; morris: screening")
    space: str = _c("judgement", doc="parameters and ranges: configs/spaces/<name>.yaml, or a path")
    parameters: Optional[list] = _c(None, doc="keys of the space analysed (null: every one that applies to the "
                                              "scenario)")
    outcomes: list = _c(["extra_conversions", "extra_public_cost_per_year", "cost_per_extra_conversion"],
                        doc="outcomes (sim.analysis.explore.OUTCOMES)")
    replicates: int = _c(4, ge=1, le=100000, doc="runs a point, on seeds seed, seed + 1, ... (the same at every point)")
    sobol: SobolConfig = _nested(SobolConfig)
    morris: MorrisConfig = _nested(MorrisConfig)
    resamples: int = _c(1000, ge=10, le=10**6, doc="bootstrap resamples of the intervals")
    conf_level: float = _c(0.95, gt=0.0, lt=1.0, doc="level of the intervals")
    run: RunOptions = field(default_factory=RunOptions)


def build(cfg: Config, own: SensitivityConfig):
    """The exploratory model of an analysis, and its design's size (refused in one line before any run)."""
    from sim.analysis.calibration import load_space
    from sim.analysis.explore import build_model, check_outcomes

    check_outcomes(own.outcomes, "sensitivity.outcomes")
    space = load_space(own.space)
    params = own.parameters
    if params is None:
        params = [p.key for p in space.params if p.applies_to(cfg.scenario.name)]
    elif len(set(params)) != len(params):
        raise ConfigError(f"sensitivity.parameters = {params}: each key once")
    model = build_model(cfg, space, params, outcomes=own.outcomes, replicates=own.replicates, seed=cfg.seed,
                        engine=cfg.engine, posterior=cfg.posterior)
    try:  # the design's rules (a power of 2, ...) checked before the stamp is written or any run made
        if len(model.uncertainties) < 2:
            raise ConfigError(f"parameters = {[p.key for p in model.uncertainties]}: an analysis needs at least 2")
        n = own.sobol.n if own.method == "sobol" else own.morris.trajectories
        if own.method == "sobol" and n & (n - 1):
            raise ConfigError(f"sobol.n = {n}: must be a power of 2 (>= 2): Sobol' sequences balance only there")
        if own.method == "morris" and own.morris.levels % 2:
            raise ConfigError(f"morris.levels = {own.morris.levels}: must be even (Morris' grid steps half of it)")
        from sim.analysis import sensitivity as sa
        from sim.core.schema import check_design

        points = sa.size(len(model.uncertainties), own.method, n, own.sobol.second_order)
        check_design("sobol.n" if own.method == "sobol" else "morris.trajectories", n, points,
                     points * own.replicates)   # bounded before the design is drawn (issue 23)
    except ConfigError as e:
        raise ConfigError(f"sensitivity.{e}") from None
    return model, n


def run(cfg: Config, own: SensitivityConfig, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    from sim.analysis import sensitivity as sa
    from sim.analysis.designs import run_design

    model, n = build(cfg, own)
    points = sa.size(len(model.uncertainties), own.method, n, own.sobol.second_order)
    check_stamp(out, {"app": "sensitivity", "model": model_digest(model.base), "posterior": cfg.posterior,
                      "design": digest([own.method, own.space, own.parameters, own.replicates, cfg.seed,
                                        own.sobol.n, own.sobol.second_order, own.morris.trajectories,
                                        own.morris.levels, own.outcomes]), "part_size": own.run.part_size},
                own.run.resume)
    say(cfg, f"{own.method}: {len(model.uncertainties)} parameters, {points} points x {model.runs_per_point} "
             f"runs ({points * model.runs_per_point} runs), regime {cfg.regime.name}, scenario "
             f"{cfg.scenario.name}, {cfg.workers} {'processes' if own.run.executor == 'local' else 'Slurm jobs'}")
    executor = make_executor(own.run, cfg.workers, out)
    done = {}

    def evaluate(pts):
        model(**pts[0])  # loads the compiled kernels here, before worker processes are forked
        table, done["evaluated"] = run_design(model, pts, out, executor, own.run.part_size, own.run.resume,
                                              cfg.progress)
        return table

    t0 = time.perf_counter()
    try:
        design, table, indices, undefined = sa.run(model.uncertainties, evaluate, model.outcomes, own.method, n,
                                                   cfg.seed, own.sobol.second_order, own.morris.levels,
                                                   own.resamples, own.conf_level)
    finally:
        executor.close()
    seconds = time.perf_counter() - t0
    write_table(table, out / "outcomes.parquet")
    write_table(indices, out / "indices.csv")
    write_table(indices, out / "indices.parquet")
    if len(indices):
        save_figure(sa.figure(indices, own.method), out / "indices.png")
    lines = report(cfg, own, model, indices, undefined, done["evaluated"], seconds)
    write_atomic(out / "report.md", lambda p: Path(p).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    print(f"\nwrote outcomes.parquet, indices.csv, indices.parquet{', indices.png' if len(indices) else ''}, "
          f"report.md to {out}")
    return {"points": len(design.X), "evaluated": done["evaluated"], "seconds": seconds}


def report(cfg, own, model, indices, undefined, evaluated, seconds) -> list[str]:
    from tabulate import tabulate

    from sim.analysis import sensitivity as sa

    runs = evaluated * model.runs_per_point
    lines = [f"# Sensitivity ({own.method}) of the {cfg.regime.name} regime on scenario {cfg.scenario.name}", "",
             f"{len(model.uncertainties)} parameters of space {own.space}; {model.replicates} replicates a point on "
             f"seeds {cfg.seed}..{cfg.seed + model.replicates - 1} (common random numbers); {runs} runs in this "
             f"session, {seconds:.1f} s ({runs / seconds if seconds > 0 else float('nan'):.0f} runs/s)"
             + (f"; on the posterior {cfg.posterior}" if cfg.posterior else ""), "",
             f"Intervals: {own.conf_level:.0%} bootstrap ({own.resamples} resamples). A parameter whose "
             + ("total index ST" if own.method == "sobol" else "mu*") + " interval reaches 0 has no effect "
             "this design can tell from none.", ""]
    main, second = ("ST", "S1") if own.method == "sobol" else ("mu_star", "sigma")
    for name in model.outcomes:
        if name in undefined:
            lines += [f"## {name}", "", f"No indices: {undefined[name]} points have no finite value (a cost per "
                      "extra conversion where a point adds no conversion). Analyse extra_conversions and the cost "
                      "a year instead, or narrow the ranges.", ""]
            continue
        t = indices[indices["outcome"] == name]
        ranked = sa.ranking(t, name, main)
        rows = []
        for _, r in ranked.iterrows():
            s = t[(t["index"] == second) & (t["parameter"] == r["parameter"])].iloc[0]
            rows.append({"parameter": r["parameter"], main: f"{r['value']:.3g} [{r['low']:.3g}, {r['high']:.3g}]",
                         second: (f"{s['value']:.3g} [{s['low']:.3g}, {s['high']:.3g}]" if s["conf"] == s["conf"]
                                  else f"{s['value']:.3g}"),
                         "no effect shown": "yes" if r["low"] <= 0 else ""})
        lines += [f"## {name} ({OUTCOME_DOC(name)})", "", tabulate(rows, headers="keys", tablefmt="github"), ""]
        s2 = t[t["index"] == "S2"].sort_values("value", ascending=False).head(5)
        if len(s2):
            lines += ["Largest pair interactions (S2): " + "; ".join(
                f"{a} x {b}: {v:.3g} [{lo:.3g}, {hi:.3g}]" for a, b, v, lo, hi in
                zip(s2["parameter"], s2["parameter2"], s2["value"], s2["low"], s2["high"])), ""]
    lines.append(stamp_line("sensitivity"))
    return lines


def OUTCOME_DOC(name: str) -> str:
    from sim.analysis.explore import OUTCOMES

    return OUTCOMES[name].doc


main = app_main("sensitivity", "sensitivity", SensitivityConfig, run)

if __name__ == "__main__":
    main()
