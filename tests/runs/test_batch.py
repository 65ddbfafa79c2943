"""A chunk of runs as one batch (sim.runs.batch): the same numbers and the same checks as run by run.

The batch path validates each config once, draws each population once (a cache by scenario and
seed), and checks and summarises the runs of a config with one NumPy operation over them all.
Here it is held to the reference path (``sim.runs.batch.run_one_by_one``: every run drawn, run,
checked and summarised alone, the path before batches) bit for bit, and its checks to the
single-run checks failure for failure, message for message.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim import api
from sim.runs import batch
from sim.core import columns as C
from sim.core.config import ConfigError, load_config
from sim.core.population import draw_population
from sim.core.results import (InvariantError, N_SERIES, check_invariants, cumulative, ratio, summarize, summarize_runs)

SMALL = ("scenario.firms.n=150", "scenario.months=14", "progress=false")


def _same(a, b):
    assert [(r.regime, r.seed) for r in a] == [(r.regime, r.seed) for r in b]
    for x, y in zip(a, b):
        assert x.series.tobytes() == y.series.tobytes()
        assert list(x.summary) == list(y.summary)   # the metrics in the same order (summary.csv's columns)
        for key in x.summary:                       # NaN included: compared by their bits, and as Python floats
            assert type(x.summary[key]) is float and type(y.summary[key]) is float, key
            assert np.float64(x.summary[key]).tobytes() == np.float64(y.summary[key]).tobytes(), key
        assert (x.n_achievements, x.initial_money) == (y.n_achievements, y.initial_money)
        assert x.by_sector.tobytes() == y.by_sector.tobytes()
        assert x.deals[0].tobytes() == y.deals[0].tobytes() and x.deals[1].tobytes() == y.deals[1].tobytes()


@pytest.fixture(scope="module")
def mixed_tasks():
    """Every regime and a mix on two scenarios, interleaved (a chunk holds several configs), seeds out of order."""
    configs = []
    for scenario in ("default", "lishui"):
        base = api.compose(*SMALL, f"scenario={scenario}", "scenario.firms.n=150")
        configs += [api.under_regime(base, r) for r in api.regime_names() + ["free_trial+ip_pledge"]]
    seeds = [913, 27, 40_001, 5]
    return [(configs[k % len(configs)], seeds[k % len(seeds)]) for k in range(2 * len(configs) + 3)]


def test_a_batch_gives_the_numbers_of_runs_one_by_one(mixed_tasks):
    batch.populations.clear()
    reference = batch.run_one_by_one(mixed_tasks, load_config, api.RunResult)
    _same(reference, api.run_batch(mixed_tasks))                  # chunks of 64: every config in one chunk
    _same(reference, api.run_batch(mixed_tasks, chunksize=5))     # a config's runs split over chunks
    assert batch.populations.hits > 0                               # the regimes shared their populations
    assert len({r.summary["contracts"] for r in reference}) > 3     # the runs differ


def test_a_run_alone_is_a_batch_of_one(mixed_tasks):
    cfg, seed = mixed_tasks[-1]
    alone = api.simulate(cfg, seed)
    _same([alone], api.run_batch([(cfg, seed)]))
    _same([alone], batch.run_one_by_one([(cfg, seed)], load_config, api.RunResult))


@pytest.mark.parametrize("engine", ["numba", "mesa"])
def test_a_run_leaves_its_population_as_drawn(engine):
    """What makes the population cache safe: no engine writes to the arrays of a population it was given."""
    base = api.compose(*SMALL, f"engine={engine}")
    for regime in (api.regime_names() if engine == "numba" else ["combined"]):
        cfg = api.under_regime(base, regime)
        batch.populations.clear()
        api.simulate(cfg, 77)
        (kept, _), = batch.populations._kept.values()
        fresh = draw_population(cfg, 77)
        for field in dataclasses.fields(fresh):
            a, b = getattr(kept, field.name), getattr(fresh, field.name)
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), (regime, field.name)


def test_the_population_cache_stays_within_its_bytes():
    cfg = load_config(api.compose(*SMALL))
    one = sum(v.nbytes for v in vars(draw_population(cfg, 0)).values() if isinstance(v, np.ndarray))
    cache = batch.PopulationCache(max_bytes=4 * one + one // 2)   # room for four populations of about this size
    for seed in range(12):
        pop = cache.get(cfg, repr(cfg.scenario), seed)
        assert pop.seed == seed
        assert cache._bytes <= cache.max_bytes
    assert 2 <= len(cache._kept) <= 5
    assert [k[1] for k in cache._kept][-1] == 11                     # the latest kept, the oldest gone
    assert cache.get(cfg, repr(cfg.scenario), 11) is cache._kept[(repr(cfg.scenario), 11)][0]
    assert (cache.hits, cache.misses) == (1, 12)
    too_big = batch.PopulationCache(max_bytes=3 * one)              # a population over a quarter is not kept
    too_big.get(cfg, repr(cfg.scenario), 0)
    assert len(too_big._kept) == 0


# --------------------------------------------------------------------------- the checks of a batch
@pytest.fixture(scope="module")
def runs():
    cfg = load_config(api.under_regime(api.compose(*SMALL), "combined"))
    return cfg, [api.simulate(cfg, seed) for seed in (3, 4, 5)]


def _stack(results):
    return (np.stack([r.series for r in results]), [r.n_achievements for r in results],
            [r.initial_money for r in results])


def _message(series, n_ach, money, cfg):
    try:
        check_invariants(series, n_ach, money, cfg)
    except InvariantError as e:
        return str(e), getattr(e, "run", None)
    return None, None


def test_a_batch_check_fails_exactly_where_a_run_alone_fails(runs):
    """Random corruptions of one run of a batch (a cell moved by a whole yuan or by a fraction, a sign flipped):
    the batch raises if and only if that run alone does, with the same message, naming the run."""
    cfg, results = runs
    series, n_ach, money = _stack(results)
    assert _message(series, n_ach, money, cfg) == (None, None)
    rng = np.random.default_rng(2024)
    raised = 0
    for _ in range(300):
        bad = series.copy()
        r, m, col = rng.integers(3), rng.integers(series.shape[1]), rng.integers(N_SERIES)
        bad[r, m, col] = [bad[r, m, col] + 1, bad[r, m, col] - 0.5, -bad[r, m, col] - 1][rng.integers(3)]
        alone, _ = _message(bad[r], n_ach[r], money[r], cfg)
        together, which = _message(bad, n_ach, money, cfg)
        assert together == alone
        if alone is not None:
            raised += 1
            assert which == r
    assert raised > 100   # most corruptions break something: the comparison is not vacuous


def test_the_first_run_in_task_order_that_breaks_an_invariant_raises(runs, monkeypatch):
    """Two runs of a chunk broken, by checks that come late (seed 4: a funnel) and early (seed 5: statuses) in the
    order of checks: the chunk raises seed 4's, the first in task order, with the message it has alone."""
    cfg, _ = runs
    real = batch.RunPlan.run

    def broken(self, seed, reuse=True):
        raw = real(self, seed, reuse)
        if seed == 4:
            raw.series[:, C.NEEDS_RAISED] += 1e6      # more needs than firms: checked after the statuses
        if seed == 5:
            raw.series[2, C.STATUS_COLUMNS[0]] += 1   # an achievement counted twice
        return raw

    alone = {}
    for seed in (4, 5):
        raw = broken(batch.RunPlan(cfg), seed)
        alone[seed] = _message(raw.series, raw.n_achievements, raw.initial_money, cfg)[0]
    assert alone[4] and alone[5] and alone[4] != alone[5]
    monkeypatch.setattr(batch.RunPlan, "run", broken)
    with pytest.raises(InvariantError) as e:
        api.run_batch([(cfg, 3), (cfg, 4), (cfg, 5), (cfg, 6)])
    assert str(e.value) == alone[4]
    with pytest.raises(InvariantError) as e:
        api.run_batch([(cfg, 5), (cfg, 4)])
    assert str(e.value) == alone[5]


# --------------------------------------------------------------------------- the batch forms of the sums
def test_summaries_of_a_batch_are_those_of_each_run(runs):
    cfg, results = runs
    series, n_ach, _ = _stack(results)
    deals = [r.deals for r in results]
    columns = summarize_runs(series, n_ach, 0.05, deals)
    for k, r in enumerate(results):
        alone = summarize(r.series, r.n_achievements, 0.05, r.deals)
        assert list(alone) == list(columns)
        assert np.array_equal([alone[name] for name in columns], [columns[name][k] for name in columns],
                              equal_nan=True)


def test_running_totals_are_numpys_cumsum():
    rng = np.random.default_rng(7)
    for _ in range(50):
        s = rng.standard_normal((rng.integers(1, 6), rng.integers(1, 40), rng.integers(1, 30))) * 1e7
        assert cumulative(s).tobytes() == np.ascontiguousarray(np.cumsum(s, axis=1)).tobytes()


def test_ratio_is_a_division_where_the_denominator_is_not_zero():
    num, den = np.array([1.0, 3.0, 5.0, 7.0]), np.array([2.0, 0.0, -4.0, np.nan])
    out = ratio(num, den)
    assert out[0] == 0.5 and np.isnan(out[1]) and out[2] == -1.25 and np.isnan(out[3])
    assert np.isnan(ratio(num, den, den > 0)[2])   # an explicit condition: > 0 only


def test_an_earlier_run_broken_by_sector_raises_before_a_later_run_broken_in_its_series(runs, monkeypatch):
    """Run by run, run 0's funnel by sector is checked before run 1 is even run: its error comes first, though run 1
    breaks an invariant of the series (checked for the whole batch before the by-sector checks)."""
    cfg, _ = runs
    real = batch.RunPlan.run

    def broken(self, seed, reuse=True):
        raw = real(self, seed, reuse)
        if seed == 3:
            raw.by_sector[5, 0, 0] += 1               # a match by sector too many
        if seed == 4:
            raw.series[2, C.STATUS_COLUMNS[0]] += 1   # an achievement counted twice
        return raw

    monkeypatch.setattr(batch.RunPlan, "run", broken)
    tasks = [(cfg, 3), (cfg, 4)]
    with pytest.raises(InvariantError) as alone:
        batch.run_one_by_one(tasks, load_config, api.RunResult)
    assert "by sector" in str(alone.value)
    with pytest.raises(InvariantError) as together:
        api.run_batch(tasks)
    assert str(together.value) == str(alone.value)


def test_a_results_seed_is_a_python_int_whatever_the_callers_integer_type(runs):
    cfg, _ = runs
    for seed in (np.int64(3), np.uint32(3)):
        r, = api.run_batch([(cfg, seed)])
        assert type(r.seed) is int and r.seed == 3


def test_a_run_that_breaks_an_invariant_raises_before_a_later_task_that_cannot_run(runs, monkeypatch):
    """Run by run, run 0 is checked before task 1 is tried: its broken invariant comes first, not task 1's refusal
    (here its money, refused by a stand-in for check_money); with nothing broken before it, the refusal itself."""
    cfg, _ = runs
    real_run, real_money = batch.RunPlan.run, batch.check_money

    def broken(self, seed, reuse=True):
        raw = real_run(self, seed, reuse)
        if seed == 3:
            raw.series[2, C.STATUS_COLUMNS[0]] += 1   # an achievement counted twice
        return raw

    def refuse_seed_4(cfg, pop):
        if pop.seed == 4:
            raise ConfigError("scenario (seed 4): refused (a stand-in)")
        real_money(cfg, pop)

    monkeypatch.setattr(batch.RunPlan, "run", broken)
    monkeypatch.setattr(batch, "check_money", refuse_seed_4)
    with pytest.raises(InvariantError, match="statuses add up"):
        batch.run_one_by_one([(cfg, 3), (cfg, 4)], load_config, api.RunResult)
    with pytest.raises(InvariantError, match="statuses add up"):
        api.run_batch([(cfg, 3), (cfg, 4)])
    with pytest.raises(ConfigError, match="a stand-in"):
        api.run_batch([(cfg, 5), (cfg, 4), (cfg, 3)])


def test_a_metric_must_have_one_value_per_run(runs, monkeypatch):
    """An instrument's metric computed for the whole batch (one value, from its first run say) is refused, never
    stretched over the runs."""
    from sim.instruments import insurance

    cfg, results = runs
    series, n_ach, _ = _stack(results)
    good = summarize_runs(series, n_ach)
    monkeypatch.setattr(insurance, "summarize", lambda totals, s: {"loss_ratio": float(totals["claims"][0])})
    with pytest.raises(ValueError, match="metric loss_ratio: 3 values expected"):
        summarize_runs(series, n_ach)
    monkeypatch.setattr(insurance, "summarize", lambda totals, s: {"loss_ratio": totals["claims"] * 0 + 1})
    assert np.array_equal(summarize_runs(series, n_ach)["loss_ratio"], np.ones(3))
    assert len(good["loss_ratio"]) == 3


def test_a_table_of_runs_holds_the_numbers_of_the_runs(mixed_tasks):
    """api.run_table: the runs as columns, in task order, on one process or two, chunks splitting a config's runs:
    the same regimes, seeds and metrics, bit for bit, as api.run_batch's runs."""
    from sim.core.results import METRICS

    runs = api.run_batch(mixed_tasks)
    for kw in ({}, {"workers": 2}, {"workers": 2, "chunksize": 3}):
        table = api.run_table(mixed_tasks, **kw)
        assert len(table) == len(runs)
        assert list(table.regime) == [r.regime for r in runs] and list(table.seed) == [r.seed for r in runs]
        assert list(table.n_achievements) == [r.n_achievements for r in runs]
        assert list(table.metrics) == list(METRICS) == list(runs[0].summary)
        for name, values in table.metrics.items():
            assert values.tobytes() == np.array([r.summary[name] for r in runs]).tobytes(), name
    frame = table.frame()
    assert list(frame.columns[:2]) == ["regime", "seed"] and len(frame) == len(runs)
    assert frame["contracts"].tolist() == [r.summary["contracts"] for r in runs]


def test_a_table_checks_every_run_as_a_batch_does(runs, monkeypatch):
    cfg, _ = runs
    real = batch.RunPlan.run

    def broken(self, seed, reuse=True):
        raw = real(self, seed, reuse)
        if seed == 4:
            raw.series[2, C.STATUS_COLUMNS[0]] += 1   # an achievement counted twice
        return raw

    monkeypatch.setattr(batch.RunPlan, "run", broken)
    with pytest.raises(InvariantError, match="statuses add up") as batch_error:
        api.run_batch([(cfg, 3), (cfg, 4)])
    with pytest.raises(InvariantError) as table_error:
        api.run_table([(cfg, 3), (cfg, 4)])
    assert str(table_error.value) == str(batch_error.value)


def test_a_sum_over_payment_kinds_is_pythons_sum_bit_for_bit():
    """results._sum_of, run by run, is ``sum(sign * value for ...)`` from the integer 0 as a run alone summed it:
    zeros' signs (-0.0 + -0.0 is -0.0, Python's sum from 0 gives 0.0), infinities times a zero sign (NaN), order."""
    from sim.core.results import _sum_of

    rng = np.random.default_rng(11)
    pool = np.array([-0.0, 0.0, np.inf, -np.inf, np.nan, 1e16, 1.0, -1.0, 0.1, 3.5e-7])
    for _ in range(400):
        runs, cols, k = rng.integers(1, 4), rng.integers(1, 9), rng.integers(0, 7)
        values = np.where(rng.random((runs, cols)) < 0.6, rng.choice(pool, (runs, cols)),
                          rng.standard_normal((runs, cols)) * 1e8)
        columns = rng.integers(0, cols, k)
        signs = rng.integers(-1, 2, (2, k))
        for rows in (signs[0], signs):
            with np.errstate(invalid="ignore", over="ignore"):   # inf - inf is NaN here and in a run's sums alike
                got = _sum_of(values, columns, rows)
            for r in range(runs):
                for j, row in enumerate(np.atleast_2d(rows)):
                    with np.errstate(invalid="ignore", over="ignore"):
                        want = float(sum(int(s) * values[r, c] for c, s in zip(columns, row)))
                    have = got[r] if np.ndim(rows) == 1 else got[r, j]
                    same = np.isnan(want) and np.isnan(have) or np.float64(have).tobytes() == np.float64(want).tobytes()
                    assert same, (values[r], columns, row)   # a NaN is a NaN (its sign bit is no number)


def test_a_runs_quantiles_of_contract_values_are_numpys_one_by_one():
    from sim.core.results import deal_metrics

    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 10, 101):
        values = np.round(rng.lognormal(12, 2, n))
        out = deal_metrics(values, np.ones(n, dtype=np.int64))
        for q in (10, 50, 90):
            assert out[f"contract_value_p{q}"] == float(np.quantile(values, q / 100.0))
