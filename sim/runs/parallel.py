"""Runs of validated configs: one run, a batch in this process, or a batch cut into chunks for a pool of processes.

What :func:`sim.api.simulate`, :func:`sim.api.run_batch` and :func:`sim.api.run_table` are (the API re-exports
them); every analysis runs its evaluations through :func:`run_validated` or :func:`run_batch`. Each chunk is a
batch of :func:`sim.runs.batch.run_chunk`.
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
from typing import Callable, Optional, Sequence

import numpy as np

from ..core.config import SEED_MAX, Config, ConfigError, load_config
from ..core.results import check_by_sector, check_deals, check_invariants


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
    deals: Optional[tuple] = None   # (values, forms) of the contracts signed, one by one (sim.core.results.deal_metrics)

    def check(self) -> None:
        """Raise :class:`sim.core.results.InvariantError` if the run broke an invariant of the model."""
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
    breaks one raises :class:`sim.core.results.InvariantError` instead of returning numbers.
    One run has ``cfg``'s own values: ``cfg.posterior`` is for comparisons (:func:`compare`; the configs
    of its draws are ``sim.runs.posterior.load_posterior(cfg.posterior).draws(cfg, n)``).
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
    """:func:`simulate` of a validated ``cfg``: a batch of one (:func:`sim.runs.batch.run_chunk`)."""
    from .batch import run_chunk

    seed = check_seed(cfg.seed if seed is None else seed)
    return run_chunk([(cfg, seed)], lambda c: c, RunResult, engine, check)[0]


def run_validated(tasks: Sequence[tuple[Config, int]]) -> list[RunResult]:
    """Run (config, seed) pairs of validated configs in this process as one batch (:func:`sim.runs.batch.run_chunk`):
    the runs of an analysis's evaluation (a calibration's candidate, a point of an exploration), each config's runs
    checked and summarised together."""
    from .batch import run_chunk

    return run_chunk([(cfg, check_seed(seed)) for cfg, seed in tasks], lambda c: c, RunResult)


ONE_BY_ONE = False   # the benchmark's switch to the reference path (sim.runs.batch.run_one_by_one), inherited by forks


def _run_chunk(tasks, columns: bool = False):
    """Run a chunk of (config, seed) tasks as one batch (:func:`sim.runs.batch.run_chunk`): each distinct config object
    validated once, its runs checked and summarised together (``columns``: as a :class:`sim.runs.batch.RunTable`)."""
    from .batch import run_chunk, run_one_by_one

    if ONE_BY_ONE and not columns:
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


def worker_chunk(tasks, columns: bool = False):
    """:func:`_run_chunk` in a worker process, with its pid, start time and the kernel loads it needed."""
    begun, loads = time.monotonic(), _kernel_loads()
    results = _run_chunk(tasks, columns)
    return os.getpid(), begun, _kernel_loads() - loads, results


def fork_is_safe() -> bool:
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


def progress_bar(total: int, desc: str, disable: bool = False):
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

    * **fork**, on Linux when :func:`fork_is_safe` (no thread but this one, no Numba
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
    """:func:`run_batch`, returning the runs as columns (:class:`sim.runs.batch.RunTable`: regime, seed and every
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
        bar = progress_bar(len(tasks), desc) if progress else None
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

    if fork_is_safe():  # the parent's run loads the kernels to be inherited
        parts.append(_run_chunk(tasks[:1], columns))
        n_done = 1
    rest = tasks[n_done:]
    method = "fork" if n_done and fork_is_safe() else "spawn"  # the same, after the parent's run
    chunks = _chunks(rest, workers, chunksize)
    processes = min(workers, len(chunks))
    pids, loads, begun = [], 0, []
    bar = None
    t0 = time.monotonic()
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context(method))
    try:
        futures = [pool.submit(worker_chunk, chunk, columns) for chunk in chunks]  # fork: all start at the first
        if progress:
            bar = progress_bar(len(tasks), desc)
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
    futures = [pool.submit(worker_chunk, chunk, columns) for chunk in _chunks(tasks, workers, chunksize)]
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
