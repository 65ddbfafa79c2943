"""Patent implementation failure insurance (Beijing-Tianjin-Hebei, 2024), premium subsidised by government.

Insurers quote a premium for covering ``coverage`` of a firm's implementation cost, less
a deductible, from their estimate of the rate of insured events (a prior plus their claims
experience) with a loading; government pays ``subsidy_share`` of the premium up to
``subsidy_cap`` per policy, within the yearly budget. A firm can add the cover to any
contract form; on an insured failure the insurer refunds the claim from its reserves, as
far as they go. An insurer below its minimum reserves stops writing for good.

One probability of an insured event, :func:`insured_event_chance` (a failure, and a
certified technical one: ``claim_share`` of failures), and nothing else, links the three
sides of a policy. With ``K`` the claim (:func:`claim_amount`: ``coverage x cost`` less the
deductible), ``s = claim_share``, ``pi`` the share of a claim the firm counts on its
insurer paying (:func:`payment_chance`, 1 while its reserves cover every running claim):

* the insurer's premium (:func:`quote`): ``(1 + loading) x q_hat x K``, where ``q_hat`` is
  its estimate of the rate of insured events per policy, a prior of
  ``insured_event_chance(prior_failure, s) = prior_failure x s`` updated by its claims
  (:func:`failure_estimate`);
* the firm's valuation (:func:`offer_covers`): on failure it counts on the expected refund
  ``R = insured_event_chance(1, s) x pi x K = s x pi x K`` (:func:`expected_refund`) in its
  certainty equivalent;
* the firm's effort (:func:`insured_chance`, moral hazard): its success chance ``p`` falls to
  ``p x (1 - moral_hazard x min(1, R / cost))``, with the same expected refund ``R``, not
  the whole cover: a firm that is refunded only a certified technical failure, 2% of
  failures, shirks as much as a 2% refund is worth.

So with the insurer's estimate at the true failure rate ``1 - p'`` (``p'`` the insured
chance) and no loading, the premium is the firm's expected refund, ``(1 - p') x R``, when
``pi = 1``; at ``s = 0`` nothing is paid, charged or shirked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.jit import entry, kernel

from ..core import columns, forms, ledger, public, rng, rules, state, views
from ..core.reserves import Holders, ReserveHolder, experience_rate, in_business, reserves_of, withdraw
from ..core.schema import ConfigError, _c, factor, money, share

NAME = "insurance"


@dataclass
class Params:
    insurers: int = _c(1, ge=0, le=1000, doc="insurers offering the product (judgement: one insurer wrote the first policies, seed 002)")
    coverage: float = share(0.8, "highest share of the implementation cost insured (judgement: cover short of the whole cost, as usual against moral hazard)")
    coverage_step: float = _c(0.2, gt=0.0, le=1.0, doc="the menu a firm chooses from: coverage step, 2 x step, ... "
                                                       "up to coverage (at most 10 levels; judgement)")
    claim_share: float = share(0.02, "share of failed implementations that are insured events (a certified technical "
                                     "failure, not a commercial one); with prior_failure it sets premiums near the "
                                     "1.5% of the first policy (600 yuan on ~40,000; judgement)")
    deductible: float = money(20000.0, "deductible per claim (yuan; judgement: about half the reported 40,000-yuan patents)")
    loading: float = factor(0.3, "premium loading over the expected claim (judgement: costs and profit of a new line)", hi=100.0)
    prior_failure: float = _c(0.6, gt=0.0, lt=1.0, doc="insurer's prior failure rate of the implementations it "
                                                       "insures; x claim_share, its prior rate of insured events (0.6 "
                                                       "x 2% = 1.2% of policies: a premium of 1.3 x 1.2% = 1.6% of "
                                                       "the sum insured, the order of the reported 1.5%; the model's "
                                                       "failure rate is ~0.6: calibrated)")
    prior_strength: float = factor(20.0, "weight of that prior, in pseudo-observations (judgement)", positive=True, hi=1.0e6)
    subsidy_share: float = share(0.5, "share of the premium paid by government (reported 25% to 30-70% by province, DOMAIN.md)")
    subsidy_cap: float = money(200000.0, "premium subsidy cap per policy (yuan; reported 200,000 per firm and year, DOMAIN.md)")
    initial_reserves: float = money(3.0e7, "an insurer's starting reserves (yuan; judgement: a line a provincial branch can carry)")
    min_reserves: float = money(3.0e6, "an insurer stops writing policies below these reserves (yuan; judgement)")
    moral_hazard: float = share(0.2, "fall in an insured firm's success chance were its whole cost refunded on every "
                                     "failure: effort falls with the expected refund on failure (claim_share x claim) "
                                     "as a share of the cost (judgement; a deductible counters it)")


# what the instrument adds to the model
INSURERS = Holders("insurer", "insurers", "insurers (their reserves)", lambda cfg, pop: cfg.insurance.insurers,
                   section=NAME, prefix="ins", does="writes policies", active_doc="still writing policies",
                   events="failures", events_doc="insured events among its settled policies",
                   observed_doc="settled policies")
INSURER = INSURERS.account
PREMIUMS_FIRM = ledger.kind("premiums_firm", ledger.FIRM, INSURER, "firms' part of premiums", owner=NAME,
                            metrics=("premiums",))
PREMIUM_SUBSIDIES = ledger.kind("premium_subsidies", ledger.GOVERNMENT, INSURER,
                                "government's part of premiums", owner=NAME, metrics=("premiums",))
CLAIMS = ledger.kind("claims", INSURER, ledger.FIRM, "claims paid on insured failures", owner=NAME)
INSURED = forms.cover("insured", "with failure insurance", owner=NAME)
SIGNED_INSURED = forms.COVERS[INSURED].column
CLAIMS_UNPAID = columns.column("claims_unpaid", "claims an insolvent insurer could not pay (yuan)", money=True,
                               summary=True, owner=NAME)
SUM_INSURED = columns.column("sum_insured", "the most the policies signed this month can pay: covered cost less the "
                             "deductible (premiums / sum_insured is the premium rate)", money=True, summary=True,
                             owner=NAME)
INSURERS_ACTIVE = INSURERS.active_column("insurers writing policies")
SPEND = "subsidies"   # government spend on this instrument is the run metric gov_spend_subsidies
ZERO_STRENGTH = ("insurance.coverage=0",)  # on, yet no cover on the menu

state.field("ins_quote", "insurer", np.int64, 0, "scratch: this quote's premium", owner=NAME)
state.field("ins_exposure", "insurer", np.int64, 0, "claims of its running policies, were all to fall due", owner=NAME)
state.field("ins_writes", "insurer", np.bool_, False, "scratch: writes this quote", owner=NAME)
state.field("c_insured", "project", np.bool_, False, "the project's contract is insured", owner=NAME)
state.field("c_insurer", "project", np.int64, -1, "its insurer", owner=NAME)
state.field("c_claim", "project", np.int64, 0, "refund on failure", owner=NAME)
state.field("c_premium", "project", np.int64, 0, "premium (firm's part and subsidy)", owner=NAME)
state.field("c_subsidy", "project", np.int64, 0, "government's part of the premium", owner=NAME)


class Insurer(ReserveHolder):
    """An insurer: quotes premiums from its claims experience, pays claims from its reserves, withdraws below its
    minimum reserves (its decisions are this module's hooks; ``active``, ``failures``, ``observed``, ``reserves``:
    :class:`sim.core.reserves.ReserveHolder`)."""

    holders = INSURERS
    exposure = views.column("ins_exposure", "claims of its running policies, were all to fall due")

    @property
    def event_estimate(self) -> float:
        """Its estimate of the rate of insured events per policy (:func:`failure_estimate`), as it quotes now."""
        ins = self.model.cfg.insurance
        return self.experience(float(insured_event_chance(ins.prior_failure, ins.claim_share)))


MESA_AGENTS = {"insurer": Insurer}
initial_balances = INSURERS.initial_balances   # each starts with insurance.initial_reserves


# --------------------------------------------------------------------------- rules
@entry
def claim_amount(implementation_cost, coverage, deductible):
    """What a failed insured implementation is refunded: covered cost less the deductible."""
    return max(np.int64(0), rules.yuan(coverage * implementation_cost) - np.int64(math.floor(deductible)))


@entry
def insured_event_chance(failure_chance, claim_share):
    """The probability of an insured event: a failure (``failure_chance``; 1 given a failure) that is a certified
    technical failure (``claim_share`` of failures), ``failure_chance x claim_share``. The one probability the premium,
    the firm's valuation and its effort rest on (the module's docstring)."""
    return failure_chance * claim_share


# the insurer's estimate of the rate of insured events per policy: its prior (``insured_event_chance`` of its prior
# failure rate) plus its claims experience, ``(prior_rate x strength + events) / (strength + observed)``
failure_estimate = experience_rate


@entry
def expected_refund(claim_share, paid_share, claim):
    """What a firm counts on being refunded if its implementation fails: the chance that the failure is an insured
    event, times the share of the claim its insurer can pay (:func:`payment_chance`), times the claim,
    ``insured_event_chance(1, claim_share) x paid_share x claim``."""
    return insured_event_chance(1.0, claim_share) * paid_share * claim


@entry
def insured_chance(chance, moral_hazard, refund, cost):
    """The success chance of an insured implementation: effort falls with the expected refund on failure
    (:func:`expected_refund`) as a share of the cost (moral hazard), ``chance x (1 - moral_hazard x min(1, refund /
    cost))``."""
    return chance * (1.0 - moral_hazard * min(1.0, refund / cost)) if cost > 0 else chance


@entry
def premium(expected_failure, claim, loading):
    """Premium: expected claim times (1 + loading)."""
    return rules.yuan((1.0 + loading) * expected_failure * claim)


@entry
def premium_subsidy(premium_amount, share, cap):
    """Government's part of a premium: a share, capped per policy."""
    return min(rules.yuan(share * premium_amount), np.int64(math.floor(cap)))


@entry
def subsidy_offered(subsidy, committed, annual_budget):
    """The premium subsidy a firm is offered: all of it if the budget allows, else none."""
    return subsidy if rules.within_budget(subsidy, committed, annual_budget) else np.int64(0)


@entry
def claim_paid(claim, reserves):
    """An insurer pays a claim from its reserves, as far as they go."""
    return min(claim, reserves)


@entry
def cheapest_quote(premiums, writes):
    """The insurer a firm buys from: the lowest premium among those writing (first on ties); -1 if none."""
    best = -1
    for i in range(premiums.shape[0]):
        if writes[i] and (best < 0 or premiums[i] < premiums[best]):
            best = i
    return best


# an insurer writes new policies while active and its reserves are at least its minimum reserves
insurer_writes = in_business


@kernel
def quote(p, st, i, cost, coverage):
    """(claim on an insured failure, premium, government subsidy) of insurer ``i`` for an implementation cost."""
    ins = p.insurance
    claim = claim_amount(cost, coverage, ins.deductible)
    q = failure_estimate(insured_event_chance(ins.prior_failure, ins.claim_share), ins.prior_strength,
                         st.ins_failures[i], st.ins_observed[i])
    prem = premium(q, claim, ins.loading)
    return claim, prem, premium_subsidy(prem, ins.subsidy_share, ins.subsidy_cap)


@kernel
def reserves(st, i):
    """Insurer ``i``'s reserves."""
    return reserves_of(st, INSURER, i)


# --------------------------------------------------------------------------- hooks
@entry
def coverage_levels(coverage, step):
    """How many levels the menu has: step, 2 x step, ... up to coverage."""
    return int(math.floor(coverage / step + 1e-9))


@entry
def payment_chance(reserves_now, exposure, claim):
    """The share of a claim a firm counts on: all of it while the insurer's reserves cover every claim of its running
    policies and this one, were they all to fall due; else the share they cover."""
    due = exposure + claim
    return 1.0 if reserves_now >= due else max(0.0, float(reserves_now)) / due


@kernel
def offer_covers(p, st, j, a, cost, n):
    """The cheapest writing insurer's menu of covers, each with the subsidy the budget still allows. The firm counts
    on the claim as an insured event's chance (claim_share of failures) and its insurer's solvency allow
    (:func:`expected_refund`)."""
    ins = p.insurance
    n_ins = st.ins_active.shape[0]
    if n_ins == 0:
        return n
    for i in range(n_ins):
        st.ins_writes[i] = insurer_writes(st.ins_active[i], reserves(st, i), ins.min_reserves)
        st.ins_quote[i] = quote(p, st, i, cost, ins.coverage)[1] if st.ins_writes[i] else 0
    insurer = cheapest_quote(st.ins_quote, st.ins_writes)
    if insurer < 0:
        return n
    largest = np.int64(0)
    for k in range(1, coverage_levels(ins.coverage, ins.coverage_step) + 1):
        claim, prem, subsidy = quote(p, st, insurer, cost, min(k * ins.coverage_step, ins.coverage))
        subsidy = subsidy_offered(subsidy, st.gov_committed[0], p.budget)
        if claim <= 0:
            continue
        largest = max(largest, subsidy)
        row = st.covers[n]
        row[state.COVER_AUX] = insurer
        row[state.COVER_AUX + 1] = claim
        row[state.COVER_AUX + 2] = prem
        row[state.COVER_AUX + 3] = subsidy
        counted = expected_refund(ins.claim_share, payment_chance(reserves(st, insurer), st.ins_exposure[insurer],
                                                                  claim), claim)
        n = forms.offer_cover(st, n, INSURED, prem - subsidy, counted)
    public.offer(st, largest)   # 1. offer: the firm may take any cover; later offers leave room for the largest
    return n


@kernel
def on_open(p, st, series, month, j, cover):
    """2. Promise: the firm decides knowing the subsidy: it is promised against the budget now. An insured firm's effort falls
    with the expected refund it counted on in choosing the cover (``COVER_REFUND``: :func:`expected_refund`)."""
    insured = cover >= 0 and st.covers[cover, state.COVER_OWNER] == INSURED
    st.c_insured[j] = insured
    if insured:
        row = st.covers[cover]
        st.c_insurer[j] = np.int64(row[state.COVER_AUX])
        st.c_claim[j] = np.int64(row[state.COVER_AUX + 1])
        st.c_premium[j] = np.int64(row[state.COVER_AUX + 2])
        st.c_subsidy[j] = np.int64(row[state.COVER_AUX + 3])
        st.c_chance[j] = insured_chance(st.c_chance[j], p.insurance.moral_hazard, row[state.COVER_REFUND],
                                        st.c_cost[j])
    else:
        st.c_insurer[j] = -1
        st.c_claim[j] = 0
        st.c_premium[j] = 0
        st.c_subsidy[j] = 0
    public.promise(st, st.c_subsidy[j])


@kernel
def on_breakdown(p, st, series, month, j):
    """4. Release: the subsidy promised is released."""
    public.release(st, st.c_subsidy[j])


@kernel
def on_sign(p, st, series, month, j):
    f = st.project_firm[j]   # the firm running project j
    if not st.c_insured[j]:
        return
    insurer = ledger.account(st, INSURER, st.c_insurer[j])
    ledger.pay(st, series, month, ledger.account(st, ledger.FIRM, f), insurer, st.c_premium[j] - st.c_subsidy[j],
               PREMIUMS_FIRM)
    public.pay_promised(st, series, month, insurer, st.c_subsidy[j], PREMIUM_SUBSIDIES)   # 3. pay ahead
    st.ins_exposure[st.c_insurer[j]] += st.c_claim[j]
    series[month, SIGNED_INSURED] += 1
    series[month, SUM_INSURED] += st.c_claim[j]


@kernel
def on_settle(p, st, series, month, j, success):
    f = st.project_firm[j]   # the firm running project j
    if not st.c_insured[j]:
        return
    i = st.c_insurer[j]
    st.ins_exposure[i] -= st.c_claim[j]
    insured_event = not success and rng.uniform(p.seed, rng.CLAIM, month, j) < insured_event_chance(
        1.0, p.insurance.claim_share)
    if insured_event:
        paid = claim_paid(st.c_claim[j], reserves(st, i))
        ledger.pay(st, series, month, ledger.account(st, INSURER, i), ledger.account(st, ledger.FIRM, f), paid, CLAIMS)
        series[month, CLAIMS_UNPAID] += st.c_claim[j] - paid
    st.ins_observed[i] += 1
    st.ins_failures[i] += 1 if insured_event else 0


@kernel
def on_month(p, st, series, month):
    """Insurers below their minimum reserves withdraw for good."""
    withdraw(st, INSURER, st.ins_active, p.insurance.min_reserves)


@kernel
def record(p, st, series, month):
    series[month, INSURERS_ACTIVE] = st.ins_active.sum()


# --------------------------------------------------------------------------- results
def summarize(totals: dict, s) -> dict:
    """Its run metrics, one array over the runs each (``totals``: the run metrics so far; ``s``: the series,
    ``(runs, months, columns)``)."""
    from ..core.results import ratio

    return {"loss_ratio": ratio(totals["claims"], totals["premiums"]), **INSURERS.summarize(s)}


def check(cfg) -> None:
    ins = cfg.insurance
    levels = coverage_levels(ins.coverage, ins.coverage_step)
    if levels > state.MAX_COVERS:  # (none, with coverage below the step: no cover on offer)
        raise ConfigError(f"insurance.coverage_step = {ins.coverage_step:g}: the menu up to insurance.coverage = "
                          f"{ins.coverage:g} must have at most {state.MAX_COVERS} levels, not {levels}")


def check_series(s, cfg, c=None) -> None:
    """Subsidies within their share and cap; claims within the insured share of implementation costs, and only
    in months with failures; insurers never return once withdrawn."""
    from ..core.results import InvariantError, cumulative, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    ins = s[:, :, SIGNED_INSURED]
    premiums = s[:, :, PREMIUMS_FIRM] + s[:, :, PREMIUM_SUBSIDIES]
    bad = (s[:, :, PREMIUM_SUBSIDIES] > np.floor(cfg.insurance.subsidy_cap) * ins) | (
        s[:, :, PREMIUM_SUBSIDIES] > cfg.insurance.subsidy_share * premiums + 0.5 * ins)
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: premium subsidies exceed their share or cap")
    bad = (s[:, :, CLAIMS] > 0) & (s[:, :, columns.FAILURES] == 0)
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: claims paid in a month without failures")
    # each claim is rounded half up to the yuan: half a yuan of slack per failure
    c = cumulative(s) if c is None else c
    cost = c[:, :, ledger.IMPLEMENTATION_COST]
    bad = c[:, :, CLAIMS] + c[:, :, CLAIMS_UNPAID] > cfg.insurance.coverage * cost + 0.5 * c[:, :, columns.FAILURES]
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: claims exceed the insured share of implementation costs")
    INSURERS.check_series(s)
