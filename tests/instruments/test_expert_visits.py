"""Expert visits and matching events (sim/instruments/expert_visits.py): publicly organised search.

Each test asserts something a wrong implementation would break: the calendar of events;
a hand-computed run of one firm and one achievement (every visit and event paid, or denied
by the budget, from the audit log; the one need surfaced and the one match); a rule
between the instrument and the scenario; expert visits raise the needs surfaced per firm
and the matches over paired seeds (a statistical statement, not a tuned number); and a
corrupted series is caught.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim import api
from sim.core import columns, ledger
from sim.engines.numba import kernels
from sim.instruments import expert_visits as EV
from sim.engines.mesa.model import TransferModel
from sim.core.results import FORM_COLUMNS, InvariantError, check_invariants
from sim.core.schema import ConfigError

from ..conftest import small

DIRECTION_SEEDS = range(7300, 7320)  # seeds no other suite uses
ONE_SEED = 7351


# --------------------------------------------------------------------------- (1) the calendar of events
@pytest.mark.parametrize("per_year", range(13))
def test_events_are_as_many_as_asked_each_year_evenly_spaced_from_its_first_month(per_year):
    for year in range(3):
        months = [m for m in range(12 * year, 12 * year + 12) if EV.event_held(m, per_year)]
        assert len(months) == per_year
        if per_year:
            assert months[0] == 12 * year
            gaps = np.diff(months + [12 * year + 12])   # the last gap runs to next year's first event
            assert gaps.max() - gaps.min() <= 1, months


# --------------------------------------------------------------------------- (2) one firm, one achievement, by hand
VISIT, EVENT = 1000, 10000
BUDGET = 12500   # a year's money for the first month's visit and event, and one more visit


def one_firm(*overrides):
    """One risk-neutral, rich SME with one project slot and one achievement it surely wants at a bargained licence
    price: no need of its own, no broker, no arrivals; one expert visit a month, two events a year; a budget for three
    payments a year."""
    return api.compose(
        "progress=false", "scenario.months=13", "scenario.sectors=1", "scenario.firms.projects_sme=1",
        "scenario.firms.n=1", "scenario.firms.sme_share=1", "scenario.firms.need_rate_sme=0",
        "scenario.firms.need_rate_large=0", "scenario.firms.self_search_prob=0", "scenario.firms.risk_aversion_sme=0",
        "scenario.firms.cash_median_sme=1e9", "scenario.firms.cash_sigma=0",
        "scenario.universities.n=1", "scenario.universities.achievements_each=1",
        "scenario.universities.arrivals_per_month=0", "scenario.universities.expiry_months=1200",
        "scenario.universities.reservation_share=0", "scenario.achievements.value_median=1e8",
        "scenario.achievements.value_sigma=0", "scenario.achievements.cost_share=0.01",
        "scenario.negotiation.breakdown_hazard=0",
        "scenario.brokers.initial=0", "scenario.brokers.max=0", "scenario.brokers.entry_candidates=0",
        "regime=expert_visits", "expert_visits.visits_per_month=1", "expert_visits.surface_chance=1", "expert_visits.screen=1",
        f"expert_visits.visit_cost={VISIT}", "expert_visits.events_per_year=2", f"expert_visits.event_cost={EVENT}",
        f"government.annual_budget={BUDGET}", *overrides)


def test_one_firm_one_achievement_by_hand():
    """Month 0: the visit (1,000) surfaces the firm's need (chance 1), the expert proposes the only achievement, the
    firm opens a negotiation (it gains ~1e8 x its estimate for a price it bargains), and the event (10,000) finds it
    busy. Month 1: a visit, 12,000 spent. Months 2-11: 13,000 would exceed the 12,500 budget: every visit denied, and
    the event of month 6. Month 12, a new budget year: a visit and an event, the firm busy (a 12-month term signed no
    earlier than month 0 ends at month 12 at the earliest, after the month's search)."""
    cfg = one_firm()
    mesa = TransferModel(cfg, ONE_SEED, audit_rows=1000)
    series = mesa.run()
    numba, _, money0, arr = kernels.run(cfg, ONE_SEED, audit_rows=1000)
    assert np.array_equal(series, numba)
    assert np.array_equal(mesa.arrays.audit, arr.audit)
    check_invariants(numba, 1, money0, cfg)

    paid_months = [0, 1, 12]
    expected = {
        EV.VISITS: [1 if m in paid_months else 0 for m in range(13)],
        EV.VISITS_DENIED: [0 if m in paid_months else 1 for m in range(13)],
        EV.EVENTS_HELD: [1 if m in (0, 12) else 0 for m in range(13)],
        EV.EVENTS_DENIED: [1 if m == 6 else 0 for m in range(13)],
        EV.NEEDS_BY_VISITS: [1] + [0] * 12,
        EV.PROPOSALS_BY_VISITS: [1] + [0] * 12,
        EV.MATCHES_BY_VISITS: [1] + [0] * 12,
        columns.NEEDS_RAISED: [1] + [0] * 12,
        columns.NEEDS_SURFACED: [1] + [0] * 12,
        columns.MATCHES: [1] + [0] * 12,
        EV.NEEDS_AT_EVENTS: [0] * 13,
        EV.PROPOSALS_AT_EVENTS: [0] * 13,
        EV.MATCHES_AT_EVENTS: [0] * 13,
    }
    for col, want in expected.items():
        assert series[:, col].tolist() == want, columns.COLUMNS[col].name
    assert series[:, EV.CONTRACTS_BY_VISITS].sum() == series[:, list(FORM_COLUMNS)].sum() <= 1  # signed or not yet

    # the audit log: government pays the market, per visit and per event, in the months above and nothing else
    audit = arr.audit[:arr.audit_n[0]]
    gov, market = arr.acct_base[ledger.GOVERNMENT], arr.acct_base[ledger.MARKET]
    for kind, months, amount in ((EV.VISIT_COSTS, paid_months, VISIT), (EV.EVENT_COSTS, [0, 12], EVENT)):
        rows = audit[audit[:, 1] == kind]
        assert rows[:, 0].tolist() == months
        assert (rows[:, 2] == gov).all() and (rows[:, 3] == market).all() and (rows[:, 4] == amount).all()
    assert (audit[:, 2] == gov).sum() == len(paid_months) + 2   # government pays nothing else
    assert numba[-1, ledger.ACCOUNT_CLASSES[ledger.GOVERNMENT].column] == -(3 * VISIT + 2 * EVENT)
    summary = api.simulate(cfg, ONE_SEED, "numba").summary
    assert summary["gov_spend_search"] == summary["gov_spend"] == 3 * VISIT + 2 * EVENT


def test_without_a_budget_every_visit_and_event_is_paid():
    cfg = one_firm("government.annual_budget=null", "scenario.months=12")
    series = api.simulate(cfg, ONE_SEED, "numba").series
    assert series[:, EV.VISITS].tolist() == [1] * 12 and not series[:, EV.VISITS_DENIED].any()
    assert series[:, EV.EVENTS_HELD].tolist() == [1 if m in (0, 6) else 0 for m in range(12)]
    assert series[:, EV.VISIT_COSTS].sum() == 12 * VISIT and series[:, EV.EVENT_COSTS].sum() == 2 * EVENT


def test_an_events_attendees_are_distinct_firms_drawn_uniformly():
    order = np.zeros(30, dtype=np.int64)
    seen = np.zeros(30)
    for month in range(600):
        m = EV.attendees(ONE_SEED, month, 10, order)
        assert m == 10 and len(set(order[:m])) == 10 and sorted(order) == list(range(30))
        seen[order[:m]] += 1
    # each firm attends a third of the events: 200 expected, binomial sd ~11.5; 5 sd either side
    assert seen.min() > 200 - 5 * 11.5 and seen.max() < 200 + 5 * 11.5
    assert EV.attendees(ONE_SEED, 0, 40, order) == 30   # all the region's firms, when it has fewer
    assert sorted(order) == list(range(30))
    again = np.zeros(30, dtype=np.int64)
    EV.attendees(ONE_SEED, 5, 10, order)
    EV.attendees(ONE_SEED, 5, 10, again)
    assert np.array_equal(order[:10], again[:10])     # keyed: the same seed and month, the same firms


def test_a_month_of_search_is_bounded():
    with pytest.raises(ConfigError, match=r"^expert_visits\.visits_per_month = 1000000: with expert_visits\.screen = 10000 .* "
                                          r"must be at most 1e\+09 \(a run would take days\)$"):
        one_firm("expert_visits.visits_per_month=1000000", "expert_visits.screen=10000")
    one_firm("expert_visits.visits_per_month=1000000", "expert_visits.screen=10000", "regime=baseline")  # a rule only when on


# --------------------------------------------------------------------------- (3) the direction, over paired seeds
def test_expert_visits_raise_needs_surfaced_per_firm_and_matches():
    """Paired seeds (the same firms and chance events with and without visits): the mean paired difference in needs
    surfaced per firm, and in matches, is positive by more than three standard errors (one-sided p < 0.002 for a
    normal mean), and a one-sided sign test on the non-zero differences agrees (p < 0.001)."""
    base, on = small("regime=baseline"), small("regime=expert_visits")
    firms = base.scenario.firms.n
    diffs = {"needs_surfaced_per_firm": [], "matches": []}
    for seed in DIRECTION_SEEDS:
        a, b = api.simulate(base, seed, "numba"), api.simulate(on, seed, "numba")
        diffs["needs_surfaced_per_firm"].append(
            (b.series[:, columns.NEEDS_SURFACED].sum() - a.series[:, columns.NEEDS_SURFACED].sum()) / firms)
        diffs["matches"].append(b.summary["matches"] - a.summary["matches"])
        assert b.summary["visits_made"] > 0 and a.summary["visits_made"] == 0
    for name, d in diffs.items():
        d = np.asarray(d)
        se = d.std(ddof=1) / math.sqrt(len(d))
        assert d.mean() > 3 * se, f"{name}: mean paired difference {d.mean():.3g}, standard error {se:.3g}"
        n, positive = int((d != 0).sum()), int((d > 0).sum())
        p_sign = sum(math.comb(n, k) for k in range(positive, n + 1)) / 2 ** n   # one-sided binomial
        assert p_sign < 1e-3, f"{name}: sign test p = {p_sign:.2g} ({positive} of {n} differences positive)"


# --------------------------------------------------------------------------- (4) invariants
@pytest.fixture(scope="module")
def good_run():
    cfg = small("regime=expert_visits", "scenario.months=24", "expert_visits.events_per_year=2")
    r = api.simulate(cfg, ONE_SEED, "numba")
    s = r.series
    assert s[:, EV.MATCHES_BY_VISITS].sum() > 0 and s[:, EV.EVENTS_HELD].sum() == 4
    return cfg, r


def _corrupt(s, col, delta, month=None):
    s = s.copy()
    m = int(np.nonzero(s[:, EV.VISITS])[0][0]) if month is None else month
    s[m, col] += delta
    return s


@pytest.mark.parametrize("col, delta, month, message", [
    (EV.VISIT_COSTS, 1, None, "payments for visits"),
    (EV.EVENT_COSTS, -1, 0, "payments for events"),
    (EV.VISITS, 1, None, "payments for visits"),            # a visit no one paid for
    (EV.VISITS_DENIED, 1, None, "visits made and denied"),
    (EV.EVENTS_DENIED, 1, 1, "events held and denied"),     # no event is scheduled in month 1
    (EV.NEEDS_BY_VISITS, 100, None, "more needs surfaced than visits"),
    (EV.PROPOSALS_BY_VISITS, 100, None, "more proposals than visits"),
    (EV.MATCHES_AT_EVENTS, 1000, 0, "more matches than proposals at events"),
    (columns.NEEDS_SURFACED, -1000, None, "more needs surfaced by visits and events than needs surfaced"),
    (EV.SUCCESSES_BY_VISITS, 1000, None, "more successes than contracts from visits"),
])
def test_a_corrupted_series_breaks_an_invariant(good_run, col, delta, month, message):
    cfg, r = good_run
    EV.check_series(r.series, cfg)   # the run itself is fine
    with pytest.raises(InvariantError, match=message):
        EV.check_series(_corrupt(r.series, col, delta, month), cfg)
