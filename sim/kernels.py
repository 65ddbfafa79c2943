"""The Numba engine: the monthly process of :mod:`sim.model` over arrays.

State is a struct of arrays (firms, their projects, achievements, universities,
brokers, insurers) and the month is a chain of ``numba.njit`` kernels, one per
phase, in the same order and the same canonical visiting order as the Mesa
engine. Every decision, price, chance and payment is a call to the same
function of :mod:`sim.rules` that the Mesa agents call: only the orchestration
(loops over arrays instead of agents) is written here. The equivalence test
(``tests/test_engines.py``) checks the two engines give the same series.

Discovery draws from the sector's slice of the sorted achievements (and a
broker's visits from its sector's slice of the firms), so a month costs
O(firms + achievements + brokers x visits).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from . import rng, rules
from .config import Config
from .population import Population
from .results import Series, new_series
from .rules import IDLE, IMPLEMENTING, NEED, NEGOTIATING_FIRM

# --------------------------------------------------------------------------- parameters
Params = namedtuple("Params", [
    "seed", "months", "n_achievements",
    # firms
    "need_patience", "self_search_prob", "self_noise", "belief_weight", "peer_weight",
    # universities
    "tto_capacity", "reservation_share", "bargaining_power", "inventor_share", "max_failures",
    # success and negotiation
    "maturity_floor", "absorptive_floor", "fit_floor",
    "months_licence", "breakdown_hazard", "broker_speedup", "implementation_months",
    # brokers
    "capacity", "noise", "screen", "surface_prob", "fee_rate", "fee_fixed", "fee_firm_share",
    "monthly_cost", "profit_memory", "exit_loss", "grace_months", "entry_candidates", "entry_max",
    "entry_sensitivity",
    # regime and instruments
    "free_trial", "broker_reward", "insurance",
    "term_months", "success_fee", "price_share", "trial_negotiation_months",
    "reward_rate", "reward_cap",
    "coverage", "deductible", "loading", "prior_failure", "prior_strength", "subsidy_share", "subsidy_cap",
    "min_reserves", "budget",
])


def make_params(cfg: Config, seed: int, n_achievements: int) -> Params:
    """The scalars of ``cfg`` the kernels need, as a (typed) named tuple."""
    sc = cfg.scenario
    f, u, s, n, b = sc.firms, sc.universities, sc.success, sc.negotiation, sc.brokers
    t, r, i = cfg.trial, cfg.broker, cfg.insurance
    budget = -1.0 if cfg.government.annual_budget is None else float(cfg.government.annual_budget)
    return Params(
        np.int64(seed), np.int64(sc.months), np.int64(n_achievements),
        np.int64(f.need_patience), float(f.self_search_prob), float(f.self_noise), float(f.belief_weight),
        float(f.peer_weight),
        np.int64(u.tto_capacity), float(u.reservation_share), float(u.bargaining_power), float(u.inventor_share),
        np.int64(u.max_failures),
        float(s.maturity_floor), float(s.absorptive_floor), float(s.fit_floor),
        float(n.months_licence), float(n.breakdown_hazard), float(n.broker_speedup), np.int64(n.implementation_months),
        np.int64(b.capacity), float(b.noise), np.int64(b.screen), float(b.surface_prob), float(b.fee_rate),
        float(b.fee_fixed), float(b.fee_firm_share), float(b.monthly_cost), float(b.profit_memory), float(b.exit_loss),
        np.int64(b.grace_months), np.int64(b.entry_candidates), float(b.entry_max), float(b.entry_sensitivity),
        bool(cfg.regime.free_trial), bool(cfg.regime.broker_reward), bool(cfg.regime.insurance),
        np.int64(t.term_months), float(t.success_fee), float(t.price_share), float(t.negotiation_months),
        float(r.rate), float(r.cap),
        float(i.coverage), float(i.deductible), float(i.loading), float(i.prior_failure), float(i.prior_strength),
        float(i.subsidy_share), float(i.subsidy_cap), float(i.min_reserves), budget,
    )


# --------------------------------------------------------------------------- state
Agents = namedtuple("Agents", [
    # the population (read only)
    "univ_accepts_trial", "ach_owner", "ach_sector", "ach_quality", "ach_maturity", "ach_value", "ach_cost",
    "ach_ask", "ach_offsets", "firm_sector", "firm_absorptive", "firm_risk_aversion", "firm_need_rate",
    "firm_scale", "firm_offsets", "broker_sector", "broker_skill",
    # firms
    "firm_state", "firm_need_month", "firm_cash", "firm_alpha", "firm_beta", "firm_outcome",
    # the firm's project (one at a time), from negotiation to settlement
    "c_ach", "c_broker", "c_form", "c_insured", "c_insurer", "c_price", "c_value", "c_cost", "c_chance",
    "c_claim", "c_premium", "c_subsidy", "c_opened", "c_ends",
    # achievements, universities
    "ach_status", "ach_failures", "univ_cash", "univ_opened",
    # brokers
    "broker_active", "broker_entered", "broker_avg_profit", "broker_income", "broker_cash",
    # insurers (+ scratch for their quotes, so the hot path allocates nothing)
    "ins_cash", "ins_active", "ins_failures", "ins_observed", "ins_quote", "ins_writes",
    # scalars: government cash, government committed this year, market, inventors, next entrant
    "acct",
])
GOV, COMMITTED, MARKET, INVENTORS, NEXT_ENTRANT = range(5)


def init_agents(cfg: Config, pop: Population) -> Agents:
    """The month-0 state of ``pop`` (the same initial state as :class:`sim.model.TransferModel`)."""
    F, A, U, B = pop.n_firms, pop.n_achievements, pop.n_universities, pop.n_brokers
    n_ins = cfg.insurance.insurers
    fc = cfg.scenario.firms
    i64 = lambda n, v=0: np.full(n, v, dtype=np.int64)  # noqa: E731
    active = np.zeros(B, dtype=np.bool_)
    active[: cfg.scenario.brokers.initial] = True
    acct = i64(5)
    acct[NEXT_ENTRANT] = cfg.scenario.brokers.initial
    return Agents(
        pop.univ_accepts_trial.astype(np.bool_), pop.ach_owner, pop.ach_sector, pop.ach_quality, pop.ach_maturity,
        pop.ach_value, pop.ach_cost, pop.ach_ask, pop.ach_offsets, pop.firm_sector, pop.firm_absorptive,
        pop.firm_risk_aversion, pop.firm_need_rate, pop.firm_scale, pop.firm_offsets, pop.broker_sector,
        pop.broker_skill,
        i64(F, IDLE), i64(F, -1), pop.firm_cash.copy(),
        np.full(F, fc.prior_success * fc.prior_strength), np.full(F, (1.0 - fc.prior_success) * fc.prior_strength),
        i64(F, -1),
        i64(F, -1), i64(F, -1), i64(F), np.zeros(F, dtype=np.bool_), i64(F, -1), i64(F), i64(F), i64(F),
        np.zeros(F), i64(F), i64(F), i64(F), i64(F), i64(F, -1),
        i64(A, rules.SHELVED), i64(A), i64(U), i64(U),
        active, i64(B), np.zeros(B), i64(B), i64(B),
        i64(n_ins, rules.yuan(cfg.insurance.initial_reserves)), np.ones(n_ins, dtype=np.bool_), i64(n_ins),
        i64(n_ins), i64(n_ins), np.zeros(n_ins, dtype=np.bool_), acct,
    )


def total_money(st: Agents) -> int:
    return int(st.firm_cash.sum() + st.univ_cash.sum() + st.broker_cash.sum() + st.ins_cash.sum()
               + st.acct[GOV] + st.acct[MARKET] + st.acct[INVENTORS])


# --------------------------------------------------------------------------- helpers
@njit(cache=True, inline="always")
def _start(p, month, which, n):
    """Start of this month's canonical rotation (as TransferModel._rotation)."""
    return rng.randint(p.seed, rng.ORDER, month, which, n) if n > 0 else 0


@njit(cache=True, inline="always")
def _wrap(i, n):
    """i mod n for 0 <= i < 2n (cheaper than %, which the hot loops would pay per agent)."""
    return i - n if i >= n else i


@njit(cache=True, inline="always")
def _true_chance(p, st, f, a):
    fit = rng.uniform(p.seed, rng.FIT, 0, rules.pair_key(f, a, p.n_achievements))
    return rules.success_chance(st.ach_quality[a], st.ach_maturity[a], st.firm_absorptive[f], fit,
                                p.maturity_floor, p.absorptive_floor, p.fit_floor)


@njit(cache=True, inline="always")
def _quote(p, st, i, cost):
    claim = rules.claim_amount(cost, p.coverage, p.deductible)
    q = rules.failure_estimate(p.prior_failure, p.prior_strength, st.ins_failures[i], st.ins_observed[i])
    prem = rules.premium(q, claim, p.loading)
    return claim, prem, rules.premium_subsidy(prem, p.subsidy_share, p.subsidy_cap)


@njit(cache=True, inline="always")
def _cheapest_insurer(p, st, cost):
    n = st.ins_cash.shape[0]
    if not p.insurance or n == 0:
        return -1
    for i in range(n):
        st.ins_writes[i] = rules.insurer_writes(st.ins_active[i], st.ins_cash[i], p.min_reserves)
        st.ins_quote[i] = _quote(p, st, i, cost)[1] if st.ins_writes[i] else 0
    return rules.cheapest_quote(st.ins_quote, st.ins_writes)


@njit(cache=True, inline="always")
def _open_negotiation(p, st, series, month, f, a, signal, broker):
    """The firm considers the candidate (Firm.consider) and, if a form suits it, negotiation opens."""
    univ = st.ach_owner[a]
    value = rules.project_amount(st.ach_value[a], st.firm_scale[f])
    cost = rules.project_amount(st.ach_cost[a], st.firm_scale[f])
    insurer = _cheapest_insurer(p, st, cost)
    claim, prem, subsidy = np.int64(0), np.int64(0), np.int64(0)
    if insurer >= 0:
        claim, prem, subsidy = _quote(p, st, insurer, cost)
    subsidy = rules.subsidy_offered(subsidy, st.acct[COMMITTED], p.budget)
    belief = rules.belief_mean(st.firm_alpha[f], st.firm_beta[f])
    p_hat = rules.firm_estimate(belief, signal, p.belief_weight)
    brokered = broker >= 0
    form, insured, price, _ = rules.choose_contract(
        p_hat, value, cost, st.firm_cash[f], rules.abs_risk_aversion(st.firm_risk_aversion[f], st.firm_cash[f]),
        st.ach_ask[a], p.reservation_share, p.bargaining_power,
        p.free_trial and st.univ_accepts_trial[univ], rules.trial_payment(p.success_fee, p.price_share, st.ach_ask[a]),
        insurer >= 0 and claim > 0, claim, prem - subsidy,
        p.fee_rate if brokered else 0.0, p.fee_fixed if brokered else 0.0, p.fee_firm_share,
    )
    if form == rules.NO_DEAL:
        return
    st.c_ach[f] = a
    st.c_broker[f] = broker
    st.c_form[f] = form
    st.c_insured[f] = insured
    st.c_insurer[f] = insurer if insured else -1
    st.c_price[f] = price
    st.c_value[f] = value
    st.c_cost[f] = cost
    st.c_chance[f] = _true_chance(p, st, f, a)
    st.c_claim[f] = claim if insured else 0
    st.c_premium[f] = prem if insured else 0
    st.c_subsidy[f] = subsidy if insured else 0
    st.c_opened[f] = month
    st.ach_status[a] = rules.NEGOTIATING
    st.univ_opened[univ] += 1
    st.firm_state[f] = NEGOTIATING_FIRM
    st.acct[COMMITTED] += st.c_subsidy[f]
    series[month, Series.MATCHES] += 1
    if brokered:
        series[month, Series.MATCHES_BROKERED] += 1


@njit(cache=True, inline="always")
def _pay_broker_fee(p, st, series, month, f, fee):
    """The parties pay the broker ``fee``; returns the university's part."""
    b = st.c_broker[f]
    univ = st.ach_owner[st.c_ach[f]]
    firm_fee, univ_fee = rules.fee_split(fee, p.fee_firm_share)
    st.firm_cash[f] -= firm_fee
    st.univ_cash[univ] -= univ_fee
    st.broker_cash[b] += fee
    st.broker_income[b] += fee
    series[month, Series.BROKER_FEES] += fee
    return univ_fee


@njit(cache=True, inline="always")
def _collect(p, st, series, month, f, amount, column):
    """The firm pays the university under its contract; the broker's fee and reward follow (TransferModel.collect)."""
    univ = st.ach_owner[st.c_ach[f]]
    b = st.c_broker[f]
    st.firm_cash[f] -= amount
    st.univ_cash[univ] += amount
    series[month, column] += amount
    univ_fee = np.int64(0)
    if b >= 0:
        univ_fee = _pay_broker_fee(p, st, series, month, f, rules.broker_fee(amount, p.fee_rate))
        if p.broker_reward:
            reward = rules.broker_reward(amount, p.reward_rate, p.reward_cap)
            if rules.within_budget(reward, st.acct[COMMITTED], p.budget):
                st.acct[GOV] -= reward
                st.broker_cash[b] += reward
                st.acct[COMMITTED] += reward
                st.broker_income[b] += reward
                series[month, Series.BROKER_REWARDS] += reward
            else:
                series[month, Series.REWARDS_DENIED] += reward
    net = amount - univ_fee
    series[month, Series.UNIVERSITY_INCOME] += net
    to_inventors = rules.inventor_payment(net, p.inventor_share)
    st.univ_cash[univ] -= to_inventors
    st.acct[INVENTORS] += to_inventors
    series[month, Series.INVENTOR_INCOME] += to_inventors


@njit(cache=True, inline="always")
def _sign(p, st, series, month, f):
    a = st.c_ach[f]
    form = st.c_form[f]
    b = st.c_broker[f]
    if b >= 0:  # the service fee, paid by the firm that was served
        fee = rules.yuan(p.fee_fixed)
        st.firm_cash[f] -= fee
        st.broker_cash[b] += fee
        st.broker_income[b] += fee
        series[month, Series.BROKER_FEES] += fee
    if form == rules.LICENCE:
        _collect(p, st, series, month, f, st.c_price[f], Series.LICENCE_PAYMENTS)
    if st.c_insured[f]:
        i = st.c_insurer[f]
        st.firm_cash[f] -= st.c_premium[f] - st.c_subsidy[f]
        st.acct[GOV] -= st.c_subsidy[f]
        st.ins_cash[i] += st.c_premium[f]
        series[month, Series.PREMIUMS] += st.c_premium[f]
        series[month, Series.PREMIUM_SUBSIDIES] += st.c_subsidy[f]
        series[month, Series.SIGNED_INSURED] += 1
    st.firm_cash[f] -= st.c_cost[f]
    st.acct[MARKET] += st.c_cost[f]
    series[month, Series.IMPLEMENTATION_COST] += st.c_cost[f]
    st.ach_status[a] = rules.LICENSED if form == rules.LICENCE else rules.ON_TRIAL
    st.c_ends[f] = month + rules.implementation_months(form, p.implementation_months, p.term_months)
    st.firm_state[f] = IMPLEMENTING
    series[month, Series.SIGNED_LICENCE if form == rules.LICENCE else Series.SIGNED_TRIAL] += 1
    series[month, Series.SIGN_DELAY_SUM] += month - st.firm_need_month[f]


# --------------------------------------------------------------------------- phases
@njit(cache=True)
def raise_needs(p, st, series, month, start):
    # each firm's need depends on nothing but its own state, so the index order gives the
    # same result as the rotation of the other phases, and a tighter loop
    draws = rng.stream(p.seed, rng.NEED, month)
    raised = 0
    expired = 0
    for f in range(st.firm_state.shape[0]):
        state = st.firm_state[f]
        if state == IDLE:
            if rng.uniform_in(draws, f) < st.firm_need_rate[f]:
                st.firm_state[f] = NEED
                st.firm_need_month[f] = month
                raised += 1
        elif state == NEED and month - st.firm_need_month[f] >= p.need_patience:
            st.firm_state[f] = IDLE
            expired += 1
    series[month, Series.NEEDS_RAISED] += raised
    series[month, Series.NEEDS_EXPIRED] += expired


@njit(cache=True, inline="always")
def _rotated(chosen, count, start):
    """The chosen indices (ascending, ``count`` of them) in the rotation order that begins at ``start``."""
    out = np.empty(count, dtype=np.int64)
    k = 0
    for i in range(count):
        if chosen[i] >= start:
            out[k] = chosen[i]
            k += 1
    for i in range(count):
        if chosen[i] < start:
            out[k] = chosen[i]
            k += 1
    return out


@njit(cache=True, inline="always")
def _firms_in(st, state, month, ending_now):
    """Firms in ``state`` (and, if ``ending_now``, whose term ends this month), ascending."""
    n = st.firm_state.shape[0]
    chosen = np.empty(n, dtype=np.int64)
    count = 0
    for f in range(n):
        if st.firm_state[f] == state and (not ending_now or st.c_ends[f] == month):
            chosen[count] = f
            count += 1
    return chosen, count


@njit(cache=True)
def firms_search(p, st, series, month, start):
    n = st.firm_state.shape[0]
    # who searches depends only on each firm itself: find them in a tight loop, then let
    # them claim achievements in the canonical (rotation) order, where order matters
    draws = rng.stream(p.seed, rng.SELF_SEARCH, month)
    searching = np.empty(n, dtype=np.int64)
    count = 0
    for f in range(n):
        if st.firm_state[f] == NEED and rng.uniform_in(draws, f) < p.self_search_prob:
            searching[count] = f
            count += 1
    for f in _rotated(searching, count, start):
        s = st.firm_sector[f]
        lo, size = st.ach_offsets[s], st.ach_offsets[s + 1] - st.ach_offsets[s]
        if size == 0:
            continue
        a = lo + rng.randint(p.seed, rng.SELF_PICK, month, f, size)
        if st.ach_status[a] == rules.SHELVED and st.univ_opened[st.ach_owner[a]] < p.tto_capacity:
            z = rng.normal(p.seed, rng.SELF_NOISE, month, f)
            signal = rules.perceived_chance(_true_chance(p, st, f, a), p.self_noise, z)
            _open_negotiation(p, st, series, month, f, a, signal, -1)


@njit(cache=True)
def brokers_visit(p, st, series, month, start):
    n_b = st.broker_active.shape[0]
    for kb in range(n_b):
        b = _wrap(start + kb, n_b)
        if not st.broker_active[b]:
            continue
        s = st.broker_sector[b]
        f_lo, f_size = st.firm_offsets[s], st.firm_offsets[s + 1] - st.firm_offsets[s]
        if f_size == 0:
            continue
        a_lo, a_size = st.ach_offsets[s], st.ach_offsets[s + 1] - st.ach_offsets[s]
        sd = rules.broker_noise(p.noise, st.broker_skill[b])
        for k in range(p.capacity):
            visit = b * p.capacity + k
            f = f_lo + rng.randint(p.seed, rng.VISIT, month, visit, f_size)
            if st.firm_state[f] == IDLE and rng.uniform(p.seed, rng.SURFACE, month, visit) < p.surface_prob:
                st.firm_state[f] = NEED
                st.firm_need_month[f] = month
                series[month, Series.NEEDS_RAISED] += 1
                series[month, Series.NEEDS_SURFACED] += 1
            if st.firm_state[f] != NEED or a_size == 0:
                continue
            # Broker.propose: the best of a few screened shelved achievements, by the broker's judgement
            best, best_seen = -1, -1.0
            for j in range(p.screen):
                key = visit * p.screen + j
                a = a_lo + rng.randint(p.seed, rng.SCREEN, month, key, a_size)
                if st.ach_status[a] != rules.SHELVED:
                    continue
                seen = rules.perceived_chance(_true_chance(p, st, f, a), sd, rng.normal(p.seed, rng.BROKER_NOISE,
                                                                                        month, key))
                if seen > best_seen:
                    best, best_seen = a, seen
            if best >= 0 and st.univ_opened[st.ach_owner[best]] < p.tto_capacity:
                _open_negotiation(p, st, series, month, f, best, best_seen, b)


@njit(cache=True)
def negotiate(p, st, series, month, start):
    # the negotiating firms, visited in the canonical order (a signing can use budget or pay an insurer)
    draws = rng.stream(p.seed, rng.NEGOTIATION, month)
    chosen, count = _firms_in(st, NEGOTIATING_FIRM, month, False)
    for f in _rotated(chosen, count, start):
        mean = rules.negotiation_months(st.c_form[f], p.months_licence, p.trial_negotiation_months,
                                        st.c_broker[f] >= 0, p.broker_speedup)
        step = rules.negotiation_step(rng.uniform_in(draws, f), mean, p.breakdown_hazard)
        if step == rules.CONCLUDED:
            _sign(p, st, series, month, f)
        elif step == rules.BROKE_DOWN:
            st.ach_status[st.c_ach[f]] = rules.SHELVED
            if rules.same_budget_year(st.c_opened[f], month):
                st.acct[COMMITTED] -= st.c_subsidy[f]
            st.firm_state[f] = IDLE
            series[month, Series.NEGOTIATIONS_FAILED] += 1


@njit(cache=True)
def settle(p, st, series, month, start, succ, fail):
    """Outcomes of terms ending this month; ``firm_outcome`` gets 1 / 0 (success / failure), else -1.

    ``succ`` and ``fail`` count this month's outcomes by sector (for the peers' learning).
    """
    st.firm_outcome[:] = -1
    # the terms ending now, in the canonical order (a claim may find the insurer's reserves short)
    chosen, count = _firms_in(st, IMPLEMENTING, month, True)
    for f in _rotated(chosen, count, start):
        a = st.c_ach[f]
        success = rng.uniform(p.seed, rng.OUTCOME, 0, rules.pair_key(f, a, p.n_achievements)) < st.c_chance[f]
        if success:
            st.acct[MARKET] -= st.c_value[f]
            st.firm_cash[f] += st.c_value[f]
            series[month, Series.FIRM_VALUE] += st.c_value[f]
            st.ach_status[a] = rules.IN_USE
            series[month, Series.SUCCESSES] += 1
            if st.c_form[f] == rules.TRIAL:
                _collect(p, st, series, month, f, st.c_price[f], Series.TRIAL_PAYMENTS)
                series[month, Series.TRIALS_CONVERTED] += 1
        else:
            series[month, Series.FAILURES] += 1
            if st.c_insured[f]:
                i = st.c_insurer[f]
                paid = rules.claim_paid(st.c_claim[f], st.ins_cash[i])
                st.ins_cash[i] -= paid
                st.firm_cash[f] += paid
                series[month, Series.CLAIMS] += paid
                series[month, Series.CLAIMS_UNPAID] += st.c_claim[f] - paid
            st.ach_failures[a] += 1
            st.ach_status[a] = (rules.ABANDONED if rules.settles_as_abandoned(st.ach_failures[a], p.max_failures)
                                else rules.SHELVED)
        if st.c_insured[f]:
            st.ins_observed[st.c_insurer[f]] += 1
            st.ins_failures[st.c_insurer[f]] += 0 if success else 1
        st.firm_outcome[f] = 1 if success else 0
        if success:
            succ[st.firm_sector[f]] += 1
        else:
            fail[st.firm_sector[f]] += 1
        st.firm_state[f] = IDLE


@njit(cache=True)
def learn(p, st, series, month, broker_start, succ, fail):
    """Beliefs, broker costs, exit and entry, insurers' withdrawal; returns the sum of the firms' beliefs."""
    n = st.firm_state.shape[0]
    # beliefs: each firm's own outcome, then its peers' in the same sector (one pass, index order)
    peers = p.peer_weight > 0 and (succ.sum() + fail.sum()) > 0
    belief_sum = 0.0
    for f in range(n):
        o = st.firm_outcome[f]
        if o >= 0:
            st.firm_alpha[f] += 1.0 if o == 1 else 0.0
            st.firm_beta[f] += 0.0 if o == 1 else 1.0
        if peers:
            s_peer, f_peer = rules.peer_outcomes(succ[st.firm_sector[f]], fail[st.firm_sector[f]], o)
            if s_peer != 0 or f_peer != 0:
                st.firm_alpha[f] += p.peer_weight * s_peer
                st.firm_beta[f] += p.peer_weight * f_peer
        belief_sum += rules.belief_mean(st.firm_alpha[f], st.firm_beta[f])
    # brokers: costs, profit, exit (Broker.review)
    n_b = st.broker_active.shape[0]
    cost = rules.yuan(p.monthly_cost)
    for kb in range(n_b):
        b = _wrap(broker_start + kb, n_b)
        if not st.broker_active[b]:
            continue
        series[month, Series.BROKER_COSTS] += cost
        st.broker_cash[b] -= cost
        st.acct[MARKET] += cost
        st.broker_avg_profit[b] = rules.moving_average(st.broker_avg_profit[b], float(st.broker_income[b] - cost),
                                                       p.profit_memory)
        st.broker_income[b] = 0
        if rules.broker_exits(st.broker_avg_profit[b], p.exit_loss, month - st.broker_entered[b], p.grace_months):
            st.broker_active[b] = False
            series[month, Series.BROKER_EXITS] += 1
    # entry
    total, count = 0.0, 0
    for b in range(n_b):
        if st.broker_active[b]:
            total += st.broker_avg_profit[b]
            count += 1
    mean_profit = total / count if count > 0 else 0.0
    chance = rules.broker_entry_chance(mean_profit, p.monthly_cost, p.entry_max, p.entry_sensitivity)
    for k in range(p.entry_candidates):
        if st.acct[NEXT_ENTRANT] < n_b and rng.uniform(p.seed, rng.ENTRY, month, k) < chance:
            b = st.acct[NEXT_ENTRANT]
            st.broker_active[b] = True
            st.broker_entered[b] = month
            st.acct[NEXT_ENTRANT] += 1
            series[month, Series.BROKER_ENTRIES] += 1
    # insurers below their minimum reserves withdraw for good
    for i in range(st.ins_cash.shape[0]):
        st.ins_active[i] = rules.insurer_writes(st.ins_active[i], st.ins_cash[i], p.min_reserves)
    return belief_sum


@njit(cache=True)
def record(st, series, month, initial_firm_cash, belief_sum):
    s = series[month]
    counts = np.zeros(rules.N_STATUS)
    for a in range(st.ach_status.shape[0]):
        counts[st.ach_status[a]] += 1
    s[Series.SHELVED] = counts[rules.SHELVED]
    s[Series.NEGOTIATING] = counts[rules.NEGOTIATING]
    s[Series.ON_TRIAL] = counts[rules.ON_TRIAL]
    s[Series.LICENSED] = counts[rules.LICENSED]
    s[Series.IN_USE] = counts[rules.IN_USE]
    s[Series.ABANDONED] = counts[rules.ABANDONED]
    s[Series.BROKERS_ACTIVE] = st.broker_active.sum()
    s[Series.INSURERS_ACTIVE] = st.ins_active.sum()
    s[Series.INSURER_RESERVES] = st.ins_cash.sum()
    s[Series.MEAN_BELIEF] = belief_sum / st.firm_alpha.shape[0]
    s[Series.CASH_FIRMS] = st.firm_cash.sum()
    s[Series.CASH_UNIVERSITIES] = st.univ_cash.sum()
    s[Series.CASH_INVENTORS] = st.acct[INVENTORS]
    s[Series.CASH_BROKERS] = st.broker_cash.sum()
    s[Series.CASH_INSURERS] = st.ins_cash.sum()
    s[Series.CASH_GOVERNMENT] = st.acct[GOV]
    s[Series.CASH_MARKET] = st.acct[MARKET]
    previous = series[month - 1, Series.CASH_FIRMS] if month > 0 else float(initial_firm_cash)
    s[Series.FIRM_SURPLUS] = s[Series.CASH_FIRMS] - previous


@njit(cache=True)
def step(p, st, series, month, n_sectors, initial_firm_cash):
    """One month: the phases of TransferModel.step, in the same order."""
    if rules.budget_year_starts(month):
        st.acct[COMMITTED] = 0
    st.univ_opened[:] = 0
    firm_start = _start(p, month, 0, st.firm_state.shape[0])
    broker_start = _start(p, month, 1, st.broker_active.shape[0])
    raise_needs(p, st, series, month, firm_start)
    firms_search(p, st, series, month, firm_start)
    brokers_visit(p, st, series, month, broker_start)
    negotiate(p, st, series, month, firm_start)
    succ = np.zeros(n_sectors)
    fail = np.zeros(n_sectors)
    settle(p, st, series, month, firm_start, succ, fail)
    belief_sum = learn(p, st, series, month, broker_start, succ, fail)
    record(st, series, month, initial_firm_cash, belief_sum)


@njit(cache=True)
def run_months(p, st, series, n_sectors, initial_firm_cash):
    for month in range(p.months):
        step(p, st, series, month, n_sectors, initial_firm_cash)


# --------------------------------------------------------------------------- entry points
def simulate(cfg: Config, seed: int, population: Population | None = None):
    """Run one replicate with the Numba engine; returns (series, n_achievements, initial money)."""
    from .population import draw_population

    pop = population if population is not None else draw_population(cfg, seed)
    st = init_agents(cfg, pop)
    p = make_params(cfg, seed, pop.n_achievements)
    series = new_series(cfg.scenario.months)
    initial_money = total_money(st)
    run_months(p, st, series, np.int64(cfg.scenario.sectors), np.int64(pop.firm_cash.sum()))
    return series, pop.n_achievements, initial_money
