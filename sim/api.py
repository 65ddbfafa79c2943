"""The Python API: what the Hydra apps do, callable from a notebook.

>>> from sim import api
>>> cfg = api.compose("scenario=lishui", "seeds=5", "broker.cap=500000")
>>> res = api.compare(cfg)            # every regime of cfg.regimes, cfg.seeds replicates
>>> res.table                         # mean and 95% interval per regime, paired effects
>>> res.summary, res.series           # tidy tables: one row per regime x seed (x month)
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import numpy as np

from .config import ENGINES, Config, ConfigError, RegimeConfig, load_config, with_regime
from .results import SERIES_NAMES, check_invariants, summarize

if TYPE_CHECKING:  # pandas is imported where tables are built: worker processes start faster without it
    import pandas as pd

from .locations import CONFIG_DIR  # noqa: E402


# --------------------------------------------------------------------------- configs
def compose(*overrides: str) -> Config:
    """The validated config of ``configs/`` with Hydra-style overrides, e.g. ``compose("scenario=lishui")``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        node = hydra_compose(config_name="config", overrides=list(overrides))
    return load_config(node)


def regime_names() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "regime").glob("*.yaml"))


def regime(name: str) -> RegimeConfig:
    """The regime ``configs/regime/<name>.yaml``."""
    from omegaconf import OmegaConf

    path = CONFIG_DIR / "regime" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"regime {name!r} has no file configs/regime/{name}.yaml: allowed are "
                          + ", ".join(regime_names()))
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return load_config({"regime": data}).regime


def under_regime(cfg: Config, name: str) -> Config:
    """``cfg`` with its regime replaced by the named one (instrument parameters kept)."""
    return with_regime(cfg, regime(name))


# --------------------------------------------------------------------------- runs
@dataclass
class RunResult:
    """One run: its per-month series (months x metrics) and its summary row."""

    regime: str
    seed: int
    series: np.ndarray
    summary: dict
    n_achievements: int
    initial_money: float

    def check(self) -> None:
        """Raise if the run broke an invariant of the model."""
        check_invariants(self.series, self.n_achievements, self.initial_money)


def simulate(cfg: Config, seed: Optional[int] = None, engine: Optional[str] = None) -> RunResult:
    """Run one replicate of ``cfg`` (its regime, scenario and engine) and return its results."""
    seed = cfg.seed if seed is None else int(seed)
    engine = engine or cfg.engine
    if engine == "mesa":
        from .model import TransferModel

        model = TransferModel(cfg, seed)
        series = model.run()
        n_ach, money = len(model.achievements), model.initial_money
    elif engine == "numba":
        from . import kernels

        series, n_ach, money = kernels.simulate(cfg, seed)
    else:
        raise ConfigError(f"engine = {engine!r}: must be one of " + ", ".join(ENGINES))
    return RunResult(cfg.regime.name, seed, series, summarize(series, n_ach), n_ach, float(money))


def _run_task(task):
    cfg, seed = task
    return simulate(cfg, seed)


def _run_chunk(tasks):
    return [_run_task(t) for t in tasks]


def run_batch(tasks: Sequence[tuple[Config, int]], workers: int = 1, progress: bool = False,
              desc: str = "runs", chunksize: Optional[int] = None) -> list[RunResult]:
    """Run (config, seed) pairs and return their results in task order.

    With ``workers > 1`` the tasks are cut into chunks run by a pool of processes,
    so a process pays its start-up and Numba's cache load (~1 s) once, not per run.
    Results do not depend on ``workers`` or ``chunksize``. The processes are spawned,
    so a script calling this with ``workers > 1`` needs the usual
    ``if __name__ == "__main__":`` guard (notebooks need nothing).
    """
    from tqdm import tqdm

    tasks = list(tasks)
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit="run")
    out: list[RunResult] = []
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            out.append(_run_task(t))
            bar.update()
    else:
        size = chunksize or max(1, -(-len(tasks) // (workers * 4)))
        chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        # spawn, not fork: the parent may hold Numba/OpenMP threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for results in pool.map(_run_chunk, chunks):
                out.extend(results)
                bar.update(len(results))
    bar.close()
    return out


# --------------------------------------------------------------------------- comparisons
def flat_params(cfg: Config) -> dict:
    """The config as dotted columns (``scenario.firms.n``, ``broker.rate``, ...)."""
    out = {}

    def walk(prefix, obj):
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(v):
                walk(key + ".", v)
            elif isinstance(v, (list, dict)):
                continue  # the regimes compared, a sweep's grid: not parameters of a run
            else:
                out[key] = v

    walk("", cfg)
    for k in ("seeds", "progress", "workers", "seed", "results_dir"):
        out.pop(k, None)
    return out


def summary_frame(results: Iterable[RunResult], configs: dict[str, Config]) -> pd.DataFrame:
    """One row per run: regime, seed, parameters, metrics."""
    import pandas as pd

    rows = []
    for r in results:
        rows.append({"regime": r.regime, "seed": r.seed, **flat_params(configs[r.regime]), **r.summary})
    return pd.DataFrame(rows)


def series_frame(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run and month: regime, seed, month, every series column."""
    import pandas as pd

    frames = []
    for r in results:
        df = pd.DataFrame(r.series, columns=list(SERIES_NAMES))
        df.insert(0, "month", np.arange(len(df)))
        df.insert(0, "seed", r.seed)
        df.insert(0, "regime", r.regime)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


@dataclass
class Comparison:
    """The result of :func:`compare`."""

    config: Config
    summary: pd.DataFrame     # one row per regime x seed
    series: pd.DataFrame      # one row per regime x seed x month
    table: pd.DataFrame       # one row per regime: means, intervals, paired effects vs baseline
    results: list[RunResult]


def compare(cfg: Config, regimes: Optional[Sequence[str]] = None, seeds: Optional[int] = None,
            workers: Optional[int] = None, progress: Optional[bool] = None) -> Comparison:
    """Run every regime on the same seeds (common random numbers) and tabulate the effects."""
    from .stats import comparison_table

    regimes = list(regimes or cfg.regimes)
    seeds = int(seeds or cfg.seeds)
    workers = int(workers or cfg.workers)
    progress = cfg.progress if progress is None else progress
    configs = {name: under_regime(cfg, name) for name in regimes}
    tasks = [(configs[name], cfg.seed + k) for name in regimes for k in range(seeds)]
    results = run_batch(tasks, workers=workers, progress=progress, desc=f"{len(regimes)} regimes x {seeds} seeds")
    summary = summary_frame(results, configs)
    return Comparison(cfg, summary, series_frame(results), comparison_table(summary), results)


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1))
