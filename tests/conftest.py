"""Shared helpers: small scenarios composed from the real config files."""

from __future__ import annotations

import numpy as np
import pytest

from sim import api

# which tests share a pytest-xdist worker (a Slurm cluster, an expensive module fixture): see the module
from .xdist_groups import (  # noqa: F401
    pytest_collection_finish, pytest_unconfigure, pytest_xdist_make_scheduler, pytest_xdist_setupnodes)

# the real Slurm cluster, one a session: defined here only. A test module that imported the fixture itself would
# register a fixture of its own module, started again for that module (and kept running to the session's end)
from .slurm_cluster import slurm_cluster  # noqa: F401

# a small region that still has every kind of agent (fast enough for many seeds)
SMALL = (
    "scenario.firms.n=400",
    "scenario.universities.n=4",
    "scenario.universities.achievements_each=40",
    "scenario.months=36",
    "scenario.brokers.initial=6",
    "scenario.brokers.max=20",
    "progress=false",
)

# risk-averse SMEs (only SMEs, with the default cash): the population the instruments are
# meant for. Relative risk aversion 15 on net worth: at the median net worth (3x cash) the
# same CARA coefficient as the earlier default of 5 per yuan of cash, for which the tests'
# powers were measured; pinned, so that a change of the default does not change the test.
RISK_AVERSE_SMES = (
    "scenario.firms.n=1500",
    "scenario.firms.sme_share=1.0",
    "scenario.months=48",
    "scenario.firms.risk_aversion_sme=15",
    "progress=false",
)

REGIMES = ("baseline", "free_trial", "broker_reward", "insurance", "combined")


# Every failure an insured event, priced from a 60% failure prior: the broad cover (the model's product before it was
# calibrated to the reported premium rates of ~1.5%). Tests of budgets, equal spend, insurers' exits and the effect
# of insurance on adoption need its large premiums, subsidies and claims.
BROAD_INSURANCE = ("insurance.claim_share=1", "insurance.prior_failure=0.6")


def small(*overrides: str):
    return api.compose(*SMALL, *overrides)


@pytest.fixture(scope="session")
def small_cfg():
    return small()


def paired_effect(treated, control, metric, seeds):
    """The mean paired difference of ``metric`` between two configs over ``seeds`` (the same population and chance
    events under both: common random numbers), and the one-sided Wilcoxon signed-rank p-value that it is positive.

    ``metric`` is a run metric (:data:`sim.core.results.METRICS`) or a function of a run's summary."""
    from scipy import stats

    from sim.engines.numba import kernels
    from sim.core.population import draw_population
    from sim.core.results import summarize

    def value(cfg, seed, pop):
        series, n, _ = kernels.simulate(cfg, seed, pop)
        s = summarize(series, n, cfg.scenario.discount_rate)
        return metric(s) if callable(metric) else s[metric]

    d = []
    for seed in seeds:
        pop = draw_population(treated, seed)
        d.append(value(treated, seed, pop) - value(control, seed, pop))
    d = np.asarray(d, dtype=float)
    p = stats.wilcoxon(d, alternative="greater", zero_method="zsplit").pvalue if d.any() else 1.0
    return d.mean(), p


def abc_generations(db) -> int:
    """Generations an ABC history (``abc.db``) holds, read without locking it (0 while it is not readable)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute("select count(*) from populations where t >= 0").fetchone()[0])
    except sqlite3.Error:
        return 0


def kill_after_generations(proc, db, n: int, timeout: float = 300) -> None:
    """kill -9 a calibration (``proc``, started in a session of its own) and its workers once its history ``db``
    holds ``n`` generations."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while abc_generations(db) < n:
        assert proc.poll() is None and time.monotonic() < deadline, "the calibration ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

