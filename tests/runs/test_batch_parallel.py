"""run_batch on several processes: the same numbers as on one, forked from a warm parent when that is safe."""

import dataclasses
import os
import sys
import threading

import numpy as np
import pytest

from sim import api
from sim.runs import parallel
from sim.core.config import ConfigError

SMALL = ("scenario.firms.n=200", "scenario.months=12", "progress=false")


@pytest.fixture(scope="module")
def tasks():
    """A mixed batch: two engines, three regimes, seeds out of order, one config object per engine and regime."""
    configs = [api.under_regime(api.compose(*SMALL, f"engine={engine}"), regime)
               for engine, regime in [("numba", "combined"), ("numba", "baseline"), ("mesa", "free_trial")]]
    return [(configs[k % 3], seed) for k, seed in enumerate([5, 0, 3, 9, 1, 7, 2, 8, 4, 6, 11, 10])]


def _same(a, b):
    assert [(r.regime, r.seed) for r in a] == [(r.regime, r.seed) for r in b]
    for x, y in zip(a, b):
        assert x.series.dtype == y.series.dtype and x.series.shape == y.series.shape
        assert x.series.tobytes() == y.series.tobytes()  # bit for bit (NaN included)
        assert list(x.summary) == list(y.summary)
        for key in x.summary:  # nan where a ratio has no denominator: compared by its bits too
            assert type(x.summary[key]) is type(y.summary[key]), key
            assert np.asarray(x.summary[key]).tobytes() == np.asarray(y.summary[key]).tobytes(), key
        assert (x.n_achievements, x.initial_money) == (y.n_achievements, y.initial_money)


def test_results_do_not_depend_on_workers_or_chunksize(tasks):
    one = api.run_batch(tasks, workers=1)
    assert [(r.regime, r.seed) for r in one] == [(cfg.regime.name, seed) for cfg, seed in tasks]  # task order
    for workers, chunksize in [(2, None), (2, 1), (2, 5), (3, 2)]:
        _same(one, api.run_batch(tasks, workers=workers, chunksize=chunksize))
    assert len({r.summary["contracts"] for r in one}) > 1  # the runs differ from each other


@pytest.mark.skipif(sys.platform != "linux", reason="fork is used on Linux only")
def test_workers_are_forked_from_a_warm_parent_and_load_no_kernel(tasks):
    assert threading.active_count() == 1, f"a thread left alive by an earlier test: {threading.enumerate()}"
    numba_only = [t for t in tasks if t[0].engine == "numba"]
    api.run_batch(numba_only, workers=2, chunksize=2)
    info = parallel.last_batch
    assert info.start_method == "fork"
    assert info.in_parent == 1 and info.chunks == 4 and info.processes == 2
    assert os.getpid() not in info.worker_pids and 1 <= len(set(info.worker_pids)) <= 2
    # the parent ran the first task, so the children inherited the loaded kernels: none loaded any
    assert info.worker_kernel_loads == 0
    # and no thread was left behind (a tqdm monitor, say) to rule out fork in the next batch
    api.run_batch(numba_only[:3], workers=2, progress=True)
    assert threading.active_count() == 1
    api.run_batch(numba_only[:3], workers=2)
    assert parallel.last_batch.start_method == "fork"


def test_spawn_when_a_thread_is_alive(tasks):
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        spawned = api.run_batch(tasks, workers=2, chunksize=4)
        info = parallel.last_batch
    finally:
        stop.set()
        thread.join()
    assert info.start_method == "spawn" and info.in_parent == 0 and info.chunks == 3
    assert os.getpid() not in info.worker_pids
    assert info.worker_kernel_loads > 0  # fresh processes: each loads the kernels from Numba's cache
    _same(api.run_batch(tasks, workers=1), spawned)


def test_a_run_failing_in_a_worker_raises_in_the_parent(tasks):
    cfg = tasks[0][0]
    bad = dataclasses.replace(cfg, scenario=dataclasses.replace(cfg.scenario, months=0))  # validated in the worker
    batch = [(cfg, 0), (cfg, 1), (bad, 2), (cfg, 3)]
    with pytest.raises(ConfigError, match="scenario.months = 0: must be >= 1"):
        api.run_batch(batch, workers=2, chunksize=1)
    assert threading.active_count() == 1  # the pool is shut down
    assert len(api.run_batch(batch[:2] + batch[3:], workers=2, chunksize=1)) == 3
