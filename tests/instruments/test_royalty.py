"""The royalty instrument (sim/instruments/royalty.py): staged payments and a royalty on success.

Each test asserts something a wrong implementation would break: the engines agree to the
bit, every instalment in the audit log is one the schedules owe (and under the royalty
contract's own university, broker and reward cap, also when the firm has moved on to a
new contract), no royalty without a success, nothing moves when the instrument is off or
given nothing to do, and a firm short of cash pays what it can and no more.
"""

import math
from collections import defaultdict

import numpy as np
import pytest

from sim import api
from sim.core import columns, ledger, rules
from sim.engines.numba import kernels
from sim.instruments import broker_reward, royalty as R
from sim.engines.mesa.model import TransferModel
from sim.core.results import InvariantError, check_invariants

# universities that settle for less: royalty contracts on their default terms (worth ~0.2 of the asking price to a
# university) are then offered often enough to test their mechanics
SMALL = ("scenario.firms.n=300", "scenario.months=48", "scenario.universities.reservation_share=0.15", "progress=false")
MIX = ("regime.name=mix", "regime.instruments=[royalty,insurance,broker_reward]")
OWN = [i for i, c in enumerate(columns.COLUMNS) if c.owner == R.NAME]
OTHERS = [i for i in range(len(columns.COLUMNS)) if i not in OWN]


def cfg_of(*overrides):
    return api.compose(*SMALL, *overrides)


# --------------------------------------------------------------------------- (1) the engines
@pytest.mark.parametrize("regime", [("regime=royalty",), MIX,
                                    ("regime.name=all", "regime.instruments=[free_trial,broker_reward,insurance,"
                                     "royalty]", "government.annual_budget=2e5")])
def test_engines_give_identical_series(regime):
    cfg = cfg_of(*regime)
    instalments = 0
    for seed in range(3):
        mesa = api.simulate(cfg, seed, "mesa")     # checks the invariants, the royalty's own included
        numba = api.simulate(cfg, seed, "numba")
        assert np.array_equal(mesa.series, numba.series), f"{regime}, seed {seed}"
        instalments += mesa.summary["royalty_instalments"]
    assert instalments > 0   # the royalty branch ran


# --------------------------------------------------------------------------- (2) the schedules, from the audit log
def _blocks(audit, kind):
    """Each contract payment of ``kind`` in the audit log: (row, month, firm acct, univ acct, amount, rows after it up
    to its inventors' share, the last row of sim.core.contracts.collect_for)."""
    out = []
    for i in np.nonzero(audit[:, 1] == kind)[0]:
        j = i + 1
        while audit[j, 1] != ledger.INVENTOR_INCOME:
            j += 1
        out.append((i, *audit[i, [0, 2, 3, 4]], audit[i + 1:j]))
    return out


def test_instalments_are_exactly_the_schedules_owed_under_the_royalty_contract():
    cap = 4000
    cfg = cfg_of(*MIX, f"broker_reward.cap={cap}")
    rate, months, term = cfg.royalty.rate, cfg.royalty.months, cfg.scenario.negotiation.implementation_months
    overlapped = capped = brokered = schedules = 0
    for seed in range(8):   # 8 seeds: with fewer brokers by default (3), firms sign again while paying less often
        series, _, _, arr = kernels.run(cfg, seed, audit_rows=200_000)
        assert arr.audit_n[0] < arr.audit.shape[0]
        audit = arr.audit[:arr.audit_n[0]]
        base = arr.acct_base
        firm_acct = lambda f: base[ledger.FIRM] + f                      # noqa: E731
        univ_acct = lambda a: base[ledger.UNIVERSITY] + arr.ach_owner[a]  # noqa: E731
        broker_acct = lambda b: base[ledger.BROKER] + b                   # noqa: E731
        assert series[:, R.ROYALTIES_UNPAID].sum() == 0   # nobody short of cash here: every instalment is paid in full
        expected = defaultdict(int)
        owner = defaultdict(list)   # (month, firm acct, univ acct) -> the schedules with an instalment due then
        for a in np.nonzero(arr.roy_start >= 0)[0]:
            schedules += 1
            f, start, total, b = arr.roy_firm[a], arr.roy_start[a], arr.roy_total[a], arr.roy_broker[a]
            # no royalty without a success: the achievement is in use, and the firm was paid its value the month before
            value = math.floor(arr.ach_value[a] * arr.firm_scale[f] + 0.5)
            assert arr.ach_status[a] == rules.IN_USE
            assert ((audit[:, 0] == start - 1) & (audit[:, 1] == ledger.FIRM_VALUE) & (audit[:, 3] == firm_acct(f))
                    & (audit[:, 4] == value)).sum() == 1
            # the total is rate x value, and the schedule sums to it exactly
            assert total == math.floor(rate * value + 0.5)
            schedule = [total // months] * (months - 1) + [total - (total // months) * (months - 1)]
            assert sum(schedule) == total and min(schedule) >= 0 and schedule[-1] - schedule[0] < months
            fallen_due = [m for m in range(start, start + months) if m < cfg.scenario.months]
            for k, m in enumerate(fallen_due):
                key = (m, firm_acct(f), univ_acct(a))
                expected[key] += schedule[k]
                owner[key].append(a)
            assert arr.roy_paid[a] == sum(schedule[:len(fallen_due)])
            assert arr.roy_left[a] == months - len(fallen_due)
            # the firm signed a new contract while it still paid royalties on this one
            if fallen_due:
                overlapped += ((audit[:, 1] == ledger.IMPLEMENTATION_COST) & (audit[:, 2] == firm_acct(f))
                               & (audit[:, 0] >= start) & (audit[:, 0] <= fallen_due[-1])).any()
            brokered += b >= 0
        paid = defaultdict(int)
        rewards = defaultdict(int)
        for _, m, payer, payee, amount, after in _blocks(audit, R.ROYALTIES):
            paid[(m, payer, payee)] += amount
            if len(owner[(m, payer, payee)]) != 1:   # two schedules of one firm and university due at once
                continue
            a = owner[(m, payer, payee)][0]
            b = arr.roy_broker[a]
            fees = after[np.isin(after[:, 1], [ledger.BROKER_FEES_FIRM, ledger.BROKER_FEES_UNIVERSITY])]
            got = after[after[:, 1] == broker_reward.BROKER_REWARDS]
            if b < 0:
                assert len(fees) == 0 and len(got) == 0
            else:   # the royalty contract's broker is paid, whatever contract the firm is in now
                assert len(fees) == 2 and (fees[:, 3] == broker_acct(b)).all()
                assert len(got) == 1 and got[0, 3] == broker_acct(b)
                rewards[a] += got[0, 4]
        assert dict(paid) == {k: v for k, v in expected.items() if v > 0}
        assert series[:, R.ROYALTIES].sum() == sum(paid.values())
        assert series[:, R.ROYALTY_INSTALMENTS].sum() == (arr.roy_start >= 0).sum() * months - arr.roy_left.sum()
        assert series[-1, R.ROYALTIES_OUTSTANDING] == (arr.roy_total - arr.roy_paid).sum()
        # the reward cap holds per project, across the upfront payment and every instalment
        upfront_shared = set()
        upfronts = _blocks(audit, R.ROYALTY_UPFRONT)
        signed = defaultdict(int)   # royalty contracts signed by (month, firm, university), a failed one included
        for _, m, payer, payee, _, _ in upfronts:
            signed[(m, payer, payee)] += 1
        for _, m, payer, payee, amount, after in upfronts:
            got = after[after[:, 1] == broker_reward.BROKER_REWARDS]
            mine = np.nonzero((arr.roy_start - 1 - term == m) & (base[ledger.FIRM] + arr.roy_firm == payer)
                              & (univ_acct(np.arange(len(arr.roy_start))) == payee))[0]
            if signed[(m, payer, payee)] > 1:   # two royalty contracts of one firm with one university in one month
                upfront_shared.update(mine)
                continue
            for a in mine:
                rewards[a] += got[:, 4].sum()
        shared = {a for v in owner.values() if len(v) > 1 for a in v} | upfront_shared
        for a, r in rewards.items():
            assert r <= cap and (a in shared or r == arr.ach_rewarded[a])
            capped += r == cap
    # the cases that matter occurred: brokered schedules, firms in a new contract while paying, the cap binding
    assert schedules > 20 and brokered > 5 and overlapped > 5 and capped > 0


# --------------------------------------------------------------------------- (3) off, or given nothing to do
def test_off_moves_nothing_and_inert_royalty_reproduces_the_runs_without_it():
    cfg = cfg_of("regime=baseline")
    for seed in range(3):
        series, n_ach, money, arr = kernels.run(cfg, seed, audit_rows=100_000)
        assert not series[:, OWN].any()
        assert not np.isin(arr.audit[:arr.audit_n[0], 1], [R.ROYALTIES, R.ROYALTY_UPFRONT]).any()
        assert (arr.roy_start == -1).all() and arr.roy_outstanding[0] == 0
        check_invariants(series, n_ach, money, cfg)
    # a royalty dearer than any project is worth (the whole asking price up front, the whole value on success) is
    # never signed: with it on, every other column is what it is without it, to the bit
    dear = ("royalty.upfront_share=1.0", "royalty.rate=1.0")
    for without, with_ in ((("regime=baseline",), ("regime=royalty", *dear)),
                           (("regime.name=ib", "regime.instruments=[insurance,broker_reward]"), (*MIX, *dear))):
        for seed in range(3):
            a = api.simulate(cfg_of(*without), seed, "numba").series
            b = api.simulate(cfg_of(*with_), seed, "numba").series
            assert b[:, R.SIGNED_ROYALTY].sum() == 0 and not b[:, OWN].any()
            assert np.array_equal(a[:, OTHERS], b[:, OTHERS]), f"{with_}, seed {seed}"
    # the invariants would catch a stray royalty: the instrument's own, and the run's (nothing from an instrument off)
    run = api.simulate(cfg, 0, "numba")
    s = run.series.copy()
    s[5, R.ROYALTIES] = 100.0
    with pytest.raises(InvariantError, match="royalties paid, unpaid and outstanding"):
        R.check_series(s, cfg)
    s = run.series.copy()
    s[5, R.ROYALTY_INSTALMENTS] = 1.0
    with pytest.raises(InvariantError, match="royalty_instalments is not zero though royalty is off"):
        check_invariants(s, run.n_achievements, run.initial_money, cfg)


# --------------------------------------------------------------------------- a firm short of cash
def test_affordable_is_the_most_a_firm_can_pay_with_its_fee():
    for due, cash, brokered in [(1000, 5000, True), (10_000, 5000, True), (10_000, 5000, False), (7, 0, True),
                                (50, -3, True), (123_457, 100_003, True), (0, 10, True)]:
        got = R.affordable(due, cash, brokered, 0.02, 0.5)
        cost = lambda x: x + R.firm_fee(x, brokered, 0.02, 0.5)   # noqa: E731
        best = max((x for x in range(0, min(due, max(cash, 0)) + 1) if cost(x) <= cash), default=0)
        assert got == best, (due, cash, brokered)


def test_a_firm_short_of_cash_pays_what_it_can_and_the_rest_is_written_off():
    """Mesa, month by month: once a royalty schedule runs, its firm's cash is moved out (it spent it elsewhere);
    later instalments are paid as far as the cash goes, never below zero, and paid + written off + outstanding
    still add up to every schedule's total."""
    cfg = cfg_of(*MIX)
    m = TransferModel(cfg, 1, audit_rows=100_000)
    arr, drained = m.arrays, None
    firm = lambda f: arr.acct_base[ledger.FIRM] + f   # noqa: E731
    for month in range(cfg.scenario.months):
        m.step()
        running = np.nonzero((arr.roy_left > 0) & (arr.roy_broker >= 0))[0]
        if drained is None and len(running):
            drained = running[0]
            f = arr.roy_firm[drained]
            left = arr.roy_instalment[drained] + 99   # enough for part of one instalment with its fee
            arr.balance[arr.acct_base[ledger.MARKET]] += arr.balance[firm(f)] - left
            arr.balance[firm(f)] = left
        assert (arr.balance[arr.acct_base[ledger.FIRM]:arr.acct_base[ledger.FIRM + 1]] >= 0).all()
    assert drained is not None
    s = m.series
    unpaid = s[:, R.ROYALTIES_UNPAID].sum()
    assert unpaid > 0
    R.check_series(s, cfg)   # paid + unpaid + outstanding = every schedule's total, month by month
    a = drained
    assert arr.roy_paid[a] < arr.roy_total[a] - arr.roy_due_left[a]   # this schedule was short-paid
    assert unpaid == (arr.roy_total - arr.roy_due_left - arr.roy_paid).sum()


def test_a_royalty_run_is_a_valid_sweep_record(tmp_path):
    """A sweep's result check derives its accounts from the declared forms and payments: royalty contracts count
    (before, it summed licences and trials only and would have quarantined every royalty run as corrupt)."""
    from sim import api
    from sim.runs import sweep

    cfg = api.compose(*SMALL, "regime=royalty", "engine=numba")
    r = api.simulate(cfg, 2)
    assert r.summary["signed_royalty"] > 0
    rid = sweep.run_id(cfg, 2)
    store = sweep.ResultStore(tmp_path)
    store.write(rid, sweep.record_of(cfg, 2, rid, r.summary))
    record, problem = store.load(rid)
    assert problem is None and record["metrics"]["contracts"] == r.summary["contracts"]


def test_a_firm_whose_instalments_ate_the_cash_it_agreed_to_pay_does_not_sign():
    """Regression (found by a Sobol design): a firm paying instalments of an earlier royalty while it negotiates a new
    contract held, at signing, less than the cash it had agreed to pay (its pledge loan set at the start of the
    negotiation) and was overdrawn. The instalments are paid first (they are owed); a firm that can no longer pay
    what it agreed at signing does not sign. Every account stays >= 0 and every negotiation that concluded was paid
    in full (the audit log: each signing's payments come from cash the firm held)."""
    over = {"scenario.firms.need_patience": 10, "scenario.firms.self_search_prob": 0.0399,
            "scenario.firms.risk_aversion_sme": 0.5112, "scenario.firms.prior_success": 0.3727,
            "scenario.universities.reservation_share": 0.3262, "scenario.achievements.quality_a": 9.268,
            "scenario.achievements.ask_share": 0.2201, "scenario.negotiation.breakdown_hazard": 0.0725,
            "scenario.brokers.noise": 0.3659, "regime.name": "royalty_pledge",
            "regime.instruments": ["royalty", "maturation", "ip_pledge", "appraisal", "expert_visits"]}
    cfg = api.replace(api.compose("engine=numba"), **over)
    series, n, money, arrays = kernels.run(cfg, 2, audit_rows=2_000_000)
    check_invariants(series, n, money, cfg)  # raised InvariantError ("a firm paid more than it had") before
    lo, hi = arrays.acct_base[ledger.FIRM], arrays.acct_base[ledger.FIRM + 1]
    log = arrays.audit[:arrays.audit_n[0]]
    assert arrays.audit_n[0] < 2_000_000
    flows = np.zeros(hi - lo, dtype=np.int64)
    for _, _, payer, payee, amount in log:
        if lo <= payer < hi:
            flows[payer - lo] -= amount
        if lo <= payee < hi:
            flows[payee - lo] += amount
    balance = arrays.balance[lo:hi] - flows  # each firm's starting cash, replayed payment by payment
    for _, _, payer, payee, amount in log:
        if lo <= payer < hi:
            balance[payer - lo] -= amount
            assert balance[payer - lo] >= 0
        if lo <= payee < hi:
            balance[payee - lo] += amount


@pytest.mark.parametrize("factor, signed", [(0.98, True), (1.02, False)])
def test_a_university_offers_a_royalty_up_to_the_risk_aversion_the_closed_form_allows(factor, signed):
    # every signal clipped to 0.01 or 0.99 and a royalty (half the value, nothing upfront) whose CARA certainty
    # equivalent is its bound -ln(1 - q) / r: offered only where ra <= -ln(0.01) / 0.6 (reservation share 0.6)
    bound = -math.log(1 - 0.99) / 0.6
    cfg = cfg_of("regime=royalty", "scenario.universities.reservation_share=0.6", "scenario.firms.self_noise=10",
                 "scenario.brokers.noise=10", "royalty.upfront_share=0", "royalty.rate=0.5",
                 f"scenario.universities.risk_aversion={factor * bound}")
    s = api.simulate(cfg, 0, "numba").summary
    assert (s["signed_royalty"] > 0) == signed, s["signed_royalty"]


def test_every_royalty_contract_asks_its_upfront_share_of_its_own_asking_price_and_its_rate_of_the_value():
    # contract by contract: at signing round(upfront_share x ask), on success round(rate x the project's value)
    cfg = cfg_of("regime=royalty", "royalty.upfront_share=0.15", "royalty.rate=0.07")
    assert R.upfront(0.15, 1_000_001) == 150_000 and R.royalty_total(0.07, 2_000_000) == 140_000
    _, _, _, arr = kernels.run(cfg, 3)
    mine = arr.c_form == R.ROYALTY
    a = arr.c_ach[mine]
    assert mine.sum() > 10
    assert (arr.c_at_sign[mine] == np.floor(0.15 * arr.ach_ask[a] + 0.5)).all()
    assert (arr.c_on_success[mine] == np.floor(0.07 * arr.c_value[mine] + 0.5)).all()
