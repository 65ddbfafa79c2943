"""The main job: compare the policy regimes on one scenario.

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

import io
import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sim.config import ConfigError, load_config

_STARTED = False  # set once Hydra has composed the config and handed it to the task


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


def _explicit_regime() -> bool:
    """Whether the command line chose one regime (``regime=...``) rather than the list ``regimes``."""
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return False
    return any(o.split("=", 1)[0].lstrip("+~") == "regime" for o in overrides)


def main_job(node: DictConfig) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    logging.getLogger("MESA").setLevel(logging.WARNING)  # Mesa logs every step at INFO
    from tabulate import tabulate

    from sim import api
    from sim.plots import save_comparison
    from sim.stats import format_table

    cfg = load_config(node)
    regimes = [cfg.regime.name] if _explicit_regime() else list(cfg.regimes)
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


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def _app(node: DictConfig) -> None:
    global _STARTED
    _STARTED = True
    _STDERR.release()
    try:
        main_job(node)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)


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
        if not _STARTED and e.code not in (0, None):
            held = _STDERR.held.getvalue()
            sys.stderr = _STDERR.real
            print(f"config error: {_one_line(held)}", file=sys.stderr)
            sys.exit(2)
        raise
    finally:
        if sys.stderr is _STDERR:
            _STDERR.release()


if __name__ == "__main__":
    main()
