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

Nothing in the folder is trusted (it may sit on a shared file system): ``multirun.yaml``
is read as data, and only its model settings are used (``hydra.*`` settings are never
passed on); a result file is used only if it passes a schema check (its parameters hash
to its name, its checksum matches, its metrics are the model's); a file that fails is
named and, inside the sweep's folder, moved aside to ``corrupt/`` for the next run of
the sweep to recompute. Collect writes, moves and deletes only inside the sweep's folder.

Exit code 0 when every run is present once, 1 when some are missing, failed or corrupt
(the table of the good ones is still written), 2 when the folder is not a sweep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path



def _sortable(column):
    """A column as sort_values can order it: lists (regime.instruments) by their text."""
    lists = column.map(lambda v: isinstance(v, (list, tuple)))
    return column.map(str) if lists.any() else column


def describe(params: dict, seed: int, axes: list[str]) -> str:
    return ", ".join([*(f"{k}={params.get(k)}" for k in axes), f"seed={seed}"])


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (links resolved) lies inside ``folder``."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


MARK = (b"techtransfer_sim", b"sweep table")  # in the Parquet file's metadata: a table collect wrote


def write_table(df, path) -> None:
    """The sweep's table as Parquet, marked as collect's (so a later collect may replace it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), MARK[0]: MARK[1]})
    pq.write_table(table, path)


def is_sweep_table(path: Path) -> bool:
    """Whether ``path`` is a Parquet table collect wrote (its metadata carries the mark)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # not Parquet, unreadable: not ours
        return False
    return meta.get(MARK[0]) == MARK[1]


def check_out(target: Path, key) -> None:
    """Refuse a target that is not absent or a regular file (a device, FIFO, link, folder), and, given as
    ``--out``, an existing file that is not a table collect wrote: collect replaces only its own results."""
    from sim.core.config import ConfigError
    from sim.runs.outputs import check_target

    check_target(target, key)
    if key and target.exists() and not is_sweep_table(target):
        raise ConfigError(f"{key} = {str(target)!r}: exists and is not a table collect wrote; collect replaces "
                          "only its own tables (give a new file name, or remove that file)")


def collect(sweep_dir: Path, metric: str = "successes", out: Path | None = None, plots: bool = True,
            max_runs: int | None = None, config_dirs: tuple = (), results_dir: Path | None = None) -> int:
    """Collect the sweep in ``sweep_dir``; return the exit code (0 all present, 1 some missing, failed or corrupt).

    Nothing in the folder is trusted: the runs it should hold are re-derived from its
    ``multirun.yaml`` as data (model settings only, at most ``max_runs`` runs), and each
    result file is read with a schema check. A file that fails it is named and, when it
    lies inside the sweep's folder, moved aside to ``corrupt/`` so the next run of the
    sweep computes it again. Files outside the sweep's folder (``results_dir``) are only
    read: collect writes, moves and deletes only inside the sweep's folder.
    """
    from experiments.cli import swept_columns
    from sim.core.config import ConfigError
    from sim.core.results import METRICS
    from sim.runs.outputs import write_atomic
    from sim.runs.sweep import RUNS_MAX, ResultStore, expected_runs, sweep_jobs

    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r}: allowed metrics are " + ", ".join(METRICS))
    if not sweep_dir.is_dir():
        raise ConfigError(f"{sweep_dir}: no such folder")
    if max_runs is not None and max_runs < 1:
        raise ConfigError(f"--max-runs {max_runs}: must be >= 1")
    check_out(out or sweep_dir / "sweep.parquet", "--out" if out else None)  # before anything is moved or written
    _, info = sweep_jobs(sweep_dir, config_dirs, resolve_results_dir=results_dir is None)
    root = results_dir or (Path(info["results_dir"]) if info["results_dir"] else sweep_dir)
    store = ResultStore(root)
    owned = _inside(store.results, sweep_dir)  # may collect move and delete there?
    removed = store.clean_stale() if owned else []
    expected = expected_runs(sweep_dir, max_runs or RUNS_MAX, config_dirs)

    rows, missing, failed, corrupt = [], [], [], []
    for rid, seed, params in expected:
        record, problem = store.load(rid)
        if record is not None:
            rows.append({"run_id": rid, "seed": record["seed"], **record["params"], **record["metrics"],
                         "engine": record.get("engine"), "host": record.get("host"),
                         "slurm_job_id": record.get("slurm_job_id")})
            continue
        if problem:
            moved = None
            if owned:
                try:
                    moved = store.quarantine(rid, problem)
                except OSError:
                    moved = None  # corrupt/ is not a plain folder of the sweep: leave the file where it is
            corrupt.append((rid, seed, params, problem, moved))
            continue
        error = store.failure(rid)
        (failed if error else missing).append((rid, seed, params, error))

    import pandas as pd

    df = pd.DataFrame(rows)
    # the sweep's axes; a regime's instruments follow its name, unless regime.instruments was swept under one name
    params = [p for _, _, p in expected]
    by_name = {}
    for p in params:
        by_name.setdefault(str(p.get("regime.name")), set()).add(str(p.get("regime.instruments")))
    own = any(len(v) > 1 for v in by_name.values())
    axes = [a for a in swept_columns(params)
            if a != "seed" and (a == "regime.name" or not a.startswith("regime.") or own)]
    target = out or sweep_dir / "sweep.parquet"
    if len(df):
        df = df.sort_values([*(a for a in axes if a in df.columns), "seed"], kind="stable",
                            key=_sortable).reset_index(drop=True)
    write_atomic(target, lambda p: write_table(df, p), key="--out" if out else None)

    print(f"{sweep_dir}: {len(expected)} runs expected, {len(rows)} present, {len(missing)} missing, "
          f"{len(failed)} failed" + (f", {len(corrupt)} corrupt" if corrupt else ""))
    if axes:
        print("swept: " + ", ".join(axes))
    if removed:
        print(f"removed {len(removed)} temporary file(s) left by killed writers")
    for rid, seed, p, problem, moved in corrupt[:50]:
        where = (f"moved to {moved.resolve().relative_to(sweep_dir.resolve()) if _inside(moved, sweep_dir) else moved}"
                 if moved else "left in place (outside the sweep's folder, or corrupt/ is not a plain folder)")
        print(f"  CORRUPT {store.path(rid)}: {problem}; {where}; the next run of the sweep computes it again")
    for rid, seed, p, error in failed[:50]:
        print(f"  FAILED  {describe(p, seed, axes)}: {error}")
    for rid, seed, p, _ in missing[:50]:
        print(f"  MISSING {describe(p, seed, axes)}")
    if len(failed) + len(missing) > 100:
        print(f"  ... and {len(failed) + len(missing) - 100} more")
    print(f"wrote {target} ({len(df)} rows x {df.shape[1] if len(df) else 0} columns)")

    if plots and len(df):
        import matplotlib

        matplotlib.use("Agg")
        from sim.analysis.plots import save_sweep_plots

        for path in save_sweep_plots(df, axes, metric, sweep_dir, write_atomic):
            print(f"wrote {path}")
    return 0 if not missing and not failed and not corrupt else 1


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", type=Path, help="the sweep's folder (multirun/sweep-...)")
    ap.add_argument("--metric", default="successes", help="metric of the plots (default: successes)")
    ap.add_argument("--out", type=Path, default=None, help="Parquet file (default: <sweep dir>/sweep.parquet)")
    ap.add_argument("--no-plots", action="store_true", help="only the table and the report")
    ap.add_argument("--max-runs", type=int, default=None,
                    help="most runs the sweep's multirun.yaml may ask for (default: 200,000)")
    ap.add_argument("--results-dir", type=Path, default=None,
                    help="where the sweep's result files are, if not where its multirun.yaml says (results_dir)")
    ap.add_argument("--config-dir", action="append", default=[], type=Path,
                    help="a config folder the sweep used with --config-dir (your own scenarios); repeatable")
    args = ap.parse_args(argv)
    from sim.core.config import ConfigError

    try:
        code = collect(args.sweep_dir, args.metric, args.out, plots=not args.no_plots, max_runs=args.max_runs,
                       config_dirs=tuple(args.config_dir), results_dir=args.results_dir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        print(f"error: {e.filename or args.sweep_dir}: {e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)


if __name__ == "__main__":
    main()
