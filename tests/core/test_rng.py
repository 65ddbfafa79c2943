"""The keyed generator: deterministic, uniform, and independent across keys."""

import numpy as np
import pytest
from scipy import stats

from sim.core import rng


def test_same_key_same_number_and_keys_differ():
    assert rng.uniform(7, rng.NEED, 3, 11) == rng.uniform(7, rng.NEED, 3, 11)
    draws = {rng.uniform(7, p, s, a) for p in (rng.NEED, rng.VISIT) for s in (0, 1) for a in (0, 1, 2)}
    assert len(draws) == 12  # every component of the key matters


def test_uniform_is_uniform_and_in_range():
    u = rng.uniform_array(123, rng.OUTCOME, 0, 50_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 0.001


def test_streams_of_different_purposes_are_uncorrelated():
    a = rng.uniform_array(5, rng.NEED, 4, 20_000)
    b = rng.uniform_array(5, rng.SURFACE, 4, 20_000)
    r, p = stats.pearsonr(a, b)
    assert p > 0.001, r


def test_normal_has_unit_variance():
    z = rng.normal_array(9, rng.SELF_NOISE, 2, 40_000)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    assert stats.kstest(z, "norm").pvalue > 0.001


def test_randint_covers_range_evenly():
    k = np.array([rng.randint(1, rng.VISIT, 0, i, 7) for i in range(14_000)])
    counts = np.bincount(k, minlength=7)
    assert k.min() == 0 and k.max() == 6
    assert stats.chisquare(counts).pvalue > 0.001


def test_population_step_minus_one_is_valid_key():
    assert rng.uniform(0, rng.POP_FIRM, -1, 0) != rng.uniform(0, rng.POP_FIRM, 0, 0)


def test_stream_hoisting_gives_the_same_draws():
    s = rng.stream(4, rng.NEED, 9)
    assert all(rng.uniform_in(s, a) == rng.uniform(4, rng.NEED, 9, a) for a in range(1000))


@pytest.mark.parametrize("a, b", [(6.0, 2.0), (2.0, 5.0), (0.5, 0.7), (3.0, 3.0)])
def test_keyed_beta_sampler_matches_the_beta_distribution(a, b):
    x = rng.beta_array(3, rng.POP_FIRM, 100, np.full(20_000, a), np.full(20_000, b))
    assert ((x > 0) & (x < 1)).all()
    assert stats.kstest(x, "beta", args=(a, b)).pvalue > 0.001
    # and it is keyed: the same call gives the same draws
    assert np.array_equal(x[:50], rng.beta_array(3, rng.POP_FIRM, 100, np.full(50, a), np.full(50, b)))


def _arrivals_by_definition(seed, universities, months, rate):
    """The definition of the arrivals (docs/explanation/model.md, "The portfolio lives", and
    scenario.universities.arrivals_per_month in docs/reference/parameters.md: each university discloses floor(rate)
    a month and one more with chance rate - floor(rate), its chance the month's uniform of stream (seed,
    POP_ARRIVAL, month)), in NumPy."""
    whole, frac = int(np.floor(rate)), rate - np.floor(rate)
    owners, born = [], []
    for m in range(1, months):
        n = whole + (rng.uniform_array(seed, rng.POP_ARRIVAL, m, universities) < frac)
        owners.append(np.repeat(np.arange(universities, dtype=np.int64), n))
        born.append(np.full(int(n.sum()), m, dtype=np.int64))
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(owners) if owners else empty), (np.concatenate(born) if born else empty)


@pytest.mark.parametrize("seed, universities, months, rate", [
    (0, 12, 60, 0.5), (7, 1, 2, 0.999), (3, 5, 36, 2.0), (3, 5, 36, 2.25), (11, 40, 120, 0.05), (1, 3, 1, 0.7),
    (2**62, 4, 24, 0.0), (5, 0, 12, 1.5), (9, 2, 0, 3.5),
])
def test_compiled_arrivals_equal_their_definition(seed, universities, months, rate):
    from sim.core.population import arrival_months

    owners, born = arrival_months(seed, universities, months, rate)
    want_owners, want_born = _arrivals_by_definition(seed, universities, months, rate)
    assert owners.dtype == born.dtype == np.int64
    np.testing.assert_array_equal(owners, want_owners)
    np.testing.assert_array_equal(born, want_born)
