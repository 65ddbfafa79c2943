"""Failure insurance (sim/instruments/insurance.py): the premium, the firm's valuation of a cover and its effort rest on
one probability of an insured event.

Closed form (the module's docstring): with ``K`` the claim (``coverage x cost`` rounded to the yuan, less the
deductible, at least 0), ``s = claim_share``, ``pi`` the share of a claim the firm counts on its insurer paying, an
insurer's prior failure rate ``f0`` of weight ``k`` and ``e`` insured events among ``n`` settled policies:

* premium ``= yuan((1 + loading) x (f0 x s x k + e) / (k + n) x K)``;
* the refund the firm counts on if it fails ``R = s x pi x K``;
* its success chance ``p`` falls to ``p x (1 - moral_hazard x min(1, R / cost))``.

Checked as equalities on the rules themselves (and at their boundaries: ``s`` 0 and 1, a claim of the whole cost, a
deductible that takes all of a cover or all but a yuan, an insurer that can pay half a claim), then on the terms a
firm of a one-firm world is offered and signs (Mesa engine; the Numba engine runs the same hooks and
tests/engines/test_engines.py checks the two agree).
"""

from __future__ import annotations

import math

import pytest

import numpy as np

from sim import api
from sim.core import columns, contracts, state
from sim.engines.numba import kernels
from sim.instruments import insurance as I
from sim.engines.mesa.model import TransferModel
from sim.core.population import draw_population

from ..conftest import small

# seeds no other suite uses
SEEDS_ONE = range(7400, 7430)
SEEDS_ZERO = (7450, 7451)


def _claim(cost, coverage, deductible):
    return max(0, math.floor(coverage * cost + 0.5) - math.floor(deductible))


@pytest.mark.parametrize("cost, coverage, deductible, s, pi, f0, loading, mh, p", [
    (1.0e6, 0.8, 2.0e4, 0.02, 1.0, 0.6, 0.3, 0.2, 0.5),    # the defaults
    (1.0e6, 0.8, 2.0e4, 0.0, 1.0, 0.6, 0.3, 0.2, 0.5),     # no failure is an insured event: nothing charged or shirked
    (1.0e6, 0.8, 2.0e4, 1.0, 1.0, 0.6, 0.3, 0.2, 0.5),     # every failure is
    (1.0e6, 1.0, 0.0, 1.0, 1.0, 0.6, 0.0, 0.2, 0.5),       # the whole cost refunded on every failure: the full fall
    (1.0e6, 1.0, 0.0, 0.5, 1.0, 0.6, 0.3, 0.2, 0.5),       # the whole cost, half the failures
    (1.0e6, 0.02, 2.0e4, 1.0, 1.0, 0.6, 0.3, 0.8, 0.5),    # the deductible takes the whole cover
    (1.0e6, 0.02, 19999.0, 1.0, 1.0, 0.6, 0.3, 0.8, 0.5),  # ... all but a yuan
    (3.7e5, 0.6, 1.0e4, 0.3, 0.5, 0.45, 0.25, 0.5, 0.8),   # an insurer that can pay half a claim
])
def test_premium_valuation_and_effort_rest_on_one_chance_of_an_insured_event(cost, coverage, deductible, s, pi, f0,
                                                                            loading, mh, p):
    k = 20.0
    K = I.claim_amount(cost, coverage, deductible)
    assert K == _claim(cost, coverage, deductible)
    # the probability of an insured event: a failure, and a certified one
    assert I.insured_event_chance(f0, s) == pytest.approx(f0 * s, rel=1e-15, abs=0.0)
    assert I.insured_event_chance(1.0, s) == s
    # the insurer's premium from its prior (no experience yet), and after e insured events in n policies
    q0 = I.failure_estimate(I.insured_event_chance(f0, s), k, 0, 0)
    assert q0 == pytest.approx(f0 * s, rel=1e-12, abs=0.0)
    assert I.premium(q0, K, loading) == math.floor((1 + loading) * f0 * s * K + 0.5)
    q = I.failure_estimate(I.insured_event_chance(f0, s), k, 3, 50)
    assert q == pytest.approx((f0 * s * k + 3) / (k + 50), rel=1e-12)
    # the firm's valuation: the refund it counts on if it fails
    R = I.expected_refund(s, pi, K)
    assert R == pytest.approx(s * pi * K, rel=1e-12, abs=0.0)
    # its effort: the same expected refund, as a share of the cost
    chance = I.insured_chance(p, mh, R, cost)
    assert chance == pytest.approx(p * (1 - mh * min(1.0, s * pi * K / cost)), rel=1e-12, abs=0.0)
    # the three together: at the true failure rate, without loading, the premium is the firm's expected refund
    if pi == 1.0:
        fair = I.premium(I.insured_event_chance(1 - chance, s), K, 0.0)
        assert abs(fair - (1 - chance) * R) <= 0.5
    # the boundaries
    if s == 0.0 or K == 0:
        assert I.premium(q0, K, loading) == 0 and R == 0.0 and chance == p
    if s == 1.0 and pi == 1.0 and K == cost:
        assert chance == pytest.approx(p * (1 - mh), rel=1e-15)


def test_effort_falls_with_the_expected_refund_not_the_cover():
    # the whole cover of a cost of 100, 2% of failures insured: the fall of a 2% refund, not of the whole cover
    assert I.insured_chance(0.5, 0.2, I.expected_refund(0.02, 1.0, 100.0), 100.0) == pytest.approx(
        0.5 * (1 - 0.2 * 0.02), rel=1e-15)
    assert I.insured_chance(0.5, 0.2, 150.0, 100.0) == pytest.approx(0.5 * 0.8, rel=1e-15)   # at most the whole cost
    assert I.insured_chance(0.5, 0.2, 80.0, 0.0) == 0.5   # no cost, nothing to shirk on


# one SME, one achievement, one university, no brokers: the firm finds the achievement at once; near risk-neutral,
# so that it buys a cover (risk aversion does not enter the closed form)
ONE = ("scenario.firms.n=1", "scenario.firms.sme_share=1.0", "scenario.sectors=1", "scenario.universities.n=1",
       "scenario.universities.achievements_each=1", "scenario.universities.arrivals_per_month=0",
       "scenario.universities.expiry_months=1200", "scenario.brokers.initial=0", "scenario.brokers.max=0",
       "scenario.firms.need_rate_sme=1", "scenario.firms.self_search_prob=1", "scenario.firms.list_match=1",
       "scenario.firms.risk_aversion_sme=0.01",
       "scenario.firms.risk_aversion_sigma=0", "scenario.months=60", "progress=false", "regime=insurance")


@pytest.mark.parametrize("s, f0, mh", [(0.02, 0.6, 0.2), (0.5, 0.5, 0.6), (1.0, 0.6, 0.8)])
def test_a_firm_is_offered_and_signs_the_closed_form(s, f0, mh):
    cfg = api.compose(*ONE, f"insurance.claim_share={s}", f"insurance.prior_failure={f0}",
                      f"insurance.moral_hazard={mh}")
    ins = cfg.insurance
    levels = I.coverage_levels(ins.coverage, ins.coverage_step)
    opened = 0
    for seed in SEEDS_ONE:
        m = TransferModel(cfg, seed)
        st = m.arrays
        insured_before = False
        for _ in range(cfg.scenario.months):
            m.step()
            just_insured = bool(st.c_insured[0]) and st.c_opened[0] == m.month - 1 and not insured_before
            insured_before = bool(st.c_insured[0])
            if not just_insured:
                continue
            opened += 1
            i, cost, claim = st.c_insurer[0], st.c_cost[0], st.c_claim[0]
            reserves = st.balance[st.acct_base[I.INSURER] + i]
            # one firm: no other running policy, and reserves far above any claim: the firm counts on all of it
            assert reserves - st.c_premium[0] >= cost
            rate = (f0 * s * ins.prior_strength + st.ins_failures[i]) / (ins.prior_strength + st.ins_observed[i])
            menu = st.covers[:levels]
            for j in range(levels):
                K = _claim(cost, min((j + 1) * ins.coverage_step, ins.coverage), ins.deductible)
                assert menu[j, state.COVER_AUX + 1] == K
                assert menu[j, state.COVER_AUX + 2] == math.floor((1 + ins.loading) * rate * K + 0.5)
                assert menu[j, state.COVER_REFUND] == pytest.approx(s * K, rel=1e-12, abs=0.0)
            assert claim in menu[:, state.COVER_AUX + 1]
            assert st.c_premium[0] == math.floor((1 + ins.loading) * rate * claim + 0.5)
            base = contracts.true_chance(m.p, m.st, 0, st.c_ach[0])
            assert st.c_chance[0] == pytest.approx(base * (1 - mh * min(1.0, s * claim / cost)), rel=1e-12, abs=0.0)
            break   # one decision a run: later ones would be the same check
    assert opened >= 5


def test_when_no_failure_is_an_insured_event_insurance_is_on_yet_the_run_is_the_baseline():
    # claim_share 0: covers are on offer, but at no premium, no refund counted and no effort lost; the firm takes none
    # (ties go to no cover), and every column insurance does not own is the baseline's
    on = small("regime=insurance", "insurance.claim_share=0")
    off = small("regime=baseline", "insurance.claim_share=0")
    own = [c for c, col in enumerate(columns.COLUMNS) if col.owner == I.NAME]
    for seed in SEEDS_ZERO:
        a = kernels.simulate(on, seed, draw_population(on, seed))[0]
        b = kernels.simulate(off, seed, draw_population(off, seed))[0]
        assert a[:, columns.SUCCESSES].sum() + a[:, columns.FAILURES].sum() > 0   # contracts were settled
        assert a[:, I.SIGNED_INSURED].sum() == 0 and a[:, I.PREMIUMS_FIRM].sum() == 0
        a[:, own], b[:, own] = 0, 0
        assert np.array_equal(a, b)
