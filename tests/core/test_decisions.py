"""Decisions and accounts against closed forms on one firm and one achievement, and the budget rule.

Each test can fail: a closed form with a binomial tolerance over enough seeds, or a bound
checked on every budget year of many runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from sim import api
from sim.core import contracts, forms, rules, state
from sim.engines.numba import kernels
from sim.core import columns as C
from sim.instruments import free_trial, insurance
from sim.core.population import draw_population
from sim.analysis.stats import mean_ci

from ..conftest import BROAD_INSURANCE, SMALL as SMALL_RUN
from sim.core.results import InvariantError, _check_budget, check_invariants, gov_kinds, summarize

NO_SUPPORT = np.zeros(state.support_size())
ONE_PAIR = ("scenario.firms.n=1", "scenario.universities.n=1", "scenario.universities.achievements_each=1",
            "scenario.firms.need_rate_sme=1.0", "scenario.firms.need_rate_large=1.0",
            "scenario.firms.self_search_prob=1.0", "scenario.universities.max_failures=1000",
            "scenario.firms.prior_strength=1e6", "scenario.firms.peer_weight=0",  # a failure does not deter
            "scenario.sectors=1", "scenario.achievements.ask_share=0.01",  # the pair can meet and agree
            "scenario.months=240", "progress=false")


def test_a_pair_implementing_again_draws_its_outcome_afresh():
    # One firm, one achievement: after a failure the firm may implement the same achievement
    # again. Each attempt succeeds with the pair's true chance c, independently: over the
    # runs with a second attempt, the successes of that attempt are Binomial-like with mean
    # sum(c). (Keyed by the pair alone, the first outcome repeated itself: no success ever
    # followed a failure.)
    cfg = api.under_regime(api.compose(*ONE_PAIR), "baseline")
    successes, expected, variance, seconds = 0, 0.0, 0.0, 0
    for seed in range(3000):
        series, _, _, arrays = kernels.run(cfg, seed)
        outcomes = [o for s, f in zip(series[:, C.SUCCESSES], series[:, C.FAILURES]) for o in [1] * int(s) + [0] * int(f)]
        if len(outcomes) >= 2 and outcomes[0] == 0:
            c = float(arrays.c_chance[0])
            seconds += 1
            successes += outcomes[1]
            expected += c
            variance += c * (1 - c)
    assert seconds >= 200
    assert abs(successes - expected) < 4 * math.sqrt(variance), (successes, expected, seconds)


@pytest.mark.parametrize("chance, fee, months, ra", [(0.4, 2e6, 24, 1.0), (0.9, 1.5e6, 12, 0.0), (0.2, 5e6, 36, 3.0)])
def test_the_university_offers_a_form_when_its_certainty_equivalent_reaches_its_reservation(chance, fee, months, ra):
    # Closed form: CARA with coefficient ra/ask over (fee discounted by (1+r)^(-months/12) w.p. chance, else 0).
    ask, share, r = 1e6, 0.6, 0.08
    pv = fee * (1 + r) ** (-months / 12)
    a = ra / ask
    ce = chance * pv if ra == 0 else -math.log(chance * math.exp(-a * pv) + 1 - chance) / a
    assert rules.discount_factor(r, months) * fee == pytest.approx(pv, rel=1e-12)
    assert rules.university_accepts(chance, 0, pv, ra, ask, share) == (ce >= share * ask)
    # at its reservation exactly, it offers; a yuan of certainty equivalent less, it does not
    assert rules.university_accepts(1.0, 0, share * ask, ra, ask, share)
    assert not rules.university_accepts(1.0, 0, share * ask - 1, ra, ask, share)
    assert rules.discount_factor(0.0, months) == 1.0  # no discounting at a zero rate


def test_obliged_universities_offer_every_trial_the_others_only_when_worth_it():
    # Pilot share 1: every match weighed has a trial on offer. Share 0 with Tianjin's fixed fee (20,000
    # yuan against a reservation of 0.6 x an asking price of ~1 M): none is worth it, none offered.
    for share, offered in [(1.0, True), (0.0, False)]:
        cfg = api.under_regime(api.compose("scenario.firms.n=300", "scenario.months=24", "progress=false",
                                           "free_trial.payment=fixed_fee",
                                           f"scenario.universities.pilot_share={share}"), "free_trial")
        s = kernels.simulate(cfg, 0)[0]
        weighed = s[:, free_trial.TRIALS_OFFERED].sum() + s[:, free_trial.TRIALS_DECLINED].sum()
        assert weighed > 50
        assert s[:, free_trial.TRIALS_OFFERED].sum() == (weighed if offered else 0)
        assert (s[:, forms.FORMS[free_trial.TRIAL].column].sum() > 0) == offered


TIGHT = ("government.annual_budget=3e6", *BROAD_INSURANCE, "progress=false")


@pytest.mark.parametrize("regime", ["insurance", "combined"])
def test_government_pays_at_most_its_budget_in_every_budget_year(regime):
    # Premium subsidies are promised when a firm decides and paid at signing, often in the
    # next year: the promise counts in both years, so each year's payments stay within the cap.
    cfg = api.under_regime(api.compose(*TIGHT), regime)
    budget = cfg.government.annual_budget
    fullest = 0.0
    for seed in range(25):
        series, n_ach, money = kernels.simulate(cfg, seed)
        paid = sum(series[:, k.column] for k in gov_kinds())
        years = [paid[m:m + 12].sum() for m in range(0, series.shape[0], 12)]
        assert max(years) <= budget
        fullest = max(fullest, max(years))
        check_invariants(series, n_ach, money, cfg)  # the same bound, checked in every run
    assert fullest > 0.9 * budget  # the budget binds: the bound is tested where it matters


def test_the_invariant_catches_a_year_over_budget():
    cfg = api.under_regime(api.compose(*TIGHT), "insurance")
    series, n_ach, money = kernels.simulate(cfg, 0)
    check_invariants(series, n_ach, money, cfg)
    over = series.copy()
    kind = gov_kinds()[0].column
    over[13, kind] += cfg.government.annual_budget  # paid twice a year's budget in year 1
    with pytest.raises(InvariantError, match="budget year 1"):
        _check_budget(over, cfg)


LIVING = ("scenario.firms.n=400", "scenario.months=48", "scenario.universities.arrivals_per_month=2.5",
          "scenario.universities.expiry_months=12", "scenario.achievements.use_months=6",
          "scenario.achievements.ask_share=0.02", "progress=false")


def test_arrivals_follow_their_rate():
    # each university discloses floor(2.5) = 2 a month and a third with chance 0.5, months 1..47
    cfg = api.under_regime(api.compose(*LIVING), "baseline")
    u, months = cfg.scenario.universities.n, cfg.scenario.months
    got = [draw_population(cfg, seed).n_achievements - u * cfg.scenario.universities.achievements_each
           for seed in range(20)]
    assert min(got) >= 2 * u * (months - 1)
    expected, sd = 2.5 * u * (months - 1), math.sqrt(0.25 * u * (months - 1))
    assert abs(np.mean(got) - expected) < 4 * sd / math.sqrt(len(got))


@pytest.mark.parametrize("regime", ["baseline", "combined"])
def test_a_living_portfolio_keeps_its_rules_and_conserves_money(regime):
    cfg = api.under_regime(api.compose(*LIVING), regime)
    a0 = cfg.scenario.universities.n * cfg.scenario.universities.achievements_each
    ended = 0
    for seed in range(4):
        series, n_ach, money, arr = kernels.run(cfg, seed)
        check_invariants(series, n_ach, money, cfg)  # money conserved, one status each, funnel, instruments' rules
        assert series[:, C.ARRIVALS].sum() == n_ach - a0 == (arr.ach_born > 0).sum()
        last = cfg.scenario.months - 1
        shelved = arr.ach_status == rules.SHELVED
        assert (last - arr.ach_born[shelved] < cfg.scenario.universities.expiry_months).all()   # none overdue
        in_use = arr.ach_status == rules.IN_USE
        assert (last - arr.ach_in_use_since[in_use] < cfg.scenario.achievements.use_months).all()
        assert (arr.ach_born[arr.ach_status == rules.NOT_YET] > last).all()                     # all disclosed
        for col in (C.EXPIRED, C.USE_ENDED):                                                   # terminal states
            assert (np.diff(series[:, col]) >= 0).all()
        ended += series[-1, C.USE_ENDED]
        out = summarize(series, n_ach)
        existing = n_ach - series[:, C.NOT_YET] - series[:, C.EXPIRED] - series[:, C.USE_ENDED]
        assert out["conversion_rate_per_year"] * (cfg.scenario.months / 12) * existing.mean() == pytest.approx(
            out["successes"], rel=1e-12)
    assert ended > 0


@pytest.mark.parametrize("fee, value, absorbed, v, k, ra", [
    (1e6, 5e6, 0.9, 0.2, 1.0, 0.0), (1e6, 5e6, 0.5, 0.2, 1.0, 0.0), (1e6, 5e6, 0.9, 0.5, 1.0, 0.0),
    (2e4, 5e6, 0.95, 0.0, 0.0, 0.0), (1e6, 5e6, 0.9, 0.2, 1.0, 1e-6), (1e6, 2e6, 0.8, 0.1, 0.5, 3e-7)])
def test_a_firm_misreports_a_trial_when_the_lie_is_worth_more_to_it(fee, value, absorbed, v, k, ra):
    # Closed form: CE of (found out w.p. v: value - fee - k fee; else absorbed x value) against value - fee.
    caught, kept = value - fee - k * fee, absorbed * value
    if ra == 0:
        ce = v * caught + (1 - v) * kept
    else:
        ce = -math.log(v * math.exp(-ra * caught) + (1 - v) * math.exp(-ra * kept)) / ra
    assert free_trial.misreports(fee, value, absorbed, v, k, ra) == (ce > value - fee)


def test_moral_hazard_lowers_an_insured_chance_with_the_share_refunded():
    # the third argument is the expected refund on failure (insurance.expected_refund); tests/instruments/test_insurance.py
    # checks it against the premium and the firm's valuation
    assert insurance.insured_chance(0.5, 0.2, 80.0, 100.0) == pytest.approx(0.5 * (1 - 0.2 * 0.8))
    assert insurance.insured_chance(0.5, 0.0, 80.0, 100.0) == 0.5
    # a deductible lowers the share refunded, and with it the fall in effort
    assert insurance.insured_chance(0.5, 0.2, 60.0, 100.0) > insurance.insured_chance(0.5, 0.2, 80.0, 100.0)


TEMPTED = ("scenario.firms.n=600", "scenario.months=48", "scenario.firms.sme_share=0.0",
           "scenario.firms.absorptive_large_a=9", "scenario.firms.absorptive_large_b=1",
           "scenario.universities.pilot_share=1", "free_trial.payment=fixed_fee", "free_trial.price_share=1.0",
           "progress=false")


def test_verification_raises_the_trial_fees_collected():
    # Full-price pay-later with firms that absorb most of what they try: false reports pay
    # when rarely found out. Paired over seeds (same firms, same outcomes): verification
    # turns false reports into fees (and penalties).
    d_fees, misreported = [], 0
    for seed in range(12):
        low = api.simulate(api.under_regime(api.compose(*TEMPTED, "free_trial.verification=0.05"), "free_trial"), seed,
                           "numba").summary
        high = api.simulate(api.under_regime(api.compose(*TEMPTED, "free_trial.verification=0.9"), "free_trial"), seed,
                            "numba").summary
        d_fees.append(high["trial_payments"] - low["trial_payments"])
        misreported += low["trials_misreported"]
        assert high["trials_misreported"] <= low["trials_misreported"]
    assert misreported > 10
    assert mean_ci(d_fees)[1] > 0


def test_moral_hazard_raises_insured_failures():
    # effort falls with the expected refund (claim_share x claim): the broad cover, where it is the whole claim
    d = []
    for seed in range(10):
        runs = [api.simulate(api.under_regime(api.compose("scenario.firms.n=600", "scenario.months=48",
                                                          *BROAD_INSURANCE, "progress=false",
                                                          f"insurance.moral_hazard={mh}"),
                                              "insurance"), seed, "numba").summary for mh in (0.0, 0.8)]
        rate = [r["failures"] / (r["successes"] + r["failures"]) for r in runs]
        d.append(rate[1] - rate[0])
    assert mean_ci(d)[1] > 0


def _licence_only():
    offers = np.zeros((state.MAX_OFFERS, 7))
    offers[0, state.OFFER_BARGAINED] = 1
    return offers


def _menu(levels, cost, premium_rate, claim_share):
    covers = np.zeros((state.MAX_COVERS, 3 + state.N_COVER_AUX))
    for k, c in enumerate(levels):
        covers[k, state.COVER_PREMIUM] = round(premium_rate * c * cost)
        covers[k, state.COVER_REFUND] = claim_share * c * cost
    return covers


def test_the_firm_takes_the_cover_with_the_highest_certainty_equivalent():
    # Closed form: the licence is bargained at price = b (willingness - reservation) + reservation, willingness being
    # the CE of the project with the cover; the firm's CE is then CE0 - price. It picks the cover (or none) that
    # maximises it.
    p, value, cost, cash, ra, ask, res, b = 0.6, 5e6, 1e6, 3e6, 5e-7, 1e6, 0.3, 0.5
    levels = (0.2, 0.4, 0.6, 0.8)
    covers = _menu(levels, cost, 0.42, 0.9)   # loaded: 0.42 of the cover against 0.4 x 0.9 = 0.36 expected back
    row, cover, price, ce, _, _ = contracts.choose_contract(p, value, cost, cash, ra, ask, res, b, _licence_only(), 1,
                                                         covers, len(levels), 0.0, 0.0, 0.5, NO_SUPPORT)
    found, best, best_ce = False, -1, 0.0
    for k in range(-1, len(levels)):
        prem = covers[k, state.COVER_PREMIUM] if k >= 0 else 0.0
        refund = covers[k, state.COVER_REFUND] if k >= 0 else 0.0
        ce0 = rules.certainty_equivalent(p, value - cost - prem, -cost - prem + refund, ra)
        price_k = rules.licence_price(ce0, res * ask, b)
        if price_k >= 0 and price_k + cost + prem <= cash and ce0 - price_k > best_ce:
            found, best, best_ce = True, k, ce0 - price_k
    assert found and (row, cover) == (0, best) and ce == pytest.approx(best_ce, rel=1e-9)
    assert best >= 0  # some cover is worth its premium here


@settings(max_examples=300, deadline=None)
@given(p=st.floats(0.05, 0.95), value=st.floats(2e5, 2e7), cost_share=st.floats(0.05, 0.6),
       cash=st.floats(1e5, 5e7), ra_scale=st.floats(0.0, 5.0), rate=st.floats(0.005, 0.9),
       claim_share=st.floats(0.01, 1.0), levels=st.integers(1, 4), more=st.integers(1, 5))
def test_a_larger_menu_never_turns_an_insured_firm_away_from_insurance(p, value, cost_share, cash, ra_scale, rate,
                                                                       claim_share, levels, more):
    # Raising the highest coverage adds levels to a nested menu (step, 2 step, ...): the firm's choice set only grows,
    # so a firm that insured under the smaller menu still insures (a contract it signed is still signed).
    cost = cost_share * value
    ra = ra_scale / cash
    step = 0.1
    small = [step * (k + 1) for k in range(levels)]
    large = [step * (k + 1) for k in range(levels + more)]
    args = (p, value, cost, cash, ra, 0.2 * value, 0.3, 0.5, _licence_only(), 1)
    row_s, cover_s, _, ce_s, _, _ = contracts.choose_contract(*args, _menu(small, cost, rate, claim_share), len(small),
                                                           0.0, 0.0, 0.5, NO_SUPPORT)
    row_l, cover_l, _, ce_l, _, _ = contracts.choose_contract(*args, _menu(large, cost, rate, claim_share), len(large),
                                                           0.0, 0.0, 0.5, NO_SUPPORT)
    assert ce_l >= ce_s
    if row_s >= 0:
        assert row_l >= 0
    if cover_s >= 0:
        assert cover_l >= 0


def test_a_firm_counts_on_what_its_insurers_reserves_cover():
    assert insurance.payment_chance(10e6, 4e6, 1e6) == 1.0
    assert insurance.payment_chance(2.5e6, 4e6, 1e6) == pytest.approx(0.5)
    assert insurance.payment_chance(-1.0, 4e6, 1e6) == 0.0
    assert insurance.coverage_levels(0.8, 0.2) == 4 and insurance.coverage_levels(0.9, 0.2) == 4


def test_a_participation_constraint_lowers_trials_by_large_firms():
    # Only large firms (they were paying licences): obliged universities offer them trials; universities that
    # weigh a trial against their reservation price mostly do not. Paired over seeds.
    d = []
    for seed in range(8):
        trials = [api.simulate(api.under_regime(api.compose("scenario.firms.n=500", "scenario.firms.sme_share=0",
                                                            "scenario.months=36", "progress=false",
                                                            f"scenario.universities.pilot_share={share}"),
                                                "free_trial"), seed, "numba").summary["signed_trial"]
                  for share in (1.0, 0.0)]
        d.append(trials[1] - trials[0])
    assert mean_ci(d)[2] < 0


# --------------------------------------------------------------------------- the Nash bargain, by hand
def test_the_licence_price_is_the_reservation_plus_the_universitys_power_times_the_surplus():
    # price = reservation + b x (willingness - reservation), whole yuan: b 0.3 of a 600,000 surplus over 200,000
    assert rules.licence_price(800_000.0, 200_000.0, 0.3) == 380_000
    assert rules.licence_price(800_000.0, 200_000.0, 0.0) == 200_000     # no power: the reservation price
    assert rules.licence_price(800_000.0, 200_000.0, 1.0) == 800_000     # all the power: the firm's willingness
    assert rules.licence_price(199_999.0, 200_000.0, 0.3) == -1          # a yuan short: no deal
    assert rules.bargained_price(800_000.0, 200_000.0, 0.3, 300_000.0) == 300_000   # the most the firm can pay
    assert rules.bargained_price(800_000.0, 200_000.0, 0.3, 199_999.5) == -1        # below the reservation: none


# --------------------------------------------------------------------------- an offer nobody takes
def _credit(credit, rate=0.08, collateral=0.0):
    s = np.zeros(state.support_size())
    s[state.SUPPORT_CREDIT], s[state.SUPPORT_CREDIT_RATE], s[state.SUPPORT_COLLATERAL] = credit, rate, collateral
    return s


@settings(max_examples=300, deadline=None)
@given(p=st.floats(0.05, 0.99), value=st.integers(100_000, 20_000_000), cost_share=st.floats(0.0, 0.5),
       cash=st.integers(0, 30_000_000), ra=st.floats(0.0, 3e-6), b=st.floats(0.0, 1.0), brokered=st.booleans(),
       trial=st.booleans(), credit=st.floats(1.0, 1e7))
def test_credit_the_firm_would_not_draw_leaves_its_decision_as_without_credit(p, value, cost_share, cash, ra, b,
                                                                             brokered, trial, credit):
    # a licence (bargained) and, sometimes, a trial (price on success); the decision with credit on offer is the one
    # without it, bit for bit, unless the firm borrows (then the loan is within the credit)
    offers = np.zeros((state.MAX_OFFERS, 7))
    offers[0, state.OFFER_BARGAINED] = 1
    offers[1, state.OFFER_FORM] = free_trial.TRIAL
    offers[1, state.OFFER_ON_SUCCESS] = 0.3 * value
    offers[1, state.OFFER_BARGAINED] = state.BARGAIN_ON_SUCCESS
    covers = np.zeros((state.MAX_COVERS, 3 + state.N_COVER_AUX))
    cost, ask = int(cost_share * value), int(0.2 * value)
    args = (p, value, cost, cash, ra, ask, 0.6, b, offers, 2 if trial else 1, covers, 0,
            0.02 if brokered else 0.0, 3000.0 if brokered else 0.0, 0.5)
    with_credit = contracts.choose_contract(*args, _credit(credit))
    without = contracts.choose_contract(*args, _credit(0.0))
    weighed = contracts._choose_contract(*args, _credit(credit))   # the decision weighing the credit, always
    assert with_credit == (weighed if weighed[4] > 0 else without)
    if not contracts.may_borrow(value, cost, cash, offers, 2 if trial else 1, covers, 0, *args[12:], _credit(credit)):
        assert weighed[4] == 0   # the bound holds: where it says no loan can be needed, none is drawn
    if with_credit[4] == 0:
        assert with_credit == without
    else:
        assert 0 < with_credit[4] <= math.ceil(credit) and with_credit[0] >= 0


def test_a_run_with_credit_on_offer_and_no_loan_is_the_run_without_the_instrument():
    # firms so rich that none borrows: every series but the IP pledge's own is the baseline's, bit for bit
    from sim.instruments import ip_pledge

    rich = ("scenario.firms.cash_median_sme=1e10", "scenario.firms.cash_median_large=1e11",
            "scenario.firms.cash_sigma=0")
    own = [i for i, c in enumerate(C.COLUMNS) if c.owner == ip_pledge.NAME]
    others = [i for i in range(len(C.COLUMNS)) if i not in own]
    for seed in (11, 12):
        pledged, _, _, _ = kernels.run(api.under_regime(api.compose(*SMALL_RUN, *rich), "ip_pledge"), seed)
        plain, _, _, _ = kernels.run(api.under_regime(api.compose(*SMALL_RUN, *rich), "baseline"), seed)
        assert pledged[:, ip_pledge.CREDIT_OFFERS].sum() > 50 and pledged[:, ip_pledge.LOANS_MADE].sum() == 0
        assert np.array_equal(pledged[:, others], plain[:, others])
