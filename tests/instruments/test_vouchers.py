"""Innovation vouchers (sim/instruments/vouchers.py): the co-payment, from one decision to the audit log.

* closed form: the support terms of one contract by hand; every voucher in the audit log
  is ``rate`` of the services it pays for, within the contract's cap, and only to SMEs;
* direction: vouchers raise SMEs' contracts (paired seeds, Wilcoxon at 1%);
* invariants: a series with a voucher no service payment explains is refused.
"""

import numpy as np
import pytest

from sim import api
from sim.core import columns, contracts, ledger, public, rules, state
from sim.engines.numba import kernels
from sim.instruments import vouchers as V
from sim.core.results import InvariantError, check_invariants

from ..conftest import SMALL, paired_effect

SEEDS = range(1000, 1060)   # seeds no other suite uses
SERVICES = {k.column for k in ledger.KINDS if k.payer == ledger.FIRM and k.payee in (ledger.UNIVERSITY, ledger.BROKER)}


def _support(rate, cap, credit=0.0, credit_rate=0.0, *more):
    """A decision's support: the voucher's co-payment in its slot, credit, and ``more`` co-payments (rate, cap) in
    slots of other instruments (as a second co-paying instrument would declare one)."""
    s = np.zeros(state.support_size() + 2 * len(more))
    k = public.copay_rate_index(V.COPAY)
    s[k], s[k + 1] = rate, cap
    s[state.SUPPORT_CREDIT], s[state.SUPPORT_CREDIT_RATE] = credit, credit_rate
    for i, (r, c) in enumerate(more):
        s[state.support_size() + 2 * i], s[state.support_size() + 2 * i + 1] = r, c
    return s


def test_support_terms_of_one_contract_by_hand():
    # services 100,000 at signing and 50,000 on success, own spending 20,000, cash 60,000; half paid up to 70,000
    at_sign, on_success, interest, borrowed = contracts.support_terms(100_000.0, 50_000.0, 20_000.0, 60_000,
                                                                      _support(0.5, 70_000.0, 1e6, 0.1))
    assert at_sign == 20_000 + 100_000 - 50_000          # half the services at signing
    assert on_success == 50_000 - 20_000                 # the cap's last 20,000 on success
    assert borrowed == 70_000 - 60_000 and interest == pytest.approx(0.1 * 10_000)
    assert contracts.copay(33_333.0, 0.5, 1e9) == 16_667 and contracts.copay(33_333.0, 0.5, 100.7) == 100


def test_several_co_payments_each_pay_their_share_of_the_same_payments():
    # a second instrument's co-payment (30% up to 40,000) beside the voucher (50% up to 70,000), neither knowing the
    # other: each pays its rate of the same services, at signing first, within its own cap
    at_sign, on_success, _, borrowed = contracts.support_terms(100_000.0, 50_000.0, 20_000.0, 1e9,
                                                               _support(0.5, 70_000.0, 0.0, 0.0, (0.3, 40_000.0)))
    assert at_sign == 20_000 + 100_000 - 50_000 - 30_000      # 50,000 and 30,000 of the services at signing
    assert on_success == 50_000 - 20_000 - 10_000             # the caps' last 20,000 and 10,000 on success
    assert borrowed == 0
    # the order of the slots does not matter, and a co-payment at rate 0 is none
    assert contracts.support_terms(100_000.0, 50_000.0, 20_000.0, 1e9, _support(0.3, 40_000.0, 0.0, 0.0,
                                                                                 (0.5, 70_000.0)))[:2] == (40_000, 20_000)
    assert contracts.support_terms(100_000.0, 50_000.0, 20_000.0, 1e9, _support(0.5, 70_000.0, 0.0, 0.0, (0.0, 9e9))) \
        == contracts.support_terms(100_000.0, 50_000.0, 20_000.0, 1e9, _support(0.5, 70_000.0))
    # the bounds of the decision see both: the largest help is the caps' sum
    assert contracts.copay_caps(_support(0.5, 70_000.0, 0.0, 0.0, (0.3, 40_000.0))) == 110_000.0
    assert contracts.copaid(_support(0.0, 70_000.0, 0.0, 0.0, (0.3, 0.0)))
    assert not contracts.copaid(_support(0.0, 70_000.0, 0.0, 0.0, (0.0, 1.0)))


def test_co_payments_that_would_pay_more_than_the_payments_are_refused(monkeypatch):
    from sim import api
    from sim.core.config import ConfigError

    # a second co-paying instrument on the same regime (declared as an instrument module would: its key is a rate of
    # the same payments); together at 1 or more they would pay the firm more than it pays
    monkeypatch.setattr(state, "COPAYMENTS", state.COPAYMENTS + [("insurance", "insurance.subsidy_share")])
    from sim.core import config
    monkeypatch.setattr(config, "COPAYMENTS", state.COPAYMENTS)
    mix = ("regime.name=mix", "regime.instruments=[vouchers,insurance]")
    api.compose(*mix, "vouchers.rate=0.5", "insurance.subsidy_share=0.49")
    with pytest.raises(ConfigError, match=r"^vouchers.rate \(0.5\) \+ insurance.subsidy_share \(0.5\): co-payments "
                                          r"of the same payments must sum below 1 under regime 'mix'"):
        api.compose(*mix, "vouchers.rate=0.5", "insurance.subsidy_share=0.5")
    api.compose("regime=vouchers", "vouchers.rate=0.5", "insurance.subsidy_share=0.5")  # one alone: its own range


def test_one_licence_with_and_without_a_voucher_by_hand():
    # one risk-neutral firm, one achievement: success (chance 0.99) worth 1 M, cost 100,000, asking 300,000
    offers = np.zeros((state.MAX_OFFERS, 7))
    offers[0, state.OFFER_BARGAINED] = 1
    covers = np.zeros((state.MAX_COVERS, 3 + state.N_COVER_AUX))

    def decide(cash, support):
        return contracts.choose_contract(0.99, 1_000_000, 100_000, cash, 0.0, 300_000, 0.6, 0.5, offers, 1, covers,
                                         0, 0.0, 0.0, 0.5, support)

    # without: willingness 0.99 x 900,000 - 0.01 x 100,000 = 890,000; reservation 0.6 x 300,000 = 180,000; the Nash
    # price 180,000 + (890,000 - 180,000) / 2 = 535,000
    assert decide(700_000, _support(0.0, 0.0))[2] == 535_000
    # a firm with 600,000 cannot pay that and the cost: the pair settles at the most it can pay, 500,000
    row, _, price, ce, _, outlay = decide(600_000, _support(0.0, 0.0))
    assert outlay == 600_000  # the price and the cost: all its cash, at signing
    assert row == 0 and price == 500_000 and ce == pytest.approx(0.99 * 400_000 - 0.01 * 600_000)
    # with half of the price paid by a voucher the firm's willingness doubles to 1,780,000 and the Nash price is
    # 980,000: the firm pays 490,000 and the cost, 590,000, within its cash; the university gets 480,000 more, the
    # firm 10,000 more (CE 400,000 against 390,000): most of the voucher reaches the university
    row, _, price, ce, borrowed, outlay = decide(600_000, _support(0.5, 1e9))
    assert row == 0 and borrowed == 0 and abs(price - 980_000) <= 1
    assert abs(outlay - 590_000) <= 1  # what it pays at signing, net of the voucher
    assert ce == pytest.approx(0.99 * (900_000 - 490_000) - 0.01 * 590_000, abs=1.0)
    # a firm with 400,000: without a voucher it can pay 300,000 (>= the reservation); with it, the most it can pay
    # is a price whose half is 300,000
    assert decide(400_000, _support(0.0, 0.0))[2] == 300_000
    assert abs(decide(400_000, _support(0.5, 1e9))[2] - 600_000) <= 1
    # ... and below the reservation price nobody signs: 250,000 of cash leaves 150,000 < 180,000
    assert decide(250_000, _support(0.0, 0.0))[0] == -1


@pytest.fixture(scope="module")
def audited():
    cfg = api.compose(*SMALL, "regime.name=mix", "regime.instruments=[vouchers,free_trial,broker_reward]",
                      "vouchers.cap=30000")
    out = []
    for seed in SEEDS[:4]:
        series, _, _, arr = kernels.run(cfg, seed, audit_rows=200_000)
        assert arr.audit_n[0] < arr.audit.shape[0]
        out.append((series, arr))
    return cfg, out


def _voucher_payments(arr):
    """Each voucher payment of an audited run: (firm, amount, the services it co-pays, at signing or later). At
    signing it comes before the firm's service payments (up to its implementation cost); later (a trial's fee on
    success) after the payment it co-pays, in the same collect block."""
    audit = arr.audit[:arr.audit_n[0]]
    base = arr.acct_base
    for i in np.nonzero(audit[:, 1] == V.VOUCHERS)[0]:
        firm, amount = audit[i, 3], audit[i, 4]
        at_signing = audit[i + 1, 1] in SERVICES or audit[i + 1, 1] == ledger.IMPLEMENTATION_COST
        if at_signing:
            j = i + 1
            while audit[j, 1] != ledger.IMPLEMENTATION_COST:
                j += 1
            block = audit[i + 1:j]
        else:
            j = i - 1
            while not (audit[j, 1] in SERVICES and audit[j, 3] >= base[ledger.UNIVERSITY]
                       and audit[j, 3] < base[ledger.UNIVERSITY + 1]):
                j -= 1
            block = audit[j:i]
        services = block[(block[:, 2] == firm) & np.isin(block[:, 1], list(SERVICES))][:, 4].sum()
        yield firm - base[ledger.FIRM], amount, services, at_signing


def test_every_voucher_is_its_rate_of_the_services_it_pays_within_the_cap(audited):
    cfg, runs = audited
    rate, cap = cfg.vouchers.rate, int(cfg.vouchers.cap)
    n_sign = n_later = capped = 0
    for series, arr in runs:
        base = arr.acct_base
        for f, amount, services, at_signing in _voucher_payments(arr):
            assert arr.firm_sme[f], "a voucher to a large firm"
            due = rules.yuan(rate * services)
            if at_signing:
                assert amount == min(due, cap), (amount, due)      # at signing: the first on the contract
                n_sign += 1
            else:
                assert amount <= min(due, cap), (amount, due)      # later: within what the cap has left
                n_later += 1
            capped += amount < due
        assert (arr.v_paid <= arr.v_cap).all() and (arr.v_cap <= cap).all()
        assert (arr.balance[base[ledger.FIRM]:base[ledger.FIRM + 1]] >= 0).all()   # paid before, never overdrawn
    assert n_sign > 0 and n_later > 0 and capped > 0   # each branch ran


def test_a_later_voucher_is_exactly_its_rate_of_the_payment_and_the_firms_part_of_the_brokers_fee():
    # no cap in reach and no budget: every voucher, at signing and on a trial's fee on success, is
    # yuan(rate x (payment + the firm's part of the broker's fee on it)), the closed form, to the yuan
    cfg = api.compose(*SMALL, "regime.name=mix", "regime.instruments=[vouchers,free_trial]", "vouchers.cap=1e9",
                      "free_trial.payment=fixed_fee", "free_trial.success_fee=200000", "scenario.universities.pilot_share=1")
    b = cfg.scenario.brokers
    assert b.fee_rate > 0 and 0 < b.fee_firm_share
    n_later = brokered_later = 0
    for seed in SEEDS[4:10]:
        _, _, _, arr = kernels.run(cfg, seed, audit_rows=200_000)
        assert arr.audit_n[0] < arr.audit.shape[0]
        for _, amount, services, at_signing in _voucher_payments(arr):
            assert amount == rules.yuan(cfg.vouchers.rate * services), (amount, services, at_signing)
            if not at_signing:
                n_later += 1
                fee = 200_000 + rules.firms_fee(200_000, b.fee_rate, b.fee_firm_share)
                brokered_later += services == fee
                assert services in (200_000, fee)   # the fee alone, or with the firm's part of a broker's fee
    assert n_later > 0 and brokered_later > 0   # later vouchers, some on brokered trials


def test_vouchers_raise_smes_contracts():
    base, treated = api.compose(*SMALL), api.compose(*SMALL, "regime=vouchers")
    mean, p = paired_effect(treated, base, "contracts_sme", SEEDS)
    assert mean > 0 and p < 0.01, (mean, p)


def test_large_firms_get_no_voucher_unless_vouchers_are_for_all(audited):
    cfg = api.compose(*SMALL, "regime=vouchers", "scenario.firms.sme_share=0.5")
    everyone = api.compose(*SMALL, "regime=vouchers", "scenario.firms.sme_share=0.5", "vouchers.sme_only=false")
    large = lambda s: s["vouchers"] - s["vouchers_sme"]   # noqa: E731
    mean, p = paired_effect(everyone, cfg, large, SEEDS[:20])
    assert mean > 0 and p < 0.01
    for seed in SEEDS[:3]:
        assert api.simulate(cfg, seed, "numba").summary["vouchers_sme"] == \
            api.simulate(cfg, seed, "numba").summary["vouchers"]


def test_a_voucher_no_service_explains_is_refused():
    cfg = api.compose(*SMALL, "regime=vouchers")
    series = api.simulate(cfg, SEEDS[0], "numba").series
    bad = series.copy()
    quiet = int(np.nonzero(bad[:, list(SERVICES)].sum(axis=1) == 0)[0][0])
    bad[quiet, V.VOUCHERS] = bad[quiet, ledger.class_of(V.VOUCHERS).sme_column] = 1_000
    with pytest.raises(InvariantError, match="vouchers"):
        V.check_series(bad, cfg)
    V.check_series(series, cfg)   # the run itself passes


def _lowest_firm_balance(arr):
    """The lowest balance any firm reached at any payment of the run, replayed from the audit log."""
    audit = arr.audit[:arr.audit_n[0]]
    balance = arr.balance.copy()
    np.add.at(balance, audit[:, 2], audit[:, 4])        # back to the start
    np.subtract.at(balance, audit[:, 3], audit[:, 4])
    lo, hi = arr.acct_base[ledger.FIRM], arr.acct_base[ledger.FIRM + 1]
    lowest = balance[lo:hi].min()
    for _, _, payer, payee, amount in audit:
        balance[payer] -= amount
        balance[payee] += amount
        if lo <= payer < hi:
            lowest = min(lowest, balance[payer])
    return lowest


# SMEs short of cash and bold enough to sign with help (as tests/instruments/test_ip_pledge.py's), with the broad insurance cover
CASH_POOR = ("scenario.firms.n=1500", "scenario.firms.sme_share=1.0", "scenario.months=48",
             "scenario.firms.risk_aversion_sme=0.1", "scenario.firms.cash_median_sme=1e6", "ip_pledge.loan_to_value=1",
             "insurance.claim_share=1", "insurance.prior_failure=0.6", "progress=false")


@pytest.mark.parametrize("budget", [2e5, 6e5])
def test_a_subsidy_and_a_voucher_for_one_decision_share_the_budget_and_no_firm_pays_more_than_it_has(budget):
    cfg = api.compose(*CASH_POOR, "regime.name=mix", "regime.instruments=[insurance,vouchers,ip_pledge]",
                      f"government.annual_budget={budget}")
    vouchers = subsidies = 0
    for seed in SEEDS[:3]:
        series, n, money, arr = kernels.run(cfg, seed, audit_rows=400_000)
        assert arr.audit_n[0] < arr.audit.shape[0]
        assert _lowest_firm_balance(arr) >= 0
        check_invariants(series, n, money, cfg)   # the budget and every account at every month's end
        vouchers += series[:, V.VOUCHERS].sum()
        subsidies += series[:, columns.index("premium_subsidies")].sum()
    assert vouchers > 0 and subsidies > 0   # both offered under the budget


def test_under_a_tight_budget_later_vouchers_are_refused_and_counted():
    cfg = api.compose(*SMALL, "regime.name=mix", "regime.instruments=[vouchers,free_trial]",
                      "scenario.universities.pilot_share=1", "government.annual_budget=30000")
    denied = 0
    for seed in SEEDS[:6]:
        run = api.simulate(cfg, seed, "numba")   # the budget is kept every year (checked)
        denied += run.summary["vouchers_denied"]
        assert run.summary["vouchers"] + run.summary["vouchers_denied"] > 0
    assert denied > 0
