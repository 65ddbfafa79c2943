"""Maturation and pilot-test grants (seeds 003, 004): public grants make shelved achievements more mature.

Heilongjiang's plan (seed 003) sets out to "accelerate the maturation of stock
achievements"; Ningbo (seed 004) funds pilot verification before "scale-up" and
"commercial" verification. Here a bureau awards ``grants_per_month`` grants of
``grant`` yuan each month to shelved achievements not yet ready to use (maturity at most
``eligible_below``, each achievement at most once, and still ``min_shelf_months`` from
its expiry when the test ends), within the yearly budget. The grant
is paid to the university that owns the achievement (ledger kind ``maturation_grants``),
which spends it on the pilot test at once (``pilot_test_costs``, to the market outside:
the university is no richer for it). For ``months`` months the achievement is in the
pilot test (status ``MATURING``: not on offer); then it closes ``maturity_gain`` of its
gap to full maturity, ``m -> m + maturity_gain x (1 - m)``, and its implementation cost
falls as the population's cost rule says for the new maturity
(``cost x (1 + k (1 - m_new)) / (1 + k (1 - m))``, ``k = achievements.immaturity_cost``).
Both raise the success chance and the willingness of firms to sign
(:func:`sim.core.rules.success_chance`).

Which achievements: the bureau starts at a keyed random achievement and takes the next
eligible one in index order (universities' achievements in turn), so grants spread over
the portfolio without regard to quality: the sources say nothing of how pilot tests are
selected (judgement). Demand-led (``demand_led``), only achievements that a firm has
weighed and declined are eligible: the pilot test goes where a firm was interested but
found the achievement not worth its terms, which a grant may change. Outcomes of treated achievements are counted apart
(``successes_matured``, ``failures_matured``) so that their success rate can be compared
with the others'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.jit import entry, kernel

from ..core import columns, contracts, ledger, public, rng, rules, schema, state

NAME = "maturation"
SPEND = "maturation"   # government spend on this instrument is the run metric gov_spend_maturation
ZERO_STRENGTH = ("maturation.grants_per_month=0",)  # on, yet no grant awarded


@dataclass
class Params:
    grants_per_month: int = schema.param(
        2, ge=0, le=schema.PER_MONTH_MAX,
        doc="pilot-test grants awarded a month (judgement: ~24 a year, 4% of the default region's stock of 600; "
            "Heilongjiang's plan, seed 003, aims at 1,200 achievements industrialised over 4 years in a province)")
    grant: float = schema.money(
        300000.0, "yuan per grant, paid to the achievement's university for its pilot test (judgement: a pilot "
                  "verification of a few hundred thousand yuan; seeds 003, 004 give no amount; range 0.1-2 M)")
    months: int = schema.months(6, "months an achievement spends in the pilot test, not on offer (judgement: half "
                                   "a year; range 3-12)")
    maturity_gain: float = schema.share(
        0.5, "share of its gap to full maturity an achievement closes in the pilot test (judgement; range 0.2-0.8)")
    eligible_below: float = schema.share(
        0.5, "only achievements at most this mature get a grant (judgement: pilot tests are for early-stage "
             "achievements, seed 004's verification before scale-up)")
    min_shelf_months: int = schema.param(
        12, ge=0, le=schema.MONTHS_MAX,
        doc="months an achievement must still have before its expiry when its pilot test ends (judgement: a year on "
            "the shelf to find a firm; 0: only that it is not expired by then)")
    demand_led: bool = schema.param(
        False, doc="grants only to achievements a firm has weighed and declined (judgement: pilot-test funding "
                   "where an interested firm found the achievement not ready; false: any shelved achievement)")


MATURATION_GRANTS = ledger.kind("maturation_grants", ledger.GOVERNMENT, ledger.UNIVERSITY,
                                "public grants for pilot tests of shelved achievements", owner=NAME)
PILOT_TEST_COSTS = ledger.kind("pilot_test_costs", ledger.UNIVERSITY, ledger.MARKET,
                               "universities' spending of maturation grants on pilot tests", owner=NAME)
GRANTS_AWARDED = columns.column("grants_awarded", "maturation grants awarded", summary=True, owner=NAME)
GRANTS_DENIED = columns.column("grants_denied", "maturation grants not awarded for lack of budget", summary=True,
                               owner=NAME)
SUCCESSES_MATURED = columns.column("successes_matured", "successes of achievements that had a maturation grant",
                                   summary=True, owner=NAME)
FAILURES_MATURED = columns.column("failures_matured", "failures of achievements that had a maturation grant",
                                  summary=True, owner=NAME)
state.field("ach_granted", "achievement", np.int64, -1, "month of its maturation grant, or -1 (at most one)", owner=NAME)
state.field("ach_maturing_until", "achievement", np.int64, -1, "month its pilot test ends, or -1", owner=NAME)


MONEY_KEYS = "maturation.grant, grants_per_month or scenario.months"  # what to lower when the money bound is passed


def money_bound(cfg, pop) -> float:
    """Every grant paid and spent (two payments each), all months."""
    m = cfg.maturation
    return 2.0 * m.grants_per_month * cfg.scenario.months * m.grant


# --------------------------------------------------------------------------- rules
@entry
def matured(maturity, cost, gain, immaturity_cost):
    """An achievement's (maturity, SME implementation cost) after its pilot test: it closes ``gain`` of its gap to
    full maturity, and its cost follows the population's rule ``cost ~ 1 + immaturity_cost x (1 - maturity)`` (whole
    yuan)."""
    new = maturity + gain * (1.0 - maturity)
    return new, rules.yuan(cost * (1.0 + immaturity_cost * (1.0 - new)) / (1.0 + immaturity_cost * (1.0 - maturity)))


@kernel
def eligible(p, st, a, month):
    """Whether achievement ``a`` can get a grant this month: shelved, early-stage, never funded, with
    ``min_shelf_months`` left before its expiry when the test ends (and, demand-led, declined by a firm that weighed
    it)."""
    m = p.maturation
    return (st.ach_status[a] == rules.SHELVED and st.ach_granted[a] < 0 and st.ach_maturity[a] <= m.eligible_below
            and month + m.months + m.min_shelf_months < st.ach_born[a] + p.expiry_months
            and (st.ach_declined[a] > 0 or not m.demand_led))


@kernel
def pick(p, st, month, k, disclosed):
    """The ``k``-th grant of ``month`` goes to the first eligible achievement from a keyed start, in the order of
    their disclosure (``st.ach_key``: the first ``disclosed`` keys are those disclosed by now, whatever the run's
    length), or -1."""
    if disclosed <= 0:
        return -1
    start = rng.randint(p.seed, rng.MATURATION_PICK, month, k, disclosed)
    for j in range(disclosed):
        a = st.ach_of_key[(start + j) % disclosed]
        if eligible(p, st, a, month):
            return a
    return -1


# --------------------------------------------------------------------------- hooks
@kernel
def on_month(p, st, series, month):
    """Pilot tests ending this month mature their achievements (back on the shelf); then this month's grants."""
    m = p.maturation
    for a in range(st.ach_status.shape[0]):
        if st.ach_status[a] == rules.MATURING and st.ach_maturing_until[a] <= month:
            st.ach_maturity[a], st.ach_cost[a] = matured(st.ach_maturity[a], st.ach_cost[a], m.maturity_gain,
                                                         p.immaturity_cost)
            st.ach_maturing_until[a] = -1
            contracts.shelve(p, st, a, month)
    amount = rules.yuan(m.grant)
    disclosed = 0
    for a in range(st.ach_born.shape[0]):
        disclosed += st.ach_born[a] <= month
    for k in range(m.grants_per_month):
        a = pick(p, st, month, k, disclosed)
        if a < 0:
            return
        university = ledger.account(st, ledger.UNIVERSITY, st.ach_owner[a])
        if not public.pay_public(p, st, series, month, university, amount, MATURATION_GRANTS):
            series[month, GRANTS_DENIED] += m.grants_per_month - k
            return
        ledger.pay(st, series, month, university, ledger.account(st, ledger.MARKET, 0), amount, PILOT_TEST_COSTS)
        st.ach_granted[a] = month
        st.ach_status[a] = rules.MATURING
        st.ach_maturing_until[a] = month + m.months
        series[month, GRANTS_AWARDED] += 1


@kernel
def on_settle(p, st, series, month, j, success):
    if st.ach_granted[st.c_ach[j]] >= 0:
        series[month, SUCCESSES_MATURED if success else FAILURES_MATURED] += 1


# --------------------------------------------------------------------------- results
def check_series(s, cfg, c=None) -> None:
    """Each grant paid in full and spent on its pilot test; outcomes of treated achievements within all outcomes;
    no more achievements in pilot tests than grants awarded."""
    from ..core.results import InvariantError, cumulative, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    grant = rules.yuan(cfg.maturation.grant)
    for kind in (MATURATION_GRANTS, PILOT_TEST_COSTS):
        bad = s[:, :, kind] != s[:, :, GRANTS_AWARDED] * grant
        if failed(bad):
            m = first_month(bad)
            raise InvariantError(f"month {m}: {columns.COLUMNS[kind].name} {s[0, m, kind]:.0f} is not "
                                 f"{s[0, m, GRANTS_AWARDED]:.0f} grants of {grant} yuan")
    c = cumulative(s) if c is None else c
    for mine, total in ((SUCCESSES_MATURED, columns.SUCCESSES), (FAILURES_MATURED, columns.FAILURES)):
        bad = s[:, :, mine] > s[:, :, total]
        if failed(bad):
            raise InvariantError(f"month {first_month(bad)}: more {columns.COLUMNS[mine].name} than "
                                 f"{columns.COLUMNS[total].name}")
    bad = s[:, :, columns.MATURING] > c[:, :, GRANTS_AWARDED]
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: more achievements maturing than grants awarded")


def summarize(totals: dict, s) -> dict:
    """Its run metrics, one array over the runs each (``totals``: the run metrics so far; ``s``: the series,
    ``(runs, months, columns)``)."""
    from ..core.results import ratio

    treated = totals["successes_matured"] + totals["failures_matured"]
    others = totals["successes"] + totals["failures"] - treated
    return {"matured_success_rate": ratio(totals["successes_matured"], treated),
            "unmatured_success_rate": ratio(totals["successes"] - totals["successes_matured"], others)}
