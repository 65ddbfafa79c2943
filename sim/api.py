"""The Python API: what the Hydra apps do, callable from a notebook.

>>> from sim import api
>>> cfg = api.compose("scenario=lishui", "seeds=5", "broker.cap=500000")
>>> res = api.compare(cfg)            # every regime of cfg.regimes, cfg.seeds replicates
>>> res.table                         # mean and 95% interval per regime, paired effects
>>> res.summary, res.series           # tidy tables: one row per regime x seed (x month)
"""

from __future__ import annotations

import multiprocessing
import numbers
import os
import sys
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

import numpy as np

from .config import (ENGINES, SEED_MAX, Config, ConfigError, RegimeConfig, allowed_regimes_text, load_config,
                     parameter_keys, regime_instruments, replace, with_regime)
from .posterior import Posterior, load_posterior
from .results import SERIES_NAMES, check_by_sector, check_deals, check_invariants, summarize

if TYPE_CHECKING:  # pandas is imported where tables are built: worker processes start faster without it
    import pandas as pd

from .locations import CONFIG_DIR  # noqa: E402


# --------------------------------------------------------------------------- configs
def compose(*overrides: str, config_dirs: Sequence[str | Path] = ()) -> Config:
    """The validated config of ``configs/`` with Hydra-style overrides, e.g. ``compose("scenario=lishui")``.

    ``config_dirs`` are more config folders searched after the project's own (as Hydra's
    ``--config-dir``), for scenarios of your own: ``<dir>/scenario/<name>.yaml``.
    A bad override or value raises a one-line :class:`ConfigError`.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    search = ([f"hydra.searchpath=[{','.join('file://' + str(Path(d).resolve()) for d in config_dirs)}]"]
              if config_dirs else [])
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            node = hydra_compose(config_name="config", overrides=search + list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError, RecursionError) as e:  # ValueError: scenario=3
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise ConfigError(lines[0] if lines else type(e).__name__) from None
    return load_config(node)


def regime_names() -> list[str]:
    """The named regimes: ``baseline`` first, ``combined`` last, the others alphabetically."""
    return sorted((p.stem for p in (CONFIG_DIR / "regime").glob("*.yaml")),
                  key=lambda n: (n != "baseline", n == "combined", n))


def regime(name: str) -> RegimeConfig:
    """The regime ``configs/regime/<name>.yaml`` (a name, never a path), or a mix of instruments joined by ``+``
    (``free_trial+vouchers``: a regime of that name switching those instruments on)."""
    instruments = regime_instruments(name)
    if instruments is None:
        raise ConfigError(f"regime {name!r}: allowed are {allowed_regimes_text()}")
    return load_config({"regime": {"name": name, "instruments": instruments}}).regime


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
    config: Optional[Config] = None
    by_sector: Optional[np.ndarray] = None   # months x sectors x state.SECTOR_SERIES_NAMES
    deals: Optional[tuple] = None   # (values, forms) of the contracts signed, one by one (sim.results.deal_metrics)

    def check(self) -> None:
        """Raise :class:`sim.results.InvariantError` if the run broke an invariant of the model."""
        check_invariants(self.series, self.n_achievements, self.initial_money, self.config)
        if self.by_sector is not None:
            check_by_sector(self.series, self.by_sector)
        if self.deals is not None:
            check_deals(self.series, *self.deals)


def check_seed(seed) -> int:
    """A replicate's seed as an int, or a ConfigError (seeds are int64 in the kernels)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"seed = {seed!r}: must be an integer >= 0 and <= {SEED_MAX}")
    return int(seed)


def simulate(cfg: Config, seed: Optional[int] = None, engine: Optional[str] = None, check: bool = True) -> RunResult:
    """Run one replicate of ``cfg`` (its regime, scenario and engine) and return its results.

    ``cfg`` is validated first (a Config built or changed by hand included), the run's
    memory and money are checked before anything is drawn or run, and, with ``check``
    (the default), the run's invariants are checked before it is returned: a run that
    breaks one raises :class:`sim.results.InvariantError` instead of returning numbers.
    One run has ``cfg``'s own values: ``cfg.posterior`` is for comparisons (:func:`compare`; the configs
    of its draws are ``sim.posterior.load_posterior(cfg.posterior).draws(cfg, n)``).
    """
    return _simulate(load_config(_given(cfg)), seed, engine, check)


def _given(cfg):
    """``cfg`` if it is a Config or a mapping of its settings; else a one-line ConfigError (None is no config: the
    defaults are ``compose()``)."""
    from collections.abc import Mapping

    if isinstance(cfg, (Config, Mapping)):
        return cfg
    from omegaconf import DictConfig

    if isinstance(cfg, DictConfig):
        return cfg
    raise ConfigError(f"cfg = {cfg!r:.60}: must be a Config (sim.api.compose(...) gives one; compose() the "
                      "defaults) or a mapping of its settings")


def _simulate(cfg: Config, seed: Optional[int], engine: Optional[str], check: bool) -> RunResult:
    """:func:`simulate` of a validated ``cfg``: a batch of one (:func:`sim.batch.run_chunk`)."""
    from .batch import run_chunk

    seed = check_seed(cfg.seed if seed is None else seed)
    return run_chunk([(cfg, seed)], lambda c: c, RunResult, engine, check)[0]


def run_validated(tasks: Sequence[tuple[Config, int]]) -> list[RunResult]:
    """Run (config, seed) pairs of validated configs in this process as one batch (:func:`sim.batch.run_chunk`):
    the runs of an analysis's evaluation (a calibration's candidate, a point of an exploration), each config's runs
    checked and summarised together."""
    from .batch import run_chunk

    return run_chunk([(cfg, check_seed(seed)) for cfg, seed in tasks], lambda c: c, RunResult)


_ONE_BY_ONE = False   # the benchmark's switch to the reference path (sim.batch.run_one_by_one), inherited by forks


def _run_chunk(tasks, columns: bool = False):
    """Run a chunk of (config, seed) tasks as one batch (:func:`sim.batch.run_chunk`): each distinct config object
    validated once, its runs checked and summarised together (``columns``: as a :class:`sim.batch.RunTable`)."""
    from .batch import run_chunk, run_one_by_one

    if _ONE_BY_ONE and not columns:
        return run_one_by_one(tasks, load_config, RunResult)
    return run_chunk(tasks, load_config, RunResult, columns=columns)


def _kernel_loads() -> int:
    """How many compiled functions of ``sim`` this process has loaded from Numba's cache (or compiled).

    Numba counts them per dispatcher; a forked process inherits its parent's counts and its
    parent's loaded functions, so the count rises in a worker only if it loads some itself.
    """
    from numba.core.dispatcher import Dispatcher

    n = 0
    for name, module in list(sys.modules.items()):
        if module is not None and (name == "sim" or name.startswith("sim.")):
            for obj in list(vars(module).values()):
                if isinstance(obj, Dispatcher):
                    stats = obj.stats
                    n += sum(stats.cache_hits.values()) + sum(stats.cache_misses.values())
    return n


def _worker_chunk(tasks, columns: bool = False):
    """:func:`_run_chunk` in a worker process, with its pid, start time and the kernel loads it needed."""
    begun, loads = time.monotonic(), _kernel_loads()
    results = _run_chunk(tasks, columns)
    return os.getpid(), begun, _kernel_loads() - loads, results


def _fork_is_safe() -> bool:
    """True on Linux when this process has no thread besides the main one that a forked child could inherit.

    ``fork`` copies only the calling thread: a lock held at that moment by another thread
    stays held forever in the child. So: no other Python thread (``threading``; a tqdm
    progress bar's monitor, a Jupyter kernel's threads, a ``ThreadPoolExecutor`` all count)
    and no Numba threading layer launched (``parallel=True`` code, which the kernels never
    use, starts a pool of OpenMP/TBB/workqueue threads). Threads that C libraries start are
    invisible to ``threading``: those a run starts (the OpenBLAS pools of numpy and of scipy,
    which Numba loads; jemalloc's, with pyarrow under mesa) prepare for fork themselves
    (``pthread_atfork`` handlers); any other a caller's code started cannot be seen here.
    """
    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return False
    if threading.active_count() != 1:
        return False
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            numba.threading_layer()  # raises ValueError while no threading layer was launched
        except ValueError:
            return True
        return False
    return True


@dataclass
class BatchInfo:
    """How the last :func:`run_batch` with ``workers > 1`` of this process ran (see ``last_batch``)."""

    start_method: str         # "fork" or "spawn"
    processes: int            # worker processes started
    in_parent: int            # runs done by the parent itself before the pool started
    chunks: int               # chunks done by the workers
    startup_s: float          # from just before the pool starts to the first chunk begun by a worker
    worker_pids: tuple        # the pids that did the chunks, in chunk order
    worker_kernel_loads: int  # compiled functions the workers loaded from Numba's cache (or compiled)


last_batch: Optional[BatchInfo] = None  # set by run_batch with workers > 1, for benchmarks and tests


def _chunks(tasks: list, workers: int, chunksize: Optional[int]) -> list[list]:
    """``tasks`` cut into chunks of ``chunksize``, or by default of shrinking sizes (guided scheduling).

    Each default chunk is a ``1 / (2 x workers)`` share of the tasks not yet cut: the first
    chunks are long (the per-chunk costs, a validation of the config and a round trip
    between processes, ~1 ms, are paid rarely) and the last ones are single runs, so the
    workers, each taking the next chunk when done, finish within about one run of each other.
    """
    out, i = [], 0
    while i < len(tasks):
        size = chunksize or -(-(len(tasks) - i) // (2 * workers))
        out.append(tasks[i:i + size])
        i += size
    return out


def _progress_bar(total: int, desc: str, disable: bool = False):
    """A tqdm progress bar that starts no thread (a thread left alive would rule out fork in the next batch)."""
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # else tqdm starts its monitor thread, and a disabled bar leaves it running

    return Bar(total=total, desc=desc, unit="run", disable=disable)


def run_batch(tasks: Sequence[tuple[Config, int]], workers: int = 1, progress: bool = False,
              desc: str = "runs", chunksize: Optional[int] = None, pool: Optional[Executor] = None,
              on_progress: Optional[Callable[[int, int, str], None]] = None) -> list[RunResult]:
    """Run (config, seed) pairs and return their results in task order.

    Every config is validated and every run's invariants are checked (a run that
    breaks one raises). Results do not depend on ``workers`` or ``chunksize``.

    With ``workers > 1`` the tasks are cut into chunks (``chunksize`` tasks each, or by
    default shrinking ones, see :func:`_chunks`) and run by a pool of processes, made in
    one of two ways:

    * **fork**, on Linux when :func:`_fork_is_safe` (no thread but this one, no Numba
      threading layer launched). The parent runs the first task itself (its result is
      kept), which loads the compiled kernels of its engine unless a run did already; the
      workers are then forked from it and inherit the imported modules and the loaded
      kernels, so they start in milliseconds instead of the ~1-2 s a spawned process pays
      (Python, imports, Numba's cache). Safe because a forked child is a copy of the
      calling thread alone: with no other thread, no lock can be copied while held. The
      pool is a ``ProcessPoolExecutor``: with a fork context it starts all its processes
      at the first ``submit``, before its management thread starts (Python >= 3.11, as
      required), and never forks again (a worker that dies breaks the pool with an error;
      ``multiprocessing.Pool`` would fork a replacement from its handler thread and wait
      forever for the lost chunk). The progress bar (tqdm without its monitor thread) is
      made once the processes exist. The process-wide default start method of
      ``multiprocessing`` is not consulted: importing mesa sets it to spawn.
    * **spawn** otherwise (a Jupyter kernel's threads, a progress bar of the caller's, a
      thread pool; macOS, Windows): fresh processes that import ``sim`` and load the
      kernels once each, as before. A script then needs the usual
      ``if __name__ == "__main__":`` guard (notebooks need nothing).

    ``pool``: a process pool of the caller's, kept warm between batches (a server's: its
    workers load the kernels once), used instead of a new one; its ``workers`` chunks at a time.
    ``on_progress(done, total, desc)`` is called as runs finish; an exception it raises stops
    the batch (the chunks not yet begun are cancelled) and propagates.

    ``last_batch`` records how the last batch ran (:class:`BatchInfo`). :func:`run_table` runs the same way and
    returns the runs as columns.
    """
    parts = _run_parts(tasks, workers, progress, desc, chunksize, pool, on_progress, False)
    return [r for part in parts for r in part]


def run_table(tasks: Sequence[tuple[Config, int]], workers: int = 1, progress: bool = False,
              desc: str = "runs", chunksize: Optional[int] = None, pool: Optional[Executor] = None,
              on_progress: Optional[Callable[[int, int, str], None]] = None):
    """:func:`run_batch`, returning the runs as columns (:class:`sim.batch.RunTable`: regime, seed and every
    metric as one array over the runs, in task order; ``.frame()`` a DataFrame) without a Python object a run, and
    without their series. The same runs, the same invariants checked, the same numbers as :func:`run_batch`."""
    from .batch import RunTable

    return RunTable.concat(_run_parts(tasks, workers, progress, desc, chunksize, pool, on_progress, True))


def _run_parts(tasks, workers, progress, desc, chunksize, pool, on_progress, columns: bool) -> list:
    """:func:`run_batch`'s work: the chunks' results (lists of runs, or tables with ``columns``), in task order."""
    global last_batch

    for name, value, low in (("workers", workers, 1), ("chunksize", chunksize, 1)):
        if value is None and name == "chunksize":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ConfigError(f"{name} = {value!r}: must be an integer >= {low}")
    tasks = list(tasks)
    for t in tasks:
        if not (isinstance(t, tuple) and len(t) == 2 and isinstance(t[0], Config)):
            raise ConfigError(f"task {t!r:.60}: must be a (Config, seed) pair")
        check_seed(t[1])
    def done(n: int) -> None:
        if on_progress is not None:
            on_progress(n, len(tasks), desc)

    if pool is not None:
        return _run_in_pool(pool, tasks, workers, chunksize, done, columns)
    parts: list = []
    n_done = 0
    if workers <= 1 or len(tasks) <= 1:
        bar = _progress_bar(len(tasks), desc) if progress else None
        try:
            size = chunksize or 64
            for i in range(0, len(tasks), size):
                results = _run_chunk(tasks[i:i + size], columns)
                parts.append(results)
                n_done += len(results)
                done(n_done)
                if bar is not None:
                    bar.update(len(results))
        finally:
            if bar is not None:
                bar.close()
        return parts

    if _fork_is_safe():  # the parent's run loads the kernels to be inherited
        parts.append(_run_chunk(tasks[:1], columns))
        n_done = 1
    rest = tasks[n_done:]
    method = "fork" if n_done and _fork_is_safe() else "spawn"  # the same, after the parent's run
    chunks = _chunks(rest, workers, chunksize)
    processes = min(workers, len(chunks))
    pids, loads, begun = [], 0, []
    bar = None
    t0 = time.monotonic()
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context(method))
    try:
        futures = [pool.submit(_worker_chunk, chunk, columns) for chunk in chunks]  # fork: all start at the first
        if progress:
            bar = _progress_bar(len(tasks), desc)
            bar.update(n_done)
        for future in futures:
            pid, start, n_loads, results = future.result()
            pids.append(pid)
            begun.append(start)
            loads += n_loads
            parts.append(results)
            n_done += len(results)
            done(n_done)
            if bar is not None:
                bar.update(len(results))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # no need to finish the chunks not yet begun
        raise
    finally:
        pool.shutdown(wait=True)
        if bar is not None:
            bar.close()
    last_batch = BatchInfo(method, processes, len(tasks) - len(rest), len(chunks), min(begun) - t0,
                           tuple(pids), loads)
    return parts


def _run_in_pool(pool: Executor, tasks: list, workers: int, chunksize: Optional[int], done, columns: bool) -> list:
    """:func:`run_batch` in a pool of the caller's: chunks submitted, their results gathered in task order."""
    futures = [pool.submit(_worker_chunk, chunk, columns) for chunk in _chunks(tasks, workers, chunksize)]
    parts: list = []
    n_done = 0
    try:
        for future in futures:
            parts.append(future.result()[3])
            n_done += len(parts[-1])
            done(n_done)
    except BaseException:
        for future in futures:
            future.cancel()  # the pool stays the caller's; the chunks running finish, unread
        raise
    return parts


# --------------------------------------------------------------------------- comparisons
def flat_params(cfg: Config) -> dict:
    """The model's parameters as dotted columns (``scenario.firms.n``, ``broker.rate``, ...), and the engine."""
    out = {"engine": cfg.engine}
    for key in parameter_keys():
        obj = cfg
        for part in key.split("."):
            obj = getattr(obj, part)
        out[key] = obj
    return out


def summary_frame(results: Iterable[RunResult], configs: Optional[dict[str, Config]] = None) -> pd.DataFrame:
    """One row per run: regime, seed, parameters, metrics.

    The parameters are those of the run's own config (runs of one regime on a posterior's draws differ), or,
    for a result without one, of ``configs[regime]``.
    """
    import pandas as pd

    rows = []
    for r in results:
        cfg = r.config if r.config is not None else configs[r.regime]
        rows.append({"regime": r.regime, "seed": r.seed, **flat_params(cfg), **r.summary})
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


def sector_frame(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run, month and sector: regime, seed, month, sector, the funnel of that sector's firms."""
    import pandas as pd

    from .state import SECTOR_SERIES_NAMES

    frames = []
    for r in results:
        months, sectors, _ = r.by_sector.shape
        df = pd.DataFrame(r.by_sector.reshape(months * sectors, -1), columns=list(SECTOR_SERIES_NAMES))
        df.insert(0, "sector", np.tile(np.arange(sectors), months))
        df.insert(0, "month", np.repeat(np.arange(months), sectors))
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
    budget: Optional[float] = None  # at equal spend (compare_at_spend): the yearly budget every regime ran under


def compare(cfg: Config, regimes: Optional[Sequence[str]] = None, seeds: Optional[int] = None,
            workers: Optional[int] = None, progress: Optional[bool] = None, **batch) -> Comparison:
    """Run every regime on the same seeds (common random numbers) and tabulate the effects (under the config's
    ``government.annual_budget``; :func:`compare_at_spend` for a comparison at equal spend).

    With ``cfg.posterior`` (a calibration's posterior directory), replicate k runs on posterior draw k // seeds
    with seed ``cfg.seed + k``: ``posterior_draws x seeds`` replicates per regime, the same draw and seed under
    every regime, and the summary gets a column ``draw`` (the particle drawn).

    ``batch``: ``pool`` and ``on_progress``, passed to :func:`run_batch` (they change no number).
    """
    return _compare(cfg, regimes, seeds, workers, progress, None, **batch)


def compare_at_spend(cfg: Config, at_spend: Optional[str] = None, regimes: Optional[Sequence[str]] = None,
                     seeds: Optional[int] = None, workers: Optional[int] = None, progress: Optional[bool] = None,
                     spend_of: Optional[Comparison] = None, **batch) -> Comparison:
    """Every regime under one yearly budget: what regime ``at_spend`` (default ``cfg.at_spend``) spends a year,
    measured from ``spend_of`` (the :func:`compare` of the same config and seeds, if it ran that regime) or else by
    running it first. A cost per extra conversion is not a property of an instrument alone: at equal spend,
    instruments are compared on what the same money buys."""
    at_spend = cfg.at_spend if at_spend is None else at_spend
    if at_spend is None:
        raise ConfigError("at_spend = null: name the regime whose yearly spend every regime is held to")
    cfg = replace(cfg, at_spend=at_spend)  # validated: a known regime
    check_at_spend(at_spend)
    checked = _checked(cfg, regimes, seeds, workers)
    if (spend_of is not None and spend_of.budget is None and at_spend in set(spend_of.summary["regime"])
            and _same_runs(spend_of.config, checked)):
        spends = spend_of.summary.loc[spend_of.summary["regime"] == at_spend, "gov_spend"]
        budget = _per_year(spends, cfg.scenario.months, at_spend)
    else:
        budget = yearly_spend(under_regime(checked, at_spend), checked.seeds, checked.workers,
                              cfg.progress if progress is None else progress, **batch)
    capped = replace(cfg, **{"government.annual_budget": budget})
    return _compare(capped, regimes, seeds, workers, progress, budget, **batch)


def check_at_spend(name: str) -> None:
    """Refuse, before anything runs, an ``at_spend`` regime none of whose instruments pays public money."""
    from . import ledger

    instruments = set(regime(name).instruments)
    if not any(k.payer == ledger.GOVERNMENT and k.owner in instruments for k in ledger.KINDS):
        raise ConfigError(f"at_spend = {name}: that regime spends no public money; name one that does")


def _checked(cfg: Config, regimes, seeds, workers) -> Config:
    """``cfg`` with the comparison's regimes, seeds and workers, validated like the command line (known regimes,
    each once, seeds >= 1, ...)."""
    if isinstance(regimes, str):
        raise ConfigError(f"regimes = {regimes!r}: must be a list of regime names")
    if not isinstance(cfg, Config):
        _given(cfg)  # None or another non-config: its own message
        raise ConfigError(f"cfg: a {type(cfg).__name__}, must be a Config (sim.api.load_config(mapping) or "
                          "sim.api.compose(...) gives one)")
    return replace(cfg, **{"regimes": cfg.regimes if regimes is None else list(regimes),
                           "seeds": cfg.seeds if seeds is None else seeds,
                           "workers": cfg.workers if workers is None else workers})


def _same_runs(a: Config, b: Config) -> bool:
    """Whether two configs give the same runs of a regime (they differ at most in settings that change no number)."""
    keep = {k: getattr(b, k) for k in ("regimes", "workers", "progress", "at_spend")}
    return replace(a, **keep) == b


def _compare(cfg, regimes, seeds, workers, progress, budget, **batch) -> Comparison:
    from .stats import comparison_table

    cfg = _checked(cfg, regimes, seeds, workers)
    regimes, seeds, workers = cfg.regimes, cfg.seeds, cfg.workers
    progress = cfg.progress if progress is None else progress
    posterior = load_posterior(cfg.posterior) if cfg.posterior is not None else None
    replicates = [rep for name in regimes for rep in _replicates(under_regime(cfg, name), seeds, posterior)]
    desc = f"{len(regimes)} regimes x {replicates_text(cfg, seeds)}" + (" at equal spend" if budget is not None else "")
    results = run_batch([(c, seed) for c, seed, _ in replicates], workers=workers, progress=progress, desc=desc,
                        **batch)
    summary = summary_frame(results)
    if posterior is not None:
        summary.insert(2, "draw", [particle for _, _, particle in replicates])
        summary.insert(3, "draw_block", [(seed - cfg.seed) // seeds for _, seed, _ in replicates])
    return Comparison(cfg, summary, series_frame(results), comparison_table(summary), results, budget)


def _replicates(cfg: Config, seeds: int, posterior: Optional[Posterior] = None) -> list[tuple[Config, int, int]]:
    """(config, seed, particle) of each replicate of ``cfg``: seeds ``cfg.seed, cfg.seed + 1, ...``, and, with a
    posterior, replicate k on draw k // seeds (particle -1 without one). Every replicate has a seed of its own, so
    effects paired by seed pair the same draw and seed under every regime."""
    if cfg.posterior is None:
        return [(cfg, cfg.seed + k, -1) for k in range(seeds)]
    posterior = posterior if posterior is not None else load_posterior(cfg.posterior)
    particles = posterior.sample(cfg.seed, cfg.posterior_draws)
    configs = posterior.configs(cfg, particles)
    return [(configs[k // seeds], cfg.seed + k, int(particles[k // seeds]))
            for k in range(cfg.posterior_draws * seeds)]


def replicates_text(cfg: Config, seeds: Optional[int] = None) -> str:
    """What a comparison's replicates are, for titles: ``10 seeds`` or ``20 posterior draws x 2 seeds``."""
    seeds = cfg.seeds if seeds is None else seeds
    return f"{seeds} seeds" if cfg.posterior is None else f"{cfg.posterior_draws} posterior draws x {seeds} seeds"


def yearly_spend(cfg: Config, seeds: int, workers: int = 1, progress: bool = False, **batch) -> float:
    """Government's mean spend a year under ``cfg``'s regime (over seeds ``cfg.seed`` ..., and, with
    ``cfg.posterior``, over its draws as :func:`compare` runs them), whole yuan: the budget of a comparison at equal
    spend (``at_spend``)."""
    tasks = [(c, seed) for c, seed, _ in _replicates(cfg, seeds)]
    runs = run_batch(tasks, workers=workers, progress=progress, desc=f"spend of {cfg.regime.name}", **batch)
    return _per_year([r.summary["gov_spend"] for r in runs], cfg.scenario.months, cfg.regime.name)


class NoSpend(ConfigError):
    """The regime named for an equal-spend comparison spent no public money in these runs."""


def _per_year(spends, months: int, regime: str) -> float:
    """The mean of runs' government spend, per year, whole yuan (> 0: a budget)."""
    spend = float(np.mean(np.asarray(spends, dtype=float))) / (months / 12.0)
    if spend <= 0:
        raise NoSpend(f"at_spend = {regime}: that regime spends no public money; name one that does")
    return float(np.floor(spend))


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1))
