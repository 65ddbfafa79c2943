"""When does an outcome condition hold: ``python -m experiments.discover`` (a Hydra app), scenario discovery with PRIM.

    python -m experiments.discover                     # vouchers: when does an extra conversion cost < 1M yuan?
    python -m experiments.discover regime=combined 'discover.query="university_income_change < 0"'
    python -m experiments.discover discover.n=1024 discover.threshold=0.9 workers=8
    python -m experiments.discover discover.table=exploration/sensitivity-1a2b3c4d/outcomes.parquet \\
        'discover.query="extra_conversions > 0 and cost_per_extra_conversion < 2e6"'   # a table: nothing run

The model is the regime of the config (``regime=...``) on its scenario, as a function of the
``discover.parameters`` of ``discover.space`` (their ranges from ``configs/spaces/``): a Latin
hypercube of ``discover.n`` points over their ranges (uniform on the value, or on its logarithm
for ``scale: log``; scipy's ``LatinHypercube`` with the config's ``seed``), each point the mean of
``discover.replicates`` runs on the same seeds at every point (common random numbers). Then
:mod:`sim.analysis.discovery`: the points where ``discover.query`` holds are the cases, and PRIM (EMA
Workbench's) finds the box of the parameters where they are dense (``discover.threshold``).
With ``discover.table`` nothing is run: PRIM reads that table's parameters and outcomes.
Writes into ``exploration/discover-<hash>`` (the same command resumes there):

    parts/part-*.parquet     the design's outcomes as they finish (resumption)
    outcomes.parquet         every point: its parameters and outcomes (not with discover.table)
    trajectory.csv           every box of PRIM's trajectory: coverage, density, mass, restricted parameters
    box.csv                  the chosen box: each parameter's limits, full range, quasi-p-values
    tradeoff.png             coverage against density along the trajectory, the chosen box ringed
    box.png                  each restricted parameter's range within its full range
    report.md                the question, the chosen box and how it was chosen; provenance
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from experiments.cli import (RunOptions, app_main, check_stamp, digest, model_digest, make_executor, say, stamp_line,
                             write_table)
from sim.core.config import Config, ConfigError
from sim.core.schema import _c


@dataclass
class DiscoverConfig:
    query: str = _c("extra_conversions > 0 and cost_per_extra_conversion < 1e6",
                    doc="the condition on outcomes whose region is sought, e.g. 'university_income_change < 0'; "
                        "comparisons of outcomes with numbers (or inf), and/or/not")
    threshold: float = _c(0.8, gt=0.0, le=1.0, doc="density wanted of the box: the share of its points where the "
                                                   "condition holds")
    space: str = _c("judgement", doc="parameters and ranges: configs/spaces/<name>.yaml, or a path")
    parameters: Optional[list] = _c(None, doc="keys of the space the design varies (null: every one that applies to "
                                              "the scenario); not used with `table` (see `inputs`)")
    outcomes: list = _c(["extra_conversions", "cost_per_extra_conversion", "university_income_change"],
                        doc="outcomes computed besides those the query needs (sim.analysis.explore.OUTCOMES)")
    n: int = _c(256, ge=20, le=10**7, doc="points of the Latin hypercube")
    replicates: int = _c(4, ge=1, le=100000, doc="runs a point, on seeds seed, seed + 1, ... (the same at every point)")
    table: Optional[str] = _c(None, doc="a .parquet or .csv table of points and outcomes (another design's "
                                        "outcomes.parquet) to analyse instead of running a design")
    inputs: Optional[list] = _c(None, doc="with `table`: its columns PRIM reads (null: every column that is not an "
                                          "outcome)")
    peel_alpha: float = _c(0.05, gt=0.0, le=0.5, doc="share of a box's points peeled off per step")
    paste_alpha: float = _c(0.05, gt=0.0, le=0.5, doc="share pasted back per step")
    mass_min: float = _c(0.05, gt=0.0, le=1.0, doc="smallest box, as a share of all points")
    significance: Optional[float] = _c(0.05, gt=0.0, le=1.0, doc="a restriction of the chosen box whose quasi-p-values "
                                                                 "all exceed it is dropped (null: keep every one)")
    box: Optional[int] = _c(None, ge=0, le=10**6, doc="choose this box of the trajectory (null: the highest "
                                                      "coverage among those of density >= threshold)")
    run: RunOptions = field(default_factory=RunOptions)


def read_table(path: str):
    """A table of points and outcomes from a .parquet or .csv file (refused in one line otherwise)."""
    import pandas as pd

    p = Path(path)
    if p.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"discover.table = {path!r}: must be a .parquet or .csv file")
    if not p.is_file():
        raise ConfigError(f"discover.table = {path!r}: no such file")
    try:
        return pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    except Exception as e:  # noqa: BLE001  (any reader's error is the file's problem, said in one line)
        raise ConfigError(f"discover.table = {path!r}: cannot be read ({type(e).__name__}: {e})") from None


def build(cfg: Config, own: DiscoverConfig):
    """The model and the design's points, or the table; the query checked (refused in one line before any run).

    Returns ``(model, points, table, inputs, params)``: ``model`` and ``points`` are None with a table.
    """
    from sim.analysis import discovery
    from sim.analysis.calibration import load_space
    from sim.analysis.explore import OUTCOMES, build_model, check_outcomes

    space = load_space(own.space)
    known = {p.key: p for p in space.params}
    for name in ("parameters", "inputs"):
        keys = getattr(own, name)
        if keys is not None and len(set(keys)) != len(keys):
            raise ConfigError(f"discover.{name} = {keys}: each key once")
    if own.inputs is not None and own.table is None:
        raise ConfigError(f"discover.inputs = {own.inputs}: only with discover.table (a design's inputs are "
                          "discover.parameters)")
    if own.table is not None:
        table = read_table(own.table)
        outcomes = [c for c in table.columns if c in OUTCOMES]
        if not outcomes:
            raise ConfigError(f"discover.table = {own.table!r}: has no outcome column; allowed: " + ", ".join(OUTCOMES))
        discovery.query_columns(own.query, outcomes)
        inputs = own.inputs if own.inputs is not None else [c for c in table.columns if c not in OUTCOMES]
        missing = [k for k in inputs if k not in table.columns or k in OUTCOMES]
        if missing:
            raise ConfigError(f"discover.inputs: {missing[0]!r} is not a parameter column of {own.table}; its "
                              "columns: " + ", ".join(map(str, table.columns)))
        if not inputs:
            raise ConfigError(f"discover.table = {own.table!r}: has no parameter column (every column is an outcome)")
        return None, None, table, list(inputs), [known[k] for k in inputs if k in known]

    check_outcomes(own.outcomes, "discover.outcomes")
    from sim.core.schema import check_design

    check_design("discover.n", own.n, own.n, own.n * own.replicates)   # bounded before the design is drawn
    needed = discovery.query_columns(own.query, list(OUTCOMES))
    outcomes = list(own.outcomes) + [o for o in needed if o not in own.outcomes]
    keys = own.parameters
    if keys is None:
        keys = [p.key for p in space.params if p.applies_to(cfg.scenario.name)]
    model = build_model(cfg, space, keys, outcomes=outcomes, replicates=own.replicates, seed=cfg.seed,
                        engine=cfg.engine, posterior=cfg.posterior)
    from sim.analysis.discovery import latin_hypercube

    return model, latin_hypercube(model.uncertainties, own.n, cfg.seed), None, list(keys), list(model.uncertainties)


def run(cfg: Config, own: DiscoverConfig, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    from sim.runs.outputs import write_atomic
    from sim.analysis import discovery
    from sim.analysis.designs import run_design

    model, points, table, inputs, params = build(cfg, own)
    evaluated, seconds = 0, 0.0
    if model is not None:
        check_stamp(out, {"app": "discover", "model": model_digest(model.base), "posterior": cfg.posterior,
                          "design": digest([own.space, list(inputs), own.n, own.replicates, cfg.seed,
                                            list(model.outcomes)]), "part_size": own.run.part_size},
                    own.run.resume)
        say(cfg, f"Latin hypercube: {len(inputs)} parameters, {len(points)} points x {model.runs_per_point} runs "
                 f"({len(points) * model.runs_per_point} runs), regime {cfg.regime.name}, scenario "
                 f"{cfg.scenario.name}, {cfg.workers} {'processes' if own.run.executor == 'local' else 'Slurm jobs'}")
        model(**points[0])  # loads the compiled kernels here, before worker processes are forked
        executor = make_executor(own.run, cfg.workers, out)
        t0 = time.perf_counter()
        try:
            table, evaluated = run_design(model, points, out, executor, own.run.part_size, own.run.resume,
                                          cfg.progress)
        finally:
            executor.close()
        seconds = time.perf_counter() - t0
        write_table(table, out / "outcomes.parquet")

    y = discovery.condition(table, own.query)
    d = discovery.discover(table[inputs], y, own.threshold, own.peel_alpha, own.paste_alpha, own.mass_min,
                           own.significance, params, own.box, own.query)
    write_table(d.trajectory, out / "trajectory.csv")
    write_table(d.box, out / "box.csv")
    for name, fig in (("tradeoff.png", discovery.plot_tradeoff(d, f"When is {own.query}? PRIM's trade-off")),
                      ("box.png", discovery.plot_box(d))):
        write_atomic(out / name, lambda p, fig=fig: discovery.save_figure(fig, p))
    lines = report(cfg, own, model, d, out, evaluated, seconds)
    write_atomic(out / "report.md", lambda p: Path(p).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    wrote = (["outcomes.parquet"] if model is not None else []) + ["trajectory.csv", "box.csv", "tradeoff.png",
                                                                   "box.png", "report.md"]
    print(f"\nwrote {', '.join(wrote)} to {out}")
    return {"points": len(table), "evaluated": evaluated, "seconds": seconds}


def report(cfg, own, model, d, out: Path, evaluated: int, seconds: float) -> list[str]:
    from sim.analysis import discovery

    if model is None:
        what = f"the table {own.table}"
        lines = [f"# Scenario discovery on {what}", "", f"{d.n_points} points; parameters (PRIM's inputs): "
                 + ", ".join(d.box["parameter"]) + ".", ""]
    else:
        runs = evaluated * model.runs_per_point
        lines = [f"# Scenario discovery: the {cfg.regime.name} regime on scenario {cfg.scenario.name}", "",
                 f"A Latin hypercube of {d.n_points} points over {len(model.uncertainties)} parameters of space "
                 f"{own.space} (seed {cfg.seed}); {model.replicates} replicates a point on seeds "
                 f"{cfg.seed}..{cfg.seed + model.replicates - 1} (common random numbers); {runs} runs in this session, "
                 f"{seconds:.1f} s" + (f"; on the posterior {cfg.posterior}" if cfg.posterior else "") + ".", ""]
    lines += [discovery.summary(d, own.query),
              f"PRIM: EMA Workbench's (peeling {own.peel_alpha:g}, pasting {own.paste_alpha:g}, smallest box "
              f"{own.mass_min:g} of the points); {len(d.trajectory)} boxes in trajectory.csv, the chosen one's "
              f"limits in box.csv; the trade-off in tradeoff.png (choose another box with discover.box=<i>).", ""]
    if model is not None:
        lines += ["Another question of the same design, without running it again: python -m experiments.discover "
                  f"discover.table={out / 'outcomes.parquet'} 'discover.query=\"...\"'", ""]
    lines.append(stamp_line("discover"))
    return lines


main = app_main("discover", "discover", DiscoverConfig, run)

if __name__ == "__main__":
    main()
