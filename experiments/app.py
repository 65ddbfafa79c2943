"""The project's Hydra app: the main job (compare regimes) and, in a multirun, sweep jobs.

It lives in an importable module (``python -m experiments.run`` calls :func:`main`) so
that launchers that pickle the task function (joblib, submitit) pickle it by name.

The main job: compare the policy regimes on one scenario.

    python -m experiments.run                                   # every regime, default scenario
    python -m experiments.run scenario=lishui regimes=[baseline,free_trial] seeds=5
    python -m experiments.run broker.cap=500000 trial.term_months=12
    python -m experiments.run regime=free_trial                 # that regime alone

Writes into the Hydra run directory (printed at the end):
    summary.csv      one row per regime x seed: parameters and metrics
    series.csv       one row per regime x seed x month: the monthly series
    table.csv        one row per regime x metric: mean, 95% interval, paired effect vs baseline
    table.md         the printed tables
    comparison.png   the regimes side by side

A configuration error is reported in one line with exit code 2.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sim.config import ConfigError, load_config

_STARTED = False  # set once Hydra has composed the config and handed it to the task


def _sweep_id() -> str:
    """A short name for a sweep, from the command line that started it: the same sweep, the same folder.

    Launcher settings (``hydra.*``, ``hydra/launcher=...``) and the flags are left out, so
    resuming with another launcher or more workers lands in the same folder. Resolved
    once in the driver; jobs get the value through Hydra's resolver cache.
    """
    args = [a for a in sys.argv[1:] if not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]
    text = "\n".join(sorted(args))
    return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:10]


if not OmegaConf.has_resolver("sweep_id"):
    OmegaConf.register_new_resolver("sweep_id", _sweep_id, use_cache=True)


def write_atomic(path: Path, write) -> None:
    """Write a file through a temporary file and a rename: never half-written."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main_job(node: DictConfig) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    logging.getLogger("MESA").setLevel(logging.WARNING)  # Mesa logs every step at INFO
    from tabulate import tabulate

    from sim import api
    from sim.plots import save_comparison
    from sim.stats import format_table

    cfg = load_config(node)
    regimes = [cfg.regime.name] if _explicit("regime") else list(cfg.regimes)
    if cfg.grid:
        raise ConfigError("grid = {...}: a grid is for sweeps; run with -m (multirun)")
    for name in regimes:  # fail on a bad name before any run
        api.regime(name)
    out = Path(HydraConfig.get().runtime.output_dir)
    print(f"scenario {cfg.scenario.name}: {cfg.scenario.firms.n} firms, "
          f"{cfg.scenario.universities.n * cfg.scenario.universities.achievements_each} achievements, "
          f"{cfg.scenario.months} months; regimes {', '.join(regimes)}; seeds {cfg.seed}..{cfg.seed + cfg.seeds - 1}; "
          f"engine {cfg.engine}")
    res = api.compare(cfg, regimes=regimes)

    write_atomic(out / "summary.csv", lambda p: res.summary.to_csv(p, index=False))
    write_atomic(out / "series.csv", lambda p: res.series.to_csv(p, index=False))
    write_atomic(out / "table.csv", lambda p: res.table.to_csv(p, index=False))
    means = format_table(res.table)
    text = [f"## Outcomes per run, mean [95% interval] over {cfg.seeds} seeds ({cfg.scenario.name})",
            tabulate(means, headers="keys", tablefmt="github")]
    if "baseline" in regimes and len(regimes) > 1:
        effects = format_table(res.table, effects=True)
        text += ["", "## Effect against baseline, paired by seed: mean difference [95% interval]",
                 "(cost_per_extra_conversion: extra government spend / extra conversions, bootstrap interval)",
                 tabulate(effects, headers="keys", tablefmt="github")]
    report = "\n".join(text)
    print(report)
    write_atomic(out / "table.md", lambda p: Path(p).write_text(report + "\n"))
    write_atomic(out / "comparison.png",
                 lambda p: save_comparison(res.series, res.summary, Path(p),
                                           f"{cfg.scenario.name}: regimes compared over {cfg.seeds} seeds"))
    print(f"\nwrote summary.csv, series.csv, table.csv, table.md, comparison.png to {out}")
    return out


def _explicit(key: str) -> bool:
    """Whether the command line set ``key`` (so a mode-dependent default must not override it)."""
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return False
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in overrides)


def _sweep_dir(hc) -> Path:
    """The sweep's folder, as the launcher resolved it (a job re-resolving hydra.sweep.dir would not)."""
    out, sub = Path(hc.runtime.output_dir), Path(str(hc.sweep.subdir))
    return Path(*out.parts[: len(out.parts) - len(sub.parts)]) if out.parts[-len(sub.parts):] == sub.parts else out


def sweep_job(node: DictConfig) -> None:
    """One job of a multirun: its point(s) x seeds, stored one file per run, skipping what is done.

    In a sweep the engine defaults to numba, and a job given ``seed=`` (without
    ``seeds=``) runs that one seed.
    """
    from sim.sweep import ResultStore, expand_grid, job_config, override_keys, run_sweep_job

    logging.getLogger("MESA").setLevel(logging.WARNING)
    hc = HydraConfig.get()
    cfg = job_config(load_config(node), override_keys(hc.overrides.task))
    expand_grid(cfg, cfg.grid)  # fail on a bad grid before any run
    root = Path(cfg.results_dir) if cfg.results_dir else _sweep_dir(hc)
    store = ResultStore(root)
    rep = run_sweep_job(cfg, store, workers=cfg.workers, progress=cfg.progress)
    print(f"job {hc.job.num} ({' '.join(hc.overrides.task) or 'defaults'}): {rep.total} runs, "
          f"{rep.skipped} already done, {rep.ran} ran, {rep.failed} failed -> {store.results}", flush=True)


from sim.locations import CONFIG_DIR  # noqa: E402


def task(node: DictConfig) -> None:
    """Hydra's task function (left undecorated, so launchers pickle it by its name)."""
    global _STARTED
    _STARTED = True
    _STDERR.release()
    try:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            sweep_job(node)
        else:
            main_job(node)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)


_app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")(task)


class _HeldStderr(io.TextIOBase):
    """Holds what Hydra writes to stderr until the job starts, so its errors can be put in one line."""

    def __init__(self, real):
        self.real = real
        self.held = io.StringIO()
        self.holding = True

    def write(self, s):
        return (self.held if self.holding else self.real).write(s)

    def flush(self):
        if not self.holding:
            self.real.flush()

    def release(self):
        if self.holding:
            self.holding = False
            self.real.write(self.held.getvalue())
            sys.stderr = self.real


_STDERR = _HeldStderr(sys.stderr)


_COMPOSITION_ERRORS = ("Could not override", "Could not find", "Could not load", "Error parsing override",
                       "Error merging override", "is not in struct", "In 'config'", "Missing mandatory value",
                       "mismatched input", "no viable alternative", "Ambiguous value")


def _is_config_error(message: str) -> bool:
    """A Hydra composition error (the command line or a config file), as opposed to a failing job."""
    return "Traceback" not in message and any(p in message for p in _COMPOSITION_ERRORS)


def _one_line(message: str) -> str:
    """Hydra's composition error, reduced to its first useful line (+ the allowed options)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Set the environment variable HYDRA_FULL_ERROR")]
    if not lines:
        return "invalid command line"
    first = lines[0]
    if "Could not find" in first or "Could not load" in first:
        opts = []
        for ln in lines[1:]:
            if ln.startswith("Available options") or ln.startswith("Config search path"):
                continue
            if " " in ln or ":" in ln:
                break
            opts.append(ln)
        if opts:
            first += "; allowed: " + ", ".join(opts)
    elif first.startswith("Could not override"):
        key = first.split("'")[1] if "'" in first else ""
        first = f"unknown key '{key}'" + _allowed_keys(key)
    return first


def _allowed_keys(dotted: str) -> str:
    import dataclasses
    import typing

    from sim.config import Config

    cls = Config
    parts = dotted.split(".")
    for p in parts[:-1]:
        hints = typing.get_type_hints(cls)
        if p not in hints or not dataclasses.is_dataclass(hints[p]):
            return ""
        cls = hints[p]
    names = [f.name for f in dataclasses.fields(cls)]
    where = ".".join(parts[:-1])
    return f": allowed keys{' in ' + where if where else ''} are " + ", ".join(names)


def main() -> None:
    sys.stderr = _STDERR
    try:
        _app()
    except SystemExit as e:
        held = _STDERR.held.getvalue()
        if not _STARTED and e.code not in (0, None) and _is_config_error(held):
            sys.stderr = _STDERR.real
            print(f"config error: {_one_line(held)}", file=sys.stderr)
            sys.exit(2)
        raise
    finally:
        if sys.stderr is _STDERR:
            _STDERR.release()


