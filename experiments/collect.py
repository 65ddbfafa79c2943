"""Collect a sweep into one tidy table, report what is missing, draw the standard plots.

    python -m experiments.collect multirun/sweep-1a2b3c4d5e
    python -m experiments.collect <sweep dir> --metric conversion_rate --out table.parquet

Reads every result file of the sweep (``<dir>/results/*.json``), writes
``<dir>/sweep.parquet`` (one row per run: ``run_id``, ``seed``, every parameter as a
dotted column, every metric, and where it ran), and compares the results with the runs
the sweep meant to compute (re-derived from ``<dir>/multirun.yaml``): missing and failed
runs are listed by their swept parameters and seed. Draws ``sweep_lines.png`` (a metric
against the first swept number, a line per regime, mean and 95% interval over seeds) and,
with two swept numbers, ``sweep_heatmap.png`` (the metric's mean over both).

Exit code 0 when every run is present once, 1 when some are missing or failed, 2 when
the folder is not a sweep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def load_results(store) -> pd.DataFrame:
    rows = []
    for rec in store.records():
        row = {"run_id": rec["id"], "seed": rec["seed"]}
        row.update(rec["params"])
        row.update(rec["metrics"])
        row.update({"engine": rec.get("engine"), "host": rec.get("host"), "slurm_job_id": rec.get("slurm_job_id")})
        rows.append(row)
    return pd.DataFrame(rows)


def swept_columns(params: list[dict]) -> list[str]:
    """Parameters that take more than one value across the sweep (the sweep's axes)."""
    if not params:
        return []
    keys = list(params[0])
    return [k for k in keys if len({str(p.get(k)) for p in params}) > 1]


def describe(params: dict, seed: int, axes: list[str]) -> str:
    return ", ".join(f"{k}={params.get(k)}" for k in axes) + f", seed={seed}"


def _results_root(sweep_dir: Path) -> Path:
    """Where the sweep's jobs wrote their results: ``results_dir`` if the sweep set one, else the sweep folder."""
    from omegaconf import OmegaConf

    path = sweep_dir / "multirun.yaml"
    chosen = OmegaConf.select(OmegaConf.load(path), "results_dir") if path.exists() else None
    return Path(chosen) if chosen else sweep_dir


def collect(sweep_dir: Path, metric: str = "successes", out: Path | None = None, plots: bool = True) -> int:
    from sim.config import ConfigError
    from sim.results import METRICS
    from sim.sweep import ResultStore, expected_runs

    from .app import write_atomic

    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r}: allowed metrics are " + ", ".join(METRICS))
    if not sweep_dir.is_dir():
        raise ConfigError(f"{sweep_dir}: no such folder")
    store = ResultStore(_results_root(sweep_dir))
    removed = store.clean_stale()
    expected = expected_runs(sweep_dir)
    df = load_results(store)
    failures = {f["id"]: f for f in store.failures()}

    expected_ids = {rid for rid, _, _ in expected}
    # the sweep's axes (a regime's on/off flags follow its name)
    axes = [a for a in swept_columns([p for _, _, p in expected])
            if a != "seed" and (a == "regime.name" or not a.startswith("regime."))]
    present = set(df["run_id"]) if len(df) else set()
    missing = [(rid, seed, p) for rid, seed, p in expected if rid not in present]
    failed = [m for m in missing if m[0] in failures]
    missing = [m for m in missing if m[0] not in failures]
    extra = present - expected_ids

    target = out or sweep_dir / "sweep.parquet"
    if len(df):
        df = df.sort_values([*(a for a in axes if a in df.columns), "seed"], kind="stable").reset_index(drop=True)
    write_atomic(target, lambda p: df.to_parquet(p, index=False))

    print(f"{sweep_dir}: {len(expected)} runs expected, {len(present & expected_ids)} present, "
          f"{len(missing)} missing, {len(failed)} failed"
          + (f", {len(extra)} from outside this sweep" if extra else ""))
    if axes:
        print("swept: " + ", ".join(axes))
    if removed:
        print(f"removed {len(removed)} temporary file(s) left by killed writers")
    for rid, seed, p in failed[:50]:
        print(f"  FAILED  {describe(p, seed, axes)}: {failures[rid].get('error', '?')}")
    for rid, seed, p in missing[:50]:
        print(f"  MISSING {describe(p, seed, axes)}")
    if len(failed) + len(missing) > 100:
        print(f"  ... and {len(failed) + len(missing) - 100} more")
    print(f"wrote {target} ({len(df)} rows x {df.shape[1] if len(df) else 0} columns)")

    if plots and len(df):
        import matplotlib

        matplotlib.use("Agg")
        from sim.plots import save_sweep_plots

        for path in save_sweep_plots(df, axes, metric, sweep_dir, write_atomic):
            print(f"wrote {path}")
    return 0 if not missing and not failed else 1


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", type=Path, help="the sweep's folder (multirun/sweep-...)")
    ap.add_argument("--metric", default="successes", help="metric of the plots (default: successes)")
    ap.add_argument("--out", type=Path, default=None, help="Parquet file (default: <sweep dir>/sweep.parquet)")
    ap.add_argument("--no-plots", action="store_true", help="only the table and the report")
    args = ap.parse_args(argv)
    from sim.config import ConfigError

    try:
        code = collect(args.sweep_dir, args.metric, args.out, plots=not args.no_plots)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)


if __name__ == "__main__":
    main()
