"""The business rules, each checked against its definition."""

import math

import numpy as np
import pytest

from sim.core import contracts, forms, rules, state
from sim.instruments import broker_reward, free_trial, insurance


@pytest.mark.parametrize("value", [0, 1, 66, 67, 1_000_000, 19_999_999, 20_000_000, 20_000_067, 10**9])
def test_broker_reward_is_min_of_rate_times_value_and_cap(value):
    r = broker_reward.reward(value, 0.015, 300_000, 0)
    assert r == min(math.floor(0.015 * value), 300_000)
    assert r <= 300_000 and r <= 0.015 * value


def test_broker_reward_cap_is_per_project_across_payments():
    """Rewards on a project's successive payments never add up to more than the cap."""
    paid = 0
    for value in (10_000_000, 10_000_000, 10_000_000):
        paid += broker_reward.reward(value, 0.015, 300_000, paid)
    assert paid == 300_000  # 150k + 150k, then nothing left


def test_broker_reward_never_exceeds_cap_or_rate_on_random_contracts():
    gen = np.random.default_rng(1)
    for value, rate, cap in zip(gen.integers(0, 10**9, 2000), gen.uniform(0, 0.05, 2000), gen.uniform(0, 5e5, 2000)):
        r = broker_reward.reward(int(value), rate, cap, 0)
        assert 0 <= r <= cap and r <= rate * value


def test_certainty_equivalent_properties():
    # risk neutral: the expected value
    assert rules.certainty_equivalent(0.3, 100.0, -50.0, 0.0) == pytest.approx(0.3 * 100 - 0.7 * 50)
    # risk averse: below the expected value, and falling with risk aversion
    ev = 0.3 * 2e6 - 0.7 * 5e5
    ces = [rules.certainty_equivalent(0.3, 2e6, -5e5, r) for r in (1e-7, 1e-6, 3e-6)]
    assert all(ce < ev for ce in ces) and ces[0] > ces[1] > ces[2]
    # a sure thing is worth itself whatever the risk aversion
    assert rules.certainty_equivalent(1.0, 123.0, -1e9, 1e-3) == pytest.approx(123.0)
    # CARA is translation invariant (what makes the licence price closed-form)
    a = rules.certainty_equivalent(0.4, 1e6, -2e5, 2e-6)
    b = rules.certainty_equivalent(0.4, 1e6 - 1e5, -2e5 - 1e5, 2e-6)
    assert b == pytest.approx(a - 1e5)


def test_licence_price_between_reservation_and_willingness():
    assert rules.licence_price(100_000.0, 120_000.0, 0.5) == -1
    p = rules.licence_price(200_000.0, 100_000.0, 0.3)
    assert p == 130_000
    assert rules.licence_price(200_000.0, 100_000.0, 0.0) == 100_000
    assert rules.licence_price(200_000.0, 100_000.0, 1.0) == 200_000


def test_fee_split_adds_up_and_claim_amount():
    for fee in (0, 1, 999, 12345):
        a, b = rules.fee_split(fee, 0.37)
        assert a + b == fee and a >= 0 and b >= 0
    # the firm's part is firm_share of the fee (half up to the yuan), the university's the rest
    assert rules.fee_split(12345, 0.37) == (4568, 7777)          # 0.37 x 12,345 = 4,567.65
    assert rules.broker_fee(1_000_000, 0.02) == 20_000
    assert rules.firms_fee(1_000_000, 0.02, 0.3) == 6_000         # 0.3 of a 2% fee
    assert insurance.claim_amount(500_000, 0.8, 20_000) == 380_000
    assert insurance.claim_amount(10_000, 0.8, 20_000) == 0


def test_premium_and_subsidy():
    assert insurance.premium(0.5, 100_000, 0.3) == 65_000
    assert insurance.premium_subsidy(65_000, 0.5, 200_000) == 32_500
    assert insurance.premium_subsidy(1_000_000, 0.5, 200_000) == 200_000


def test_success_chance_grows_with_each_factor():
    base = rules.success_chance(0.8, 0.3, 0.4, 0.5, 0.4, 0.5, 0.5)
    assert 0 < base < 0.8
    assert rules.success_chance(0.8, 0.6, 0.4, 0.5, 0.4, 0.5, 0.5) > base
    assert rules.success_chance(0.8, 0.3, 0.8, 0.5, 0.4, 0.5, 0.5) > base
    assert rules.success_chance(0.8, 0.3, 0.4, 0.9, 0.4, 0.5, 0.5) > base
    assert rules.success_chance(0.8, 1.0, 1.0, 1.0, 0.4, 0.5, 0.5) == pytest.approx(0.8)


def test_negotiation_step_hazard_and_conclusion():
    assert rules.negotiation_step(0.05, 4.0, 0.1) == rules.BROKE_DOWN
    assert rules.negotiation_step(0.2, 4.0, 0.1) == rules.CONCLUDED   # 0.1 + 0.9 * 0.25 = 0.325
    assert rules.negotiation_step(0.5, 4.0, 0.1) == rules.CONTINUES
    assert rules.negotiation_step(0.99, 0.5, 0.1) == rules.CONCLUDED  # mean < 1 month: concludes now


LICENCE_ROW, TRIAL_ROW = 0, 1


def _choose(p=0.35, value=2_000_000, cost=400_000, cash=3_000_000, ra=4.0, trial=True, insurance=False,
            claim=0, firm_premium=0, fee_rate=0.0, fee_fixed=0.0):
    """(row chosen: 0 licence, 1 trial, -1 no deal; insured; price; CE) from the shared decision."""
    offers = np.zeros((state.MAX_OFFERS, 7))
    offers[0, state.OFFER_FORM], offers[0, state.OFFER_BARGAINED] = forms.LICENCE, 1
    offers[1, state.OFFER_FORM], offers[1, state.OFFER_ON_SUCCESS] = free_trial.TRIAL, 20_000
    covers = np.zeros((state.MAX_COVERS, 3 + state.N_COVER_AUX))
    covers[0, state.COVER_PREMIUM], covers[0, state.COVER_REFUND] = firm_premium, claim
    row, cover, price, ce, _, _ = contracts.choose_contract(
        p, value, cost, cash, rules.abs_risk_aversion(ra, cash), 300_000, 0.6, 0.5, offers, 2 if trial else 1,
        covers, 1 if insurance else 0, fee_rate, fee_fixed, 0.5, np.zeros(state.support_size()))
    return row, cover >= 0, price if row != TRIAL_ROW else int(offers[1, state.OFFER_ON_SUCCESS]), ce


def test_trial_chosen_over_licence_when_allowed_and_risk_averse():
    # at p = 0.5 this risk-averse SME buys no licence, but takes the free trial
    assert _choose(p=0.5, trial=False)[0] == -1
    form, insured, price, ce = _choose(p=0.5, trial=True)
    assert form == TRIAL_ROW and price == 20_000 and not insured and ce > 0
    # more confident, it would license; the trial still gives it more
    form_l, _, price_l, ce_l = _choose(p=0.6, trial=False)
    assert form_l == LICENCE_ROW and 180_000 <= price_l <= 300_000 and ce_l > 0
    assert _choose(p=0.6, trial=True)[3] > ce_l


def test_no_deal_when_unaffordable_or_unattractive():
    assert _choose(p=0.6, cash=300_000)[0] == -1   # cannot pay the implementation cost
    assert _choose(p=0.05)[0] == -1                # not worth it


def test_subsidised_insurance_makes_a_risk_averse_firm_sign():
    assert _choose(p=0.5, trial=False)[0] == -1
    form, insured, _, _ = _choose(p=0.5, trial=False, insurance=True, claim=300_000, firm_premium=120_000)
    assert form == LICENCE_ROW and insured


def test_broker_fee_reduces_the_firms_value_of_a_deal():
    ce_without = _choose(p=0.6, trial=False)[3]
    ce_with = _choose(p=0.6, trial=False, fee_rate=0.05, fee_fixed=5000)[3]
    assert 0 < ce_with < ce_without
