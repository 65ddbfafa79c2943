"""The model's invariants, checked on every month of runs across all regimes and many seeds."""

from collections import Counter

import numpy as np
import pytest

from sim import api
from sim.core import ledger, rules
from sim.instruments import broker_reward, free_trial, insurance
from sim.engines.mesa.model import TransferModel
from sim.core.results import Series, check_invariants
from sim.core.rules import IMPLEMENTING, NEGOTIATING_FIRM

from ..conftest import REGIMES, small

SEEDS = range(12)


def _step_checks(m: TransferModel) -> None:
    """What must hold after every month, read off the state itself."""
    st = m.arrays
    # money is conserved to the yuan
    assert int(st.balance.sum()) == m.initial_money
    # each achievement is in exactly one status, consistent with the firms' contracts
    status = Counter(a.status for a in m.achievements)
    assert sum(status.values()) == len(m.achievements)
    negotiating = np.nonzero(st.project_state == NEGOTIATING_FIRM)[0]
    implementing = np.nonzero(st.project_state == IMPLEMENTING)[0]
    assert status[rules.NEGOTIATING] == len(negotiating)
    assert status[rules.ON_TRIAL] + status[rules.LICENSED] == len(implementing)
    held = st.c_ach[np.concatenate([negotiating, implementing])]
    assert len(held) == len(set(held))  # no achievement in two deals
    assert (st.ach_status[st.c_ach[implementing]] == st.c_status[implementing]).all()
    assert ((st.c_form[implementing] == free_trial.TRIAL) == (st.c_status[implementing] == rules.ON_TRIAL)).all()
    # project slots: those not idle are the needs raised less those expired, broken down or settled; contracts signed
    # are the firms' signatures, adopters the firms with one; a firm's pledged assets are its running loans' collateral
    from sim.core import columns as C
    from sim.core.results import FORM_COLUMNS

    c = m.series[:m.month].sum(axis=0)
    occupied = c[C.NEEDS_RAISED] - c[C.NEEDS_EXPIRED] - c[C.NEGOTIATIONS_FAILED] - c[C.SUCCESSES] - c[C.FAILURES]
    assert (st.project_state != rules.IDLE).sum() == occupied
    assert st.firm_signed.sum() == c[list(FORM_COLUMNS)].sum() == st.deal_n[0]
    assert (st.firm_signed > 0).sum() == c[C.ADOPTERS]
    loans = st.c_lender >= 0
    pledged = np.bincount(st.project_firm[loans], weights=st.c_collateral[loans], minlength=len(m.firms))
    assert (st.firm_pledged == pledged).all()
    # what firms learn from themselves this month: their outcomes, every one
    assert st.firm_month_successes.sum() == m.series[m.month - 1, C.SUCCESSES]
    assert st.firm_month_failures.sum() == m.series[m.month - 1, C.FAILURES]
    # nobody is pushed into debt by a payment they could not afford
    assert all(f.cash >= 0 for f in m.firms)
    ins = st.acct_base[insurance.INSURER]
    assert (st.balance[ins:st.acct_base[insurance.INSURER + 1]] >= 0).all()


def _payment_checks(m: TransferModel) -> Counter:
    """Each payment of the audit log against the rule that allows it; returns the count of each kind."""
    cfg, st = m.cfg, m.arrays
    log = st.audit[:st.audit_n[0]]
    assert st.audit_n[0] < st.audit.shape[0]  # the log holds every payment of the run
    contract_kinds = {k.column for k in ledger.KINDS if k.payer == ledger.FIRM and k.payee == ledger.UNIVERSITY}
    succeeded = {(month, payee) for month, kind, _, payee, _ in log if kind == ledger.FIRM_VALUE}
    counts = Counter()
    last_payment = None
    for month, kind, payer, payee, amount in log:
        counts[kind] += 1
        if kind in contract_kinds:
            last_payment = amount
        if kind == broker_reward.BROKER_REWARDS:
            # the reward on the payment just made: min(rate x payment, cap)
            assert "broker_reward" in cfg.regime.instruments and last_payment is not None
            assert amount <= cfg.broker_reward.cap and amount <= cfg.broker_reward.rate * last_payment
        elif kind == free_trial.TRIAL_PAYMENTS:
            # a trial pays only on success, in the month of the successful outcome
            assert (month, payer) in succeeded
        elif kind == insurance.CLAIMS:
            # a claim only on an insured failure: never in the month the firm succeeded
            assert (month, payee) not in succeeded
        elif kind in (insurance.PREMIUMS_FIRM, insurance.PREMIUM_SUBSIDIES):
            assert "insurance" in cfg.regime.instruments
        assert amount >= 0
    return counts


@pytest.mark.parametrize("regime", REGIMES)
def test_invariants_every_month(regime):
    cfg = api.under_regime(small(), regime)
    totals = Counter()
    for seed in SEEDS:
        m = TransferModel(cfg, seed, audit_rows=200_000)
        for _ in range(cfg.scenario.months):
            m.step()
            _step_checks(m)
        totals.update(_payment_checks(m))
        check_invariants(m.series, len(m.achievements), m.initial_money, cfg)
        totals["success"] += int(m.series[:, Series.SUCCESSES].sum())
    # the checks were exercised, not vacuous
    assert totals[ledger.LICENCE_PAYMENTS] + totals[free_trial.TRIAL_PAYMENTS] > 0 and totals["success"] > 0
    if regime in ("broker_reward", "combined"):
        assert totals[broker_reward.BROKER_REWARDS] > 0
    if regime in ("insurance", "combined"):
        assert totals[insurance.CLAIMS] > 0 and totals[insurance.PREMIUMS_FIRM] > 0
    if regime in ("free_trial", "combined"):
        assert totals[free_trial.TRIAL_PAYMENTS] > 0


def test_audit_log_is_the_same_in_both_engines():
    """Both engines make the very same payments, in the same order."""
    from sim.engines.numba import kernels

    cfg = api.under_regime(small(), "combined")
    m = TransferModel(cfg, 4, audit_rows=100_000)
    m.run()
    arrays = kernels.run(cfg, 4, audit_rows=100_000)[3]
    n = m.arrays.audit_n[0]
    assert n > 100 and arrays.audit_n[0] == n
    assert np.array_equal(m.arrays.audit[:n], arrays.audit[:n])


def test_broken_series_is_caught():
    """check_invariants really fails on broken books (it is not a no-op)."""
    m = TransferModel(small(), 0)
    s = m.run().copy()
    check_invariants(s, len(m.achievements), m.initial_money)
    s2 = s.copy()
    s2[5, Series.CASH_BROKERS] += 1  # money from nowhere
    with pytest.raises(AssertionError, match="money"):
        check_invariants(s2, len(m.achievements), m.initial_money)
    s3 = s.copy()
    s3[3, Series.SUCCESSES] += 10_000
    with pytest.raises(AssertionError, match="funnel"):
        check_invariants(s3, len(m.achievements), m.initial_money)
    s4 = s.copy()
    s4[2, Series.IN_USE] += 1
    with pytest.raises(AssertionError, match="statuses"):
        check_invariants(s4, len(m.achievements), m.initial_money)
    s5 = s.copy()   # more conversions expected of the running implementations than achievements under contract
    month = int(np.argmax(s[:, Series.LICENSED] + s[:, Series.ON_TRIAL]))
    s5[month, Series.RUNNING_EXPECTED_SUCCESSES] = s[month, Series.LICENSED] + s[month, Series.ON_TRIAL] + 0.5
    with pytest.raises(AssertionError, match="conversions expected of running implementations"):
        check_invariants(s5, len(m.achievements), m.initial_money)


def test_books_moved_without_a_payment_and_negative_counts_are_named_exactly():
    """Cash moved between two classes with no payment declared keeps the total (money is conserved) but not each
    class's changes: the first class of the ledger's order that differs is named, at the month it differs. A count
    below zero is named, the first column in the series' order."""
    from sim.core.results import SERIES_NAMES

    m = TransferModel(small(), 0)
    s = m.run().copy()
    n, money = len(m.achievements), m.initial_money
    moved = s.copy()
    for month in range(5, moved.shape[0]):  # from month 5 on, 7 yuan sit with the brokers instead of the firms
        moved[month, ledger.ACCOUNT_CLASSES[ledger.FIRM].column] -= 7
        moved[month, ledger.ACCOUNT_CLASSES[ledger.BROKER].column] += 7
    first = ledger.ACCOUNT_CLASSES[min(ledger.FIRM, ledger.BROKER)].plural
    with pytest.raises(AssertionError, match=f"^month 5: the {first}' cash changes differ from the payments to and "
                                             "from them$"):
        check_invariants(moved, n, money)
    negative = s.copy()
    negative[4, Series.BROKERS_ACTIVE] = -1
    negative[2, Series.LIST_SEARCHES] = -1
    name = SERIES_NAMES[min(Series.BROKERS_ACTIVE, Series.LIST_SEARCHES)]
    with pytest.raises(AssertionError, match=f"^{name} is negative$"):
        check_invariants(negative, n, money)


def _series(cfg, seed):
    return TransferModel(cfg, seed).run()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_switched_off_regime_is_exactly_baseline(seed):
    base_cfg = small()
    base = _series(base_cfg, seed)
    # every instrument switched off, with its parameters changed: nothing changes
    off = api.compose(*_small_args(), "regime=baseline", "free_trial.term_months=3", "free_trial.success_fee=1",
                      "broker_reward.rate=0.9", "broker_reward.cap=1", "insurance.loading=0", "insurance.subsidy_share=1")
    assert np.array_equal(_series(off, seed), base)
    # each instrument switched on but given nothing to do
    inert = [
        ("broker_reward", "broker_reward.rate=0"),
        ("broker_reward", "broker_reward.cap=0"),
        ("insurance", "insurance.insurers=0"),
        ("free_trial", "scenario.universities.pilot_share=0"),  # and no fixed fee is worth a reservation price
    ]
    insurer_stock = [Series.INSURERS_ACTIVE, Series.CASH_INSURERS]
    trial_weighed = [Series.TRIALS_OFFERED, Series.TRIALS_DECLINED]
    for regime, override in inert:
        fixed_fee = ("free_trial.payment=fixed_fee",) if regime == "free_trial" else ()   # Tianjin's 20,000 yuan
        cfg = api.under_regime(api.compose(*_small_args(), override, *fixed_fee), regime)
        got = _series(cfg, seed)
        if override == "insurance.insurers=0":  # no insurer, so no insurer reserves on the books
            assert not got[:, insurer_stock].any()
            got[:, insurer_stock] = base[:, insurer_stock]
        if regime == "free_trial":  # the universities weighed a trial each time, and declined every one
            assert not got[:, Series.TRIALS_OFFERED].any() and got[:, Series.TRIALS_DECLINED].any()
            got[:, trial_weighed] = base[:, trial_weighed]
        assert np.array_equal(got, base), (regime, override)
    # and switching one on does change the run (the comparison above is not vacuous)
    assert not np.array_equal(_series(api.under_regime(base_cfg, "free_trial"), seed), base)


def _small_args():
    from ..conftest import SMALL
    return SMALL
