"""The model's invariants, checked on every month of runs across all regimes and many seeds."""

from collections import Counter

import numpy as np
import pytest

from sim import api, rules
from sim.model import TransferModel
from sim.results import Series, check_invariants
from sim.rules import IMPLEMENTING, NEGOTIATING_FIRM

from .conftest import REGIMES, small

SEEDS = range(12)


def _step_checks(m: TransferModel) -> None:
    """What must hold after every month, read off the agents themselves."""
    # money is conserved to the yuan
    assert m.total_money() == m.initial_money
    # each achievement is in exactly one status, consistent with the firms' projects
    status = Counter(a.status for a in m.achievements)
    assert sum(status.values()) == len(m.achievements)
    negotiating = [f for f in m.firms if f.state == NEGOTIATING_FIRM]
    implementing = [f for f in m.firms if f.state == IMPLEMENTING]
    assert status[rules.NEGOTIATING] == len(negotiating)
    assert status[rules.ON_TRIAL] + status[rules.LICENSED] == len(implementing)
    held = [f.contract.achievement.index for f in negotiating + implementing]
    assert len(held) == len(set(held))  # no achievement in two deals
    for f in implementing:
        expected = rules.ON_TRIAL if f.contract.form == rules.TRIAL else rules.LICENSED
        assert f.contract.achievement.status == expected
    # nobody is pushed into debt by a payment they could not afford
    assert all(f.cash >= 0 for f in m.firms)
    assert all(i.cash >= 0 for i in m.insurers)


def _event_checks(m: TransferModel) -> None:
    """Each payment against the rule that allows it."""
    cfg = m.cfg
    outcomes = {}
    for month, kind, amount, c in m.events:
        if kind == "outcome":
            outcomes[id(c)] = (month, amount)
    for month, kind, amount, c in m.events:
        if kind == "reward":
            assert cfg.regime.broker_reward and c.broker is not None
            assert amount == rules.broker_reward(c.price, cfg.broker.rate, cfg.broker.cap)
            assert amount <= cfg.broker.cap and amount <= cfg.broker.rate * c.price
        elif kind == "payment" and c.form == rules.TRIAL:
            # a trial pays only on success, in the month of the successful outcome
            assert outcomes.get(id(c)) == (month, 1)
        elif kind == "claim":
            assert c.insured and outcomes.get(id(c)) == (month, 0)
            assert amount <= c.claim
        elif kind in ("premium", "subsidy"):
            assert cfg.regime.insurance and c.insured


@pytest.mark.parametrize("regime", REGIMES)
def test_invariants_every_month(regime):
    cfg = api.under_regime(small(), regime)
    totals = Counter()
    for seed in SEEDS:
        m = TransferModel(cfg, seed, audit=True)
        for _ in range(cfg.scenario.months):
            m.step()
            _step_checks(m)
        _event_checks(m)
        check_invariants(m.series, len(m.achievements), m.initial_money)
        totals.update(kind for _, kind, _, _ in m.events)
        totals["success"] += int(m.series[:, Series.SUCCESSES].sum())
    # the checks were exercised, not vacuous
    assert totals["payment"] > 0 and totals["success"] > 0
    if regime in ("broker_reward", "combined"):
        assert totals["reward"] > 0
    if regime in ("failure_insurance", "combined"):
        assert totals["claim"] > 0 and totals["premium"] > 0
    if regime in ("free_trial", "combined"):
        assert m.series[:, Series.TRIALS_CONVERTED].sum() >= 0 and totals["outcome"] > 0


def test_broken_series_is_caught():
    """check_invariants really fails on broken books (it is not a no-op)."""
    m = TransferModel(small(), 0)
    s = m.run().copy()
    check_invariants(s, len(m.achievements), m.initial_money)
    s2 = s.copy()
    s2[5, Series.CASH_BROKERS] += 1
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


def _series(cfg, seed):
    return TransferModel(cfg, seed).run()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_switched_off_regime_is_exactly_baseline(seed):
    base_cfg = small()
    base = _series(base_cfg, seed)
    # every instrument switched off, with its parameters changed: nothing changes
    off = api.compose(*_small_args(), "regime=baseline", "trial.term_months=3", "trial.success_fee=1",
                      "broker.rate=0.9", "broker.cap=1", "insurance.loading=0", "insurance.subsidy_share=1")
    assert np.array_equal(_series(off, seed), base)
    # each instrument switched on but given nothing to do
    inert = [
        ("broker_reward", "broker.rate=0"),
        ("broker_reward", "broker.cap=0"),
        ("failure_insurance", "insurance.insurers=0"),
        ("free_trial", "scenario.universities.trial_acceptance=0"),
    ]
    insurer_stock = [Series.INSURERS_ACTIVE, Series.INSURER_RESERVES, Series.CASH_INSURERS]
    for regime, override in inert:
        cfg = api.under_regime(api.compose(*_small_args(), override), regime)
        got = _series(cfg, seed)
        if override == "insurance.insurers=0":  # no insurer, so no insurer reserves on the books
            assert not got[:, insurer_stock].any()
            got[:, insurer_stock] = base[:, insurer_stock]
        assert np.array_equal(got, base), (regime, override)
    # and switching one on does change the run (the comparison above is not vacuous)
    assert not np.array_equal(_series(api.under_regime(base_cfg, "free_trial"), seed), base)


def _small_args():
    from .conftest import SMALL
    return SMALL
