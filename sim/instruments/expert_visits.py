"""Expert visits and matching events (seeds 000, 002, 004): publicly organised search, paid per visit or event.

Government organises search and pays for it, per visit and per event, never per deal:

* **Expert visits** (Jinyun: 50+ professors in firms' workshops, 100+ needs collected;
  Longquan: 100+ firms visited in five rounds, 68 needs, 29 achievements matched, 9
  use-before-transfer contracts; Ningbo: 230+ expert brokers from universities visiting
  firms). Each month ``visits_per_month`` visits go to firms drawn uniformly, with
  replacement, from all firms of the region (no targeting: an expert may find a firm's
  every project slot busy; the county scenario's firms are almost all SMEs anyway). A visit
  deals with the firm's open need, else surfaces a latent need in its first idle project
  slot with ``surface_chance`` (:func:`sim.core.contracts.visited_project`); for a need, the
  expert screens ``screen`` achievements of the firm's sector with judging error ``noise``
  (experts know the science) and the firm considers the best shelved one, as with a
  broker's proposal but with no broker and no fee (:func:`sim.core.contracts.visit`).
* **Matching events** (Ningbo: one matching day of the innovation challenge, 40+
  intentions; Tianjin: 7 use-first projects from 5 institutions signed at one event).
  ``events_per_year`` events, evenly spaced over the budget year from its first month
  (:func:`event_held`). ``event_firms`` distinct firms attend (all of them if the region
  has fewer), drawn uniformly without replacement (:func:`attendees`); attending
  surfaces, in a firm with no open need, a latent need in a free project slot with
  ``event_surface_chance``; each attendee with a
  need hears ``event_pitches`` pitches of its sector and judges them itself, with its own
  error (``scenario.firms.self_noise``, as when it finds a candidate alone).

Government pays ``visit_cost`` per visit and ``event_cost`` per event to the market (the
outside economy): the payment buys real resources (experts' days, travel, a venue), so it
is a cost of the policy, not income of the universities whose experts go (their
income in the model is what firms pay them). Within the yearly budget
(``government.annual_budget``): a visit or an event the budget cannot pay is not made
(``visits_denied``, ``events_denied``). Needs surfaced, candidates proposed (Longquan's
"matched achievements"), matches (negotiations opened), contracts and successes are counted
by the search that found them (``*_by_visits``, ``*_at_events``): the funnel Longquan reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.jit import entry, kernel

from ..core import columns, contracts, ledger, public, rng, rules, state
from ..core.schema import COUNT_MAX, PER_MONTH_MAX, VISITS_MAX, ConfigError, _c, factor, money, share

NAME = "expert_visits"


@dataclass
class Params:
    visits_per_month: int = _c(8, ge=0, le=COUNT_MAX, doc="expert visits to firms a month (Longquan: 100+ firms "
                               "visited in 5 rounds over about a year, ~8 a month, seed 000; Ningbo's 230+ expert "
                               "brokers visit a city's firms yearly, seed 004)")
    surface_chance: float = share(0.6, "chance a visit surfaces a latent need in a firm with no open need and a project slot free (Longquan: 68 needs "
                                       "from 100+ firms visited; Jinyun: 100+ needs from 50+ experts' visits, seed 000)")
    screen: int = _c(5, ge=0, le=PER_MONTH_MAX, doc="achievements of the firm's sector an expert screens for a firm "
                     "with a need (judgement: as a broker, scenario.brokers.screen; 0: visits only collect needs)")
    noise: float = factor(0.1, "sd of an expert's error in judging a candidate's success chance (judgement: experts "
                               "know the science, half an unskilled broker's 0.2; range 0.05-0.2)", hi=10.0)
    visit_cost: float = money(5000.0, "government's cost of one visit (yuan; judgement: a day of two experts with "
                                      "travel; range 2,000-10,000)")
    events_per_year: int = _c(1, ge=0, le=12, doc="matching events a budget year, evenly spaced from its first "
                              "month (Ningbo: the yearly matching day of the innovation challenge, seed 004; Tianjin: "
                              "one signing event, seed 002)")
    event_firms: int = _c(40, ge=0, le=COUNT_MAX, doc="firms attending an event (judgement: of the order of "
                          "the 40+ intentions of Ningbo's matching day, seed 004; Tianjin's event signed 7, seed 002)")
    event_surface_chance: float = share(0.3, "chance attending surfaces a latent need in a firm with no open need and a slot free (judgement: "
                                             "half a workshop visit's, a pitch is shallower; range 0.1-0.6)")
    event_pitches: int = _c(5, ge=0, le=PER_MONTH_MAX, doc="achievements of its sector pitched to an attending firm "
                            "with a need, judged by the firm itself (judgement: a day's roadshow; range 2-10)")
    event_cost: float = money(200000.0, "government's cost of one event (yuan; judgement: venue, organisation and "
                                        "the inventors' travel for a day; range 50,000-500,000)")


# what the instrument adds to the model
VISIT_COSTS = ledger.kind("expert_visit_costs", ledger.GOVERNMENT, ledger.MARKET,
                          "government's payments for expert visits (experts' time, travel)", owner=NAME)
EVENT_COSTS = ledger.kind("matching_event_costs", ledger.GOVERNMENT, ledger.MARKET,
                          "government's payments for matching events (venue, organisation, travel)", owner=NAME)
VISITS = columns.column("visits_made", "expert visits made to firms, paid by government", summary=True, owner=NAME)
VISITS_DENIED = columns.column("visits_denied", "expert visits not made for lack of budget", summary=True, owner=NAME)
NEEDS_BY_VISITS = columns.column("needs_surfaced_by_visits", "latent needs an expert visit surfaced", summary=True,
                                 owner=NAME)
PROPOSALS_BY_VISITS = columns.column("proposals_by_visits", "candidates an expert put to a firm with a need on a "
                                     "visit (Longquan's 'matched achievements'), whether or not it negotiated",
                                     summary=True, owner=NAME)
MATCHES_BY_VISITS = columns.column("matches_by_visits", "matches an expert proposed on a visit", summary=True,
                                   owner=NAME)
CONTRACTS_BY_VISITS = columns.column("contracts_by_visits", "contracts signed on an expert's proposal", summary=True,
                                     owner=NAME)
SUCCESSES_BY_VISITS = columns.column("successes_by_visits", "successes of contracts an expert proposed",
                                     summary=True, owner=NAME)
EVENTS_HELD = columns.column("events_held", "matching events held, paid by government", summary=True, owner=NAME)
EVENTS_DENIED = columns.column("events_denied", "matching events not held for lack of budget", summary=True,
                               owner=NAME)
NEEDS_AT_EVENTS = columns.column("needs_surfaced_at_events", "latent needs surfaced in firms attending an event",
                                 summary=True, owner=NAME)
PROPOSALS_AT_EVENTS = columns.column("proposals_at_events", "candidates pitched to an attending firm with a need "
                                     "(its best by its own judgement), whether or not it negotiated", summary=True,
                                     owner=NAME)
MATCHES_AT_EVENTS = columns.column("matches_at_events", "matches from pitches at an event", summary=True, owner=NAME)
CONTRACTS_AT_EVENTS = columns.column("contracts_at_events", "contracts signed on a pitch at an event", summary=True,
                                     owner=NAME)
SUCCESSES_AT_EVENTS = columns.column("successes_at_events", "successes of contracts pitched at an event",
                                     summary=True, owner=NAME)
FOUND_ELSEWHERE, FOUND_BY_VISIT, FOUND_AT_EVENT = 0, 1, 2
state.field("event_order", "firm", np.int64, 0, "scratch: the firms in an event's order of attendance", owner=NAME)
state.field("c_found_by", "project", np.int64, FOUND_ELSEWHERE, "who found the project's contract: 0 the firm or a "
            "broker, 1 an expert visit, 2 a matching event", owner=NAME)
SPEND = "search"   # government spend on this instrument is the run metric gov_spend_search
ZERO_STRENGTH = ("expert_visits.visits_per_month=0", "expert_visits.events_per_year=0")  # on, yet no visit and no event


MONEY_KEYS = "expert_visits.visit_cost, visits_per_month or event_cost, or scenario.months"  # what to lower when the money bound is passed


def money_bound(cfg, pop) -> float:
    """Government's payments for visits and events: every visit paid and an event every month, all months."""
    e = cfg.expert_visits
    events = e.event_cost if e.events_per_year > 0 else 0.0
    return float(cfg.scenario.months) * (float(e.visits_per_month) * e.visit_cost + events)


# --------------------------------------------------------------------------- rules
@entry
def event_held(month, per_year):
    """Whether a matching event is held in ``month``: ``per_year`` events (0-12) evenly spaced over each budget year,
    the first in its first month (month j of the year holds one when floor(j x per_year / 12) steps up)."""
    j = month % 12
    if per_year <= 0:
        return False
    return j == 0 or (j * per_year) // 12 > ((j - 1) * per_year) // 12


@entry
def attendees(seed, month, m, order):
    """The firms attending the event of ``month``: ``m`` of the ``order.shape[0]`` firms (all if fewer) drawn
    uniformly without replacement, in ``order[:m]`` (a keyed partial Fisher-Yates shuffle); returns how many."""
    n = order.shape[0]
    m = min(m, n)
    for i in range(n):
        order[i] = i
    for k in range(m):
        j = k + rng.randint(seed, rng.EVENT_ATTEND, month, k, n - k)
        order[k], order[j] = order[j], order[k]
    return m


@kernel
def _count(st, series, month, surfaced, proposed, matched, needs, proposals, matches, found_by):
    """Count what one visit or one attendance found, in its search's columns; a match (``matched``: the project
    slot whose negotiation opened, or -1) remembers which search found it (its contract and success are counted by
    that search)."""
    if surfaced:
        series[month, needs] += 1
    if proposed:
        series[month, proposals] += 1
    if matched >= 0:
        series[month, matches] += 1
        st.c_found_by[matched] = found_by


# --------------------------------------------------------------------------- hooks
@kernel
def search(p, st, series, month):
    """This month's expert visits, then its matching event if one is held (the visits collect needs, the event
    matches them: Ningbo's order, seed 004)."""
    e = p.expert_visits
    n = st.firm_alpha.shape[0]
    cost = rules.yuan(e.visit_cost)
    for k in range(e.visits_per_month):
        if not public.pay_public(p, st, series, month, ledger.account(st, ledger.MARKET, 0), cost, VISIT_COSTS):
            series[month, VISITS_DENIED] += 1
            continue
        series[month, VISITS] += 1
        f = rng.randint(p.seed, rng.EXPERT_VISIT, month, k, n)
        surfaced, proposed, matched = contracts.visit(p, st, series, month, f, k, e.surface_chance,
                                                      rng.EXPERT_SURFACE, st.firm_sector[f], e.noise, e.screen,
                                                      rng.EXPERT_SCREEN, rng.EXPERT_NOISE, -1)
        _count(st, series, month, surfaced, proposed, matched, NEEDS_BY_VISITS, PROPOSALS_BY_VISITS,
               MATCHES_BY_VISITS, FOUND_BY_VISIT)
    if not event_held(month, e.events_per_year):
        return
    if not public.pay_public(p, st, series, month, ledger.account(st, ledger.MARKET, 0), rules.yuan(e.event_cost),
                                EVENT_COSTS):
        series[month, EVENTS_DENIED] += 1
        return
    series[month, EVENTS_HELD] += 1
    for k in range(attendees(p.seed, month, e.event_firms, st.event_order)):
        f = st.event_order[k]
        surfaced, proposed, matched = contracts.visit(p, st, series, month, f, k, e.event_surface_chance,
                                                      rng.EVENT_SURFACE, st.firm_sector[f], p.self_noise,
                                                      e.event_pitches, rng.EVENT_SCREEN, rng.EVENT_NOISE, -1)
        _count(st, series, month, surfaced, proposed, matched, NEEDS_AT_EVENTS, PROPOSALS_AT_EVENTS,
               MATCHES_AT_EVENTS, FOUND_AT_EVENT)


@kernel
def on_open(p, st, series, month, j, cover):
    """A negotiation opens: found by the firm or a broker unless the search above says otherwise."""
    st.c_found_by[j] = FOUND_ELSEWHERE


@kernel
def on_sign(p, st, series, month, j):
    if st.c_found_by[j] == FOUND_BY_VISIT:
        series[month, CONTRACTS_BY_VISITS] += 1
    elif st.c_found_by[j] == FOUND_AT_EVENT:
        series[month, CONTRACTS_AT_EVENTS] += 1


@kernel
def on_settle(p, st, series, month, j, success):
    if success and st.c_found_by[j] == FOUND_BY_VISIT:
        series[month, SUCCESSES_BY_VISITS] += 1
    elif success and st.c_found_by[j] == FOUND_AT_EVENT:
        series[month, SUCCESSES_AT_EVENTS] += 1


# --------------------------------------------------------------------------- configuration and invariants
def screenings(cfg) -> int:
    """The most achievements screened by visits and pitched at an event in one month."""
    e = cfg.expert_visits
    return e.visits_per_month * (e.screen + 1) + min(e.event_firms, cfg.scenario.firms.n) * (e.event_pitches + 1)


def work_per_month(cfg) -> float:
    """Its part of a run's steps a month (sim.core.config.run_work)."""
    return float(screenings(cfg))


def check(cfg) -> None:
    e, n = cfg.expert_visits, screenings(cfg)
    if n > VISITS_MAX:
        raise ConfigError(f"expert_visits.visits_per_month = {e.visits_per_month}: with expert_visits.screen = {e.screen} and "
                          f"an event of {min(e.event_firms, cfg.scenario.firms.n)} firms x expert_visits.event_pitches = "
                          f"{e.event_pitches}, {n:g} screenings a month must be at most {VISITS_MAX:g} (a run would "
                          "take days)")


def _yuan(x: float) -> int:
    return int(rules.yuan(x))


def check_series(s, cfg, c=None) -> None:
    """Government pays exactly the visits and events made; each visit and event planned is made or denied; what
    the search found is part of the funnel it counts in (needs surfaced, matches); at most one need surfaced and one
    proposal per visit or attendee, a match only on a proposal, and never more contracts, then successes, than
    matches."""
    from ..core.results import InvariantError, cumulative, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    e = cfg.expert_visits

    def fail(bad, what):
        if failed(bad):
            m = first_month(bad)
            raise InvariantError(f"month {m}: expert visits: {what}")

    fail(s[:, :, VISIT_COSTS] != s[:, :, VISITS] * _yuan(e.visit_cost), "payments for visits differ from visits x "
         "expert_visits.visit_cost")
    fail(s[:, :, EVENT_COSTS] != s[:, :, EVENTS_HELD] * _yuan(e.event_cost), "payments for events differ from events x "
         "expert_visits.event_cost")
    if NAME in cfg.regime.instruments:
        fail(s[:, :, VISITS] + s[:, :, VISITS_DENIED] != e.visits_per_month, "visits made and denied differ from "
             "expert_visits.visits_per_month")
        held = np.array([event_held(m, e.events_per_year) for m in range(s.shape[1])])
        fail(s[:, :, EVENTS_HELD] + s[:, :, EVENTS_DENIED] != held, "events held and denied differ from those scheduled")
    fail(s[:, :, NEEDS_BY_VISITS] > s[:, :, VISITS], "more needs surfaced than visits")
    fail(s[:, :, PROPOSALS_BY_VISITS] > s[:, :, VISITS], "more proposals than visits")
    fail(s[:, :, MATCHES_BY_VISITS] > s[:, :, PROPOSALS_BY_VISITS], "more matches than proposals on visits")
    attendees = s[:, :, EVENTS_HELD] * min(e.event_firms, cfg.scenario.firms.n)
    fail(s[:, :, NEEDS_AT_EVENTS] > attendees, "more needs surfaced at events than attendees")
    fail(s[:, :, PROPOSALS_AT_EVENTS] > attendees, "more proposals at events than attendees")
    fail(s[:, :, MATCHES_AT_EVENTS] > s[:, :, PROPOSALS_AT_EVENTS], "more matches than proposals at events")
    fail(s[:, :, NEEDS_BY_VISITS] + s[:, :, NEEDS_AT_EVENTS] > s[:, :, columns.NEEDS_SURFACED],
         "more needs surfaced by visits and events than needs surfaced")
    fail(s[:, :, MATCHES_BY_VISITS] + s[:, :, MATCHES_AT_EVENTS] + s[:, :, columns.MATCHES_BROKERED] > s[:, :, columns.MATCHES],
         "more matches by visits, events and brokers than matches")
    c = cumulative(s) if c is None else c
    for matched, signed, succeeded, where in ((MATCHES_BY_VISITS, CONTRACTS_BY_VISITS, SUCCESSES_BY_VISITS, "visits"),
                                              (MATCHES_AT_EVENTS, CONTRACTS_AT_EVENTS, SUCCESSES_AT_EVENTS, "events")):
        fail(c[:, :, signed] > c[:, :, matched], f"more contracts than matches from {where}")
        fail(c[:, :, succeeded] > c[:, :, signed], f"more successes than contracts from {where}")
