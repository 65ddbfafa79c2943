"""What both engines do to one agent or one contract, written once (``numba.njit``).

Each function here is one step of the month applied to one firm, broker or contract of the
shared state (:mod:`sim.core.state`): a firm considering a candidate and opening a negotiation,
a negotiation concluding or breaking down, signing, a contract payment with its broker fee,
reward and inventors' share, settlement, a broker's review, entry, the month's record.
The Numba kernels (:mod:`sim.engines.numba.kernels`) call them from loops over arrays; the Mesa agents
(:mod:`sim.engines.mesa.agents`) call them from their methods. What is left per engine is the loop:
which agents act this month, in the canonical order.

Money moves only through :func:`sim.core.ledger.pay`; instruments join in through the hooks of
:mod:`sim.core.hooks`.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import entry, kernel

from . import columns as C
from . import hooks, ledger, rng, rules, state
from .forms import LICENCE, offer
from .ledger import BROKER, FIRM, INVENTORS, MARKET, UNIVERSITY, account, pay
from .rules import IDLE, IMPLEMENTING, NEGOTIATING_FIRM
from .state import (BARGAIN_ON_SUCCESS, COVER_PREMIUM, COVER_REFUND, OFFER_AT_SIGN, OFFER_BARGAINED, OFFER_FORM,
                    OFFER_NEGOTIATION, OFFER_ON_SUCCESS, OFFER_STATUS, OFFER_TERM, SUPPORT_COLLATERAL,
                    SUPPORT_COPAYS, SUPPORT_CREDIT, SUPPORT_CREDIT_RATE)



# --------------------------------------------------------------------------- the firm's attitude to risk
@entry
def firm_risk_attitude(st, f):
    """Firm ``f``'s absolute risk aversion now: its relative coefficient per yuan of net worth, its cash plus its net
    assets beyond cash (:func:`sim.core.rules.abs_risk_aversion`). A firm short of cash but rich in assets weighs a
    loss as its wealth, not its cash, bears it: being short of cash is a matter for credit, not for its nerve."""
    return rules.abs_risk_aversion(st.firm_risk_aversion[f],
                                   st.balance[ledger.account(st, ledger.FIRM, f)] + st.firm_assets[f])


# --------------------------------------------------------------------------- needs
@entry
def raise_need(st, series, month, j, surfaced):
    """Idle project slot ``j`` has a technology need from this month: raised by its firm or, if ``surfaced``, brought
    to light by a visit (a broker's, an expert's) or a matching event; counted in the needs raised (and surfaced)."""
    st.project_state[j] = rules.NEED
    st.project_need_month[j] = month
    series[month, C.NEEDS_RAISED] += 1
    if surfaced:
        series[month, C.NEEDS_SURFACED] += 1


@entry
def firm_project(st, f, state):
    """Firm ``f``'s first project slot in ``state`` (IDLE, NEED, ...), or -1: where a need arising at the firm, or a
    visitor, lands."""
    for j in range(st.project_offsets[f], st.project_offsets[f + 1]):
        if st.project_state[j] == state:
            return j
    return -1


@entry
def visited_project(st, f):
    """The project slot a visitor to firm ``f`` deals with: its first with an open need, else its first idle one (a
    latent need may surface there), else -1 (every slot busy)."""
    j = firm_project(st, f, rules.NEED)
    return j if j >= 0 else firm_project(st, f, IDLE)


@entry
def expire_needs(p, st, month, lo, hi):
    """Project slots ``lo .. hi - 1`` give up their open needs that found no match within ``need_patience`` months
    (a firm's slots, or every slot at once); returns how many. A need raised this month never expires this month
    (``need_patience >= 1``), so a firm's new need and its expiring ones may be dealt with in either order; a slot
    whose need expires now takes no new one this month (the new one lands in a slot idle as the month began). One
    pass without branches (the compiled loop is vectorised)."""
    oldest = month - p.need_patience   # a need raised in month ``oldest`` or before has waited long enough
    # views from 0: the compiler then knows no index is negative and a write to the state moves no array (and
    # vectorises the loop)
    state, since = st.project_state[lo:hi], st.project_need_month[lo:hi]
    expired = 0
    for j in range(state.shape[0]):
        gone = (state[j] == rules.NEED) & (since[j] <= oldest)
        expired += gone
        state[j] = IDLE if gone else state[j]
    return expired




# --------------------------------------------------------------------------- judging a match
@entry
def true_chance(p, st, f, a):
    """The real success chance of implementing achievement ``a`` in firm ``f``."""
    fit = rng.uniform(p.seed, rng.FIT, 0, rules.pair_key(f, st.ach_key[a]))
    return rules.success_chance(st.ach_quality[a], st.ach_maturity[a], st.firm_absorptive[f], fit,
                                p.maturity_floor, p.absorptive_floor, p.fit_floor)


@entry
def judged_chance(p, st, f, a, noise_sd, z):
    """A judgement of that chance with normal error ``noise_sd * z``."""
    return rules.perceived_chance(true_chance(p, st, f, a), noise_sd, z)


@entry
def propose(p, st, month, f, b, visit):
    """Broker ``b`` screens a few achievements of its sector for firm ``f``; returns (the best shelved one by its
    judgement or -1, that judgement)."""
    return screen(p, st, month, f, st.broker_sector[b], rules.broker_noise(p.noise, st.broker_skill[b]), p.screen,
                  visit, rng.SCREEN, rng.BROKER_NOISE)


# --------------------------------------------------------------------------- the published lists
@entry
def publish(st):
    """The published lists as the month's search begins: every shelved achievement (universities' catalogues,
    platforms), by sector, ascending within a sector, into ``st.listed`` (sector ``s``'s in
    ``listed[listed_offsets[s]:listed_offsets[s + 1]]``). Firms search them, and brokers and experts screen them: an
    achievement not yet disclosed, expired or in use is on no list, so what a search finds does not depend on how
    long the run is."""
    n_sectors = st.ach_offsets.shape[0] - 1
    k = 0
    for s in range(n_sectors):
        for a in range(st.ach_offsets[s], st.ach_offsets[s + 1]):
            if st.ach_status[a] == rules.SHELVED:
                st.listed[k] = a
                k += 1
        st.listed_offsets[s + 1] = k


@entry
def search_lists(p, st, series, month, j):
    """Project ``j``'s firm, for its open need, searches the published lists of its sector (:func:`publish`) at
    ``search_cost`` (a firm that cannot pay it does not search); a firm with several open needs searches for each. With ``L`` listed it finds something meeting its need with chance
    :func:`sim.core.rules.find_chance` (``1 - (1 - list_match)^L``): then it judges ``list_screen`` of them, drawn at
    random, with its own error (``self_noise``). Returns the best still shelved by its judgement (or -1) and that
    judgement."""
    f = st.project_firm[j]
    firm = account(st, FIRM, f)
    cost = rules.yuan(p.search_cost)
    if st.balance[firm] < cost:
        return -1, 0.0
    pay(st, series, month, firm, account(st, MARKET, 0), cost, ledger.SEARCH_COSTS)
    series[month, C.LIST_SEARCHES] += 1
    s = st.firm_sector[f]
    lo, n = st.listed_offsets[s], st.listed_offsets[s + 1] - st.listed_offsets[s]
    if n == 0 or rng.uniform(p.seed, rng.LIST_FIND, month, j) >= rules.find_chance(p.list_match, n):
        return -1, 0.0
    series[month, C.LIST_FINDS] += 1
    best, best_seen = -1, -1.0
    for k in range(p.list_screen):
        key = j * p.list_screen + k
        a = st.listed[lo + rng.randint(p.seed, rng.SELF_PICK, month, key, n)]
        if st.ach_status[a] != rules.SHELVED:  # taken by another firm earlier this month
            continue
        seen = judged_chance(p, st, f, a, p.self_noise, rng.normal(p.seed, rng.SELF_NOISE, month, key))
        if seen > best_seen:
            best, best_seen = a, seen
    return best, best_seen


@kernel
def screen(p, st, month, f, s, sd, n_screen, key, screen_purpose, noise_purpose):
    """Someone (a broker, a visiting expert, a matching event) screens ``n_screen`` achievements of sector ``s``'s
    published list (:func:`publish`) for firm ``f``, judging each with error ``sd`` (draws keyed by ``key`` under the
    two purposes); returns (the best still shelved by that judgement or -1, the judgement)."""
    lo, size = st.listed_offsets[s], st.listed_offsets[s + 1] - st.listed_offsets[s]
    best, best_seen = -1, -1.0
    if size == 0:
        return best, 0.0
    for j in range(n_screen):
        k = key * n_screen + j
        a = st.listed[lo + rng.randint(p.seed, screen_purpose, month, k, size)]
        if st.ach_status[a] != rules.SHELVED:
            continue
        seen = judged_chance(p, st, f, a, sd, rng.normal(p.seed, noise_purpose, month, k))
        if seen > best_seen:
            best, best_seen = a, seen
    return best, best_seen


@kernel
def visit(p, st, series, month, f, key, surface_chance, surface_purpose, s, sd, n_screen, screen_purpose,
          noise_purpose, broker):
    """A visit to firm ``f`` (a broker's, an expert's, a firm's at a matching event; ``key`` names it in its draws),
    for one of its projects (:func:`visited_project`): a latent need surfaces in an idle slot with
    ``surface_chance``; for an open need, the visitor screens ``n_screen`` achievements of sector ``s`` with error
    ``sd`` (:func:`screen`) and the firm considers the best shelved one if its transfer office can open
    (:func:`consider`, brought about by ``broker`` or -1). Returns (a need surfaced, a candidate put to the firm, the
    project slot whose negotiation opened or -1)."""
    surfaced = False
    j = visited_project(st, f)
    if j < 0:
        return surfaced, False, -1
    if st.project_state[j] == IDLE and rng.uniform(p.seed, surface_purpose, month, key) < surface_chance:
        raise_need(st, series, month, j, True)
        surfaced = True
    if st.project_state[j] != rules.NEED:
        return surfaced, False, -1
    a, seen = screen(p, st, month, f, s, sd, n_screen, key, screen_purpose, noise_purpose)
    if a >= 0 and can_open(st, a):
        return surfaced, True, j if consider(p, st, series, month, j, a, seen, broker) else -1
    return surfaced, False, -1


@kernel
def can_open(st, a):
    """Whether the transfer office of achievement ``a``'s owner can still open a negotiation this month."""
    u = st.ach_owner[a]
    return st.univ_opened[u] < st.univ_capacity[u]


@kernel
def success_bonus_pv(p, st, a, term):
    """Present value, when a form is offered, of what a conversion of achievement ``a`` after ``term`` months is worth
    to its university besides the payments (an appraisal reward: :data:`sim.core.state` ``univ_success_bonus``)."""
    return rules.discount_factor(p.discount_rate, term) * st.univ_success_bonus[st.ach_owner[a]]


# --------------------------------------------------------------------------- the contract decision
@kernel
def services_at_signing(p, st, j):
    """What project ``j`` pays for technology services when its contract is signed: the broker's service fee, the
    form's payment at signing and the firm's part of the broker's fee on it."""
    brokered = st.c_broker[j] >= 0
    at_sign = st.c_at_sign[j] if hooks.FORM_KIND_AT_SIGN[st.c_form[j]] >= 0 else np.int64(0)
    fee_rate = p.fee_rate if brokered else 0.0
    fixed = rules.yuan(p.fee_fixed) if brokered else np.int64(0)
    return fixed + at_sign + rules.firms_fee(at_sign, fee_rate, p.fee_firm_share)


@kernel
def service_payment(p, amount, b):
    """What a payment of ``amount`` to the university under a contract brought about by broker ``b`` (-1: none) is
    in technology services: the payment and the firm's part of the broker's fee on it."""
    fee_rate = p.fee_rate if b >= 0 else 0.0
    return amount + rules.firms_fee(amount, fee_rate, p.fee_firm_share)


@entry
def copay(spend, rate, cap_left):
    """The public co-payment (an innovation voucher) on a technology-service payment: ``rate`` of it, within the cap
    left (whole yuan)."""
    return min(rules.yuan(rate * spend), max(np.int64(0), np.int64(math.floor(cap_left))))


@entry
def copay_caps(support):
    """The co-payments' caps on offer, summed (yuan): the most public money they pay the contract."""
    total = 0.0
    for k in range(SUPPORT_COPAYS, support.shape[0], 2):
        total += support[k + 1]
    return total


@entry
def copaid(support):
    """Whether a co-payment is on offer."""
    for k in range(SUPPORT_COPAYS, support.shape[0], 2):
        if support[k] > 0.0:
            return True
    return False


@entry
def support_terms(sign_services, success_services, own_upfront, cash, support):
    """What a contract's payments cost the firm with the support on offer (``support``: credit,
    :data:`sim.core.state.SUPPORT_CREDIT` ..., and a (rate, cap) pair per co-payment of the technology-service
    payments, :func:`sim.core.public.offer_copayment`).

    ``sign_services`` are the service payments at signing (price or fee to the university,
    the firm's part of the broker's fee, the broker's service fee), ``success_services``
    those due on success, ``own_upfront`` the firm's own spending at signing
    (implementation cost, premium). Each co-payment covers its ``rate`` of the same service
    payments, at signing first, within its cap: several instruments co-pay side by side,
    none knowing of the others (their rates sum below 1, :func:`sim.core.config.load_config`);
    the firm borrows what its cash lacks at signing and owes the interest in either outcome
    (:func:`supported_ce`: on failure it repays as far as its cash goes). Returns (paid at
    signing, paid on success, interest, borrowed), floats.
    """
    at_sign_help = np.int64(0)   # in whole yuan, as it will be paid
    on_success_help = np.int64(0)
    for k in range(SUPPORT_COPAYS, support.shape[0], 2):
        rate, cap = support[k], support[k + 1]
        help_at_sign = copay(sign_services, rate, cap)
        at_sign_help += help_at_sign
        on_success_help += copay(success_services, rate, cap - help_at_sign)
    at_sign = own_upfront + sign_services - at_sign_help
    borrowed = max(0.0, at_sign - cash)
    return at_sign, success_services - on_success_help, support[SUPPORT_CREDIT_RATE] * borrowed, borrowed


@entry
def supported_ce(p_hat, value, at_sign, on_success, interest, borrowed, refund, cash, abs_ra, credit, collateral):
    """The firm's CE of a contract with support (:func:`support_terms`' payments): on success it pays everything;
    on failure it repays its loan and interest as far as its cash (and any refund) goes, then the lender seizes the
    ``collateral`` it pledged beyond its cash (assets, yuan). A borrower is liable with its cash and that collateral, no
    more (the pledged patent is worth nothing after a failed implementation): it loses at most ``cash + collateral``.
    (A firm that does not borrow pays everything from its cash in either outcome; a loan beyond the ``credit`` on
    offer is not to be had: the contract is weighed, as unaffordable, without it.)"""
    failure = -at_sign - interest + refund
    if 0.0 < borrowed <= credit:
        failure = max(failure, -float(cash) - collateral)
    return rules.certainty_equivalent(p_hat, value - at_sign - on_success - interest, failure, abs_ra)


@entry
def _licence_ce(price, p_hat, value, own, refund, fee_rate, fee_firm_share, fixed, cash, abs_ra, support):
    """The firm's CE of a licence at ``price`` (whole yuan) with support, and what it borrows."""
    at_sign, _, interest, borrowed = support_terms(
        float(price + rules.firms_fee(price, fee_rate, fee_firm_share) + fixed), 0.0, own, cash, support)
    return (supported_ce(p_hat, value, at_sign, 0.0, interest, borrowed, refund, cash, abs_ra, support[SUPPORT_CREDIT],
                         support[SUPPORT_COLLATERAL]), borrowed)


@entry
def choose_contract(p_hat, value, cost, cash, abs_ra, ask, reservation_share, bargaining_power,
                    offers, n_offers, covers, n_covers, fee_rate, fee_fixed, fee_firm_share, support):
    """The contract the pair signs (:func:`_choose_contract`); credit on offer that the firm would not draw changes
    nothing: the decision is then the one without the credit, bit for bit (an offer nobody takes is no offer; without
    this, a willingness found by bisection over prices with credit on offer differs from the closed form by a yuan)."""
    if support[SUPPORT_CREDIT] <= 0.0:
        return _choose_contract(p_hat, value, cost, cash, abs_ra, ask, reservation_share, bargaining_power, offers,
                                n_offers, covers, n_covers, fee_rate, fee_fixed, fee_firm_share, support)
    undrawn = support.copy()
    undrawn[SUPPORT_CREDIT] = 0.0
    undrawn[SUPPORT_CREDIT_RATE] = 0.0
    undrawn[SUPPORT_COLLATERAL] = 0.0
    if may_borrow(value, cost, cash, offers, n_offers, covers, n_covers, fee_rate, fee_fixed, fee_firm_share, support):
        out = _choose_contract(p_hat, value, cost, cash, abs_ra, ask, reservation_share, bargaining_power, offers,
                               n_offers, covers, n_covers, fee_rate, fee_fixed, fee_firm_share, support)
        if out[4] > 0:
            return out
    return _choose_contract(p_hat, value, cost, cash, abs_ra, ask, reservation_share, bargaining_power, offers,
                            n_offers, covers, n_covers, fee_rate, fee_fixed, fee_firm_share, undrawn)


@entry
def may_borrow(value, cost, cash, offers, n_offers, covers, n_covers, fee_rate, fee_fixed, fee_firm_share, support):
    """Whether some contract on offer could cost the firm more at signing than its cash, by a bound no decision
    exceeds: the implementation cost, the dearest cover's premium, the broker's service fee, and the dearest payment
    at signing with the firm's part of the broker's fee (a licence is never bargained above the value and the
    co-payment's cap: :func:`_highest_payment`; a trial pays nothing at signing). If not, no credit is drawn and the
    decision with it is the one without it (:func:`choose_contract` skips weighing it)."""
    most = 0.0
    bargained = float(value) + copay_caps(support) + 1.0   # once, not per offer
    for j in range(n_offers):
        if offers[j, OFFER_BARGAINED] == BARGAIN_ON_SUCCESS:
            continue
        sign = bargained if offers[j, OFFER_BARGAINED] > 0 \
            else offers[j, OFFER_AT_SIGN]
        most = max(most, sign)
    premium = 0.0
    for k in range(n_covers):
        premium = max(premium, covers[k, COVER_PREMIUM])
    return float(cost) + premium + fee_fixed + most * (1.0 + fee_rate * fee_firm_share) + 4.0 > cash   # 4: roundings


@entry
def _choose_contract(p_hat, value, cost, cash, abs_ra, ask, reservation_share, bargaining_power,
                     offers, n_offers, covers, n_covers, fee_rate, fee_fixed, fee_firm_share, support):
    """The contract the pair signs, by the firm's certainty equivalent (CE), with the support on offer.

    Every form on offer (``offers``: a price at signing and/or a payment on success, or a
    bargained licence price) is weighed alone and with every cover on offer (``covers``: a
    premium at signing, a refund on failure). A broker's fee (``fee_rate`` of each payment,
    0 without a broker, ``fee_firm_share`` of it paid by the firm) raises the firm's cost of
    a payment and cuts the university's take; ``fee_fixed`` is the broker's service fee at
    signing. ``support`` (:func:`support_terms`) may pay part of the service payments and
    lend what the firm's cash lacks at signing, up to a limit (a borrower loses at most its
    cash and the collateral it pledged on failure: :func:`supported_ce`). A licence's price is the Nash bargain between
    the university's reservation price and the firm's willingness to pay (without support,
    CARA is translation invariant: the CE at price 0 less the price; with support, the
    highest price the firm's CE stays >= 0 at, :func:`_willingness`). A use-first trial's
    price (``OFFER_BARGAINED == BARGAIN_ON_SUCCESS``) is the same bargain over a payment
    made only on success: between the university's reservation payment on success (the
    offer's ``OFFER_ON_SUCCESS``, :func:`sim.core.rules.success_reservation`) and the firm's
    willingness to pay on success (:func:`sim.core.rules.success_willingness`; with support,
    :func:`_success_willingness`). Ties go to the first form, then to no cover.

    Returns (offer row or -1, cover row or -1, bargained price (at signing, or on success for a trial's), CE,
    borrowed, outlay): row -1
    when no form is both affordable and better than walking away (CE > 0); ``outlay`` is what
    the firm pays at signing, net of the co-payment (its loan included: it needs
    ``outlay - borrowed`` of its own cash then).
    """
    best_row, best_cover, best_price, best_ce, best_borrowed = -1, -1, np.int64(0), 0.0, np.int64(0)
    best_outlay = 0.0
    fee_rate_firm = fee_rate * fee_firm_share
    fee_rate_univ = fee_rate - fee_rate_firm
    credit = support[SUPPORT_CREDIT]
    supported = copaid(support) or credit > 0.0
    fixed = rules.yuan(fee_fixed)
    for k in range(n_covers + 1):
        cover = k - 1
        prem = np.int64(covers[cover, COVER_PREMIUM]) if cover >= 0 else np.int64(0)
        refund = np.int64(covers[cover, COVER_REFUND]) if cover >= 0 else np.int64(0)
        upfront = cost + prem + fixed
        for j in range(n_offers):
            if offers[j, OFFER_BARGAINED] == BARGAIN_ON_SUCCESS:   # a use-first trial's price, paid only on success
                reservation = offers[j, OFFER_ON_SUCCESS] / (1.0 - fee_rate_univ)
                if not supported:
                    willingness = rules.success_willingness(p_hat, float(value - upfront), float(-upfront + refund),
                                                            abs_ra) / (1.0 + fee_rate_firm)
                    price = rules.licence_price(willingness, reservation, bargaining_power)
                    if price >= 0:
                        success_pay = price + rules.firms_fee(price, fee_rate, fee_firm_share)
                        ce = rules.certainty_equivalent(p_hat, float(value - upfront - success_pay),
                                                        float(-upfront + refund), abs_ra)
                        if upfront <= cash and ce > best_ce:
                            best_row, best_cover, best_price, best_ce = j, cover, price, ce
                            best_outlay = float(upfront)
                    continue
                own = float(cost + prem)
                price = rules.licence_price(
                    _success_willingness(p_hat, value, own, float(refund), fee_rate, fee_firm_share, fixed, cash,
                                         abs_ra, support), reservation, bargaining_power)
                if price >= 0:
                    out_sign, out_success, interest, borrowed = support_terms(
                        float(fixed), float(price + rules.firms_fee(price, fee_rate, fee_firm_share)), own, cash,
                        support)
                    ce = supported_ce(p_hat, value, out_sign, out_success, interest, borrowed, float(refund), cash,
                                      abs_ra, credit, support[SUPPORT_COLLATERAL])
                    if borrowed <= credit and ce > best_ce:
                        best_row, best_cover, best_price, best_ce = j, cover, price, ce
                        best_borrowed = np.int64(math.ceil(borrowed))
                        best_outlay = out_sign
                continue
            if offers[j, OFFER_BARGAINED] > 0:
                reservation = reservation_share * ask / (1.0 - fee_rate_univ)
                if not supported:
                    ce0 = rules.certainty_equivalent(p_hat, float(value - upfront), float(-upfront + refund), abs_ra)
                    price = rules.bargained_price(ce0 / (1.0 + fee_rate_firm), reservation, bargaining_power,
                                                  _affordable(cash - upfront, fee_rate, fee_firm_share))
                    if price >= 0:
                        firm_fee = rules.firms_fee(price, fee_rate, fee_firm_share)
                        ce = ce0 - price - firm_fee
                        if price + firm_fee + upfront <= cash and ce > best_ce:
                            best_row, best_cover, best_price, best_ce = j, cover, price, ce
                            best_outlay = float(price + firm_fee + upfront)
                    continue
                own = float(cost + prem)
                willingness = _willingness(p_hat, value, own, float(refund), fee_rate, fee_firm_share, fixed, cash,
                                           abs_ra, support)
                price = rules.bargained_price(willingness, reservation, bargaining_power,
                                              _affordable_supported(willingness, fee_rate, fee_firm_share, fixed, own,
                                                                    cash, support))
                if price >= 0:
                    ce, borrowed = _licence_ce(price, p_hat, value, own, float(refund), fee_rate, fee_firm_share,
                                               fixed, cash, abs_ra, support)
                    if borrowed <= credit and ce > best_ce:
                        best_row, best_cover, best_price, best_ce = j, cover, price, ce
                        best_borrowed = np.int64(math.ceil(borrowed))
                        best_outlay = support_terms(float(price + rules.firms_fee(price, fee_rate, fee_firm_share)
                                                          + fixed), 0.0, own, cash, support)[0]
            else:
                at_sign = np.int64(offers[j, OFFER_AT_SIGN])
                on_success = np.int64(offers[j, OFFER_ON_SUCCESS])
                sign_pay = at_sign + rules.firms_fee(at_sign, fee_rate, fee_firm_share)
                success_pay = on_success + rules.firms_fee(on_success, fee_rate, fee_firm_share)
                if not supported:
                    ce = rules.certainty_equivalent(p_hat, float(value - upfront - sign_pay - success_pay),
                                                    float(-upfront - sign_pay + refund), abs_ra)
                    if upfront + sign_pay <= cash and ce > best_ce:
                        best_row, best_cover, best_price, best_ce = j, cover, at_sign, ce
                        best_outlay = float(upfront + sign_pay)
                    continue
                own = float(cost + prem)
                out_sign, out_success, interest, borrowed = support_terms(
                    float(sign_pay + fixed), float(success_pay), own, cash, support)
                ce = supported_ce(p_hat, value, out_sign, out_success, interest, borrowed, float(refund), cash, abs_ra,
                                  credit, support[SUPPORT_COLLATERAL])
                if borrowed <= credit and ce > best_ce:
                    best_row, best_cover, best_price, best_ce = j, cover, at_sign, ce
                    best_borrowed = np.int64(math.ceil(borrowed))
                    best_outlay = out_sign
    return best_row, best_cover, best_price, best_ce, best_borrowed, best_outlay


@entry
def _affordable(cash_left, fee_rate, fee_firm_share):
    """The highest licence price a firm can pay from ``cash_left`` with its part of the broker's fee on it."""
    if cash_left < 0:
        return -1.0
    price = np.int64(math.floor(cash_left / (1.0 + fee_rate * fee_firm_share)))
    while price > 0 and price + rules.firms_fee(price, fee_rate, fee_firm_share) > cash_left:
        price -= 1   # the fee's rounding: a yuan or two at most
    return float(price)


@entry
def _affordable_supported(willingness, fee_rate, fee_firm_share, fixed, own, cash, support):
    """The highest licence price up to ``willingness`` the firm can pay with the support on offer (what it borrows
    within the credit); -1 if not even a price of 0. Bisection (what it borrows grows with the price)."""
    credit = support[SUPPORT_CREDIT]

    def borrowed(price):
        whole = np.int64(math.floor(price))
        return support_terms(float(whole + rules.firms_fee(whole, fee_rate, fee_firm_share) + fixed), 0.0, own, cash,
                             support)[3]

    if borrowed(0.0) > credit:
        return -1.0
    if willingness <= 0.0 or borrowed(willingness) <= credit:
        return max(willingness, 0.0)
    lo, hi = 0.0, willingness
    for _ in range(64):
        if hi - lo < 1.0:
            break
        mid = 0.5 * (lo + hi)
        if borrowed(mid) <= credit:
            lo = mid
        else:
            hi = mid
    return lo


@kernel
def _ce_paying(price, on_success, ce_own, p_hat, value, own, refund, fee_rate, fee_firm_share, fixed, cash, abs_ra,
               support):
    """The firm's CE with support of paying ``price`` (and its part of a broker's fee) to the university at signing
    (``on_success`` false: a licence) or only on success (a trial's bargained price)."""
    credit = support[SUPPORT_CREDIT]
    if on_success:
        out_sign, out_success, interest, borrowed = support_terms(
            float(fixed), float(price + rules.firms_fee(price, fee_rate, fee_firm_share)), own, cash, support)
        if borrowed > credit:
            return -1.0
        return supported_ce(p_hat, value, out_sign, out_success, interest, borrowed, refund, cash, abs_ra, credit,
                            support[SUPPORT_COLLATERAL])
    at_sign, _, interest, borrowed = support_terms(
        float(price + rules.firms_fee(price, fee_rate, fee_firm_share) + fixed), 0.0, own, cash, support)
    if borrowed <= 0.0 or borrowed > credit:   # no loan (or none to be had): no limit to the firm's liability
        return ce_own - (at_sign - own + interest)
    return supported_ce(p_hat, value, at_sign, 0.0, interest, borrowed, refund, cash, abs_ra, credit,
                        support[SUPPORT_COLLATERAL])


@kernel
def _highest_payment(on_success, p_hat, value, own, refund, fee_rate, fee_firm_share, fixed, cash, abs_ra, support):
    """The highest payment (to a yuan) at which :func:`_ce_paying` is still >= 0; -1 if not even 0. Bisection (no
    payment above the value and the co-payment's cap leaves the firm a positive CE)."""
    ce_own = rules.certainty_equivalent(p_hat, float(value) - own, -own + refund, abs_ra)
    args = (p_hat, value, own, refund, fee_rate, fee_firm_share, fixed, cash, abs_ra, support)
    if _ce_paying(np.int64(0), on_success, ce_own, *args) < 0.0:
        return -1.0
    lo, hi = 0.0, max(1.0, float(value) + copay_caps(support))
    for _ in range(64):
        if hi - lo < 1.0:
            break
        mid = 0.5 * (lo + hi)
        if _ce_paying(np.int64(math.floor(mid)), on_success, ce_own, *args) >= 0.0:
            lo = mid
        else:
            hi = mid
    return lo


@entry
def _willingness(p_hat, value, own, refund, fee_rate, fee_firm_share, fixed, cash, abs_ra, support):
    """The highest licence price (to a yuan) at which the firm's CE with support (:func:`_licence_ce`, decreasing in
    the price) is still >= 0; -1 if not even a price of 0. At a price the firm pays without borrowing, its failure
    costs it all it pays, and CARA's translation invariance makes the CE the one before any payment less the sure
    outlay: one certainty equivalent for all those prices, not one per step (the same number, cheaper)."""
    return _highest_payment(False, p_hat, value, own, refund, fee_rate, fee_firm_share, fixed, cash, abs_ra, support)


@entry
def _success_willingness(p_hat, value, own, refund, fee_rate, fee_firm_share, fixed, cash, abs_ra, support):
    """The highest payment on success (to a yuan) at which the firm's CE with support (:func:`supported_ce`,
    decreasing in the payment) is still >= 0; -1 if not even 0, or if what it pays at signing needs more credit than
    is on offer (without support: :func:`sim.core.rules.success_willingness`)."""
    return _highest_payment(True, p_hat, value, own, refund, fee_rate, fee_firm_share, fixed, cash, abs_ra, support)


@entry
def consider(p, st, series, month, j, a, signal, broker):
    """For its project ``j``, a firm weighs achievement ``a`` (success signal ``signal``, proposed by ``broker`` or -1); if a contract
    suits it, negotiation opens. Returns whether it did."""
    f = st.project_firm[j]
    value = rules.project_amount(st.ach_value[a], st.firm_scale[f])
    cost = rules.project_amount(st.ach_cost[a], st.firm_scale[f])
    n = _offer_licence(p, st)
    n = hooks.offer_forms(p, st, series, month, j, a, signal, n)
    st.public_offered[0] = 0
    n_covers = hooks.offer_covers(p, st, j, a, cost, 0)
    st.support[:] = 0.0
    hooks.offer_support(p, st, series, month, j, a, cost)
    cash = st.balance[account(st, FIRM, f)]
    p_hat = rules.firm_estimate(rules.belief_mean(st.firm_alpha[f], st.firm_beta[f]), signal, p.belief_weight)
    brokered = broker >= 0
    row, cover, price, _, borrowed, outlay = choose_contract(
        p_hat, value, cost, cash, firm_risk_attitude(st, f),
        st.ach_ask[a], st.univ_reservation[st.ach_owner[a]], p.bargaining_power, st.offers, n, st.covers, n_covers,
        p.fee_rate if brokered else 0.0, p.fee_fixed if brokered else 0.0, p.fee_firm_share, st.support)
    if row < 0:
        st.ach_declined[a] += 1   # a firm wanted it, not on these terms (demand a maturation grant may target)
        return False
    terms = st.offers[row]
    st.c_ach[j] = a
    st.c_borrowed[j] = borrowed
    st.c_own_cash[j] = max(np.int64(0), np.int64(math.ceil(outlay)) - borrowed)
    st.c_broker[j] = broker
    st.c_form[j] = np.int64(terms[OFFER_FORM])
    if terms[OFFER_BARGAINED] == BARGAIN_ON_SUCCESS:   # the bargained price is paid on success, nothing at signing
        st.c_at_sign[j] = np.int64(terms[OFFER_AT_SIGN])
        st.c_on_success[j] = price
    else:
        st.c_at_sign[j] = price
        st.c_on_success[j] = np.int64(terms[OFFER_ON_SUCCESS])
    st.c_negotiation[j] = terms[OFFER_NEGOTIATION]
    st.c_term[j] = np.int64(terms[OFFER_TERM])
    st.c_status[j] = np.int64(terms[OFFER_STATUS])
    st.c_value[j] = value
    st.c_cost[j] = cost
    st.c_chance[j] = true_chance(p, st, f, a)
    st.c_opened[j] = month
    hooks.on_open(p, st, series, month, j, cover)
    st.ach_status[a] = rules.NEGOTIATING
    st.univ_opened[st.ach_owner[a]] += 1
    st.project_state[j] = NEGOTIATING_FIRM
    tally(st, series, month, j, C.MATCHES, C.MATCHES_SME, state.SECTOR_MATCHES)
    if brokered:
        series[month, C.MATCHES_BROKERED] += 1
    return True


@kernel
def tally(st, series, month, j, column, sme_column, sector_column):
    """Count one event of project ``j`` (a match, a contract, a success, a failure): in the series, in its SMEs' part
    if its firm is an SME, and in its sector's funnel."""
    f = st.project_firm[j]
    series[month, column] += 1
    series[month, sme_column] += st.firm_sme[f]
    st.sector_series[month, st.firm_sector[f], sector_column] += 1


@kernel
def _offer_licence(p, st):
    """The model's own form, always on offer: a licence at a bargained price, paid at signing."""
    return offer(st, 0, LICENCE, 0, 0, True, p.months_licence, p.implementation_months, rules.LICENSED)


# --------------------------------------------------------------------------- negotiation, signing, payments
@entry
def organised_search(p, st, series, month):
    """Publicly organised search this month (expert visits, matching events): the instruments' search hook."""
    hooks.search(p, st, series, month)


@entry
def negotiate(p, st, series, month, j, u):
    """One month of project ``j``'s negotiation (``u``: its uniform draw): it concludes (signing), continues or breaks
    down."""
    mean = rules.negotiation_months(st.c_negotiation[j], st.c_broker[j] >= 0, p.broker_speedup)
    step = rules.negotiation_step(u, mean, p.breakdown_hazard)
    if step == rules.CONCLUDED and st.balance[account(st, FIRM, st.project_firm[j])] < st.c_own_cash[j]:
        # the firm's cash fell while it negotiated (its other projects' payments, an earlier royalty's instalments):
        # it can no longer pay at signing what it agreed to, and the deal falls through
        step = rules.BROKE_DOWN
    if step == rules.CONCLUDED:
        sign(p, st, series, month, j)
    elif step == rules.BROKE_DOWN:
        shelve(p, st, st.c_ach[j], month)
        hooks.on_breakdown(p, st, series, month, j)
        st.project_state[j] = IDLE
        series[month, C.NEGOTIATIONS_FAILED] += 1


@kernel
def sign(p, st, series, month, j):
    """The contract is signed: service fee, the form's payment at signing, the instruments' part, the
    implementation cost; the term starts."""
    hooks.at_signing(p, st, series, month, j)
    f = st.project_firm[j]
    b = st.c_broker[j]
    firm = account(st, FIRM, f)
    if b >= 0:  # the service fee, paid by the firm that was served
        fee = rules.yuan(p.fee_fixed)
        pay(st, series, month, firm, account(st, BROKER, b), fee, ledger.SERVICE_FEES)
        st.broker_income[b] += fee
    form = st.c_form[j]
    if hooks.FORM_KIND_AT_SIGN[form] >= 0:
        collect(p, st, series, month, j, st.c_at_sign[j], hooks.FORM_KIND_AT_SIGN[form])
    hooks.on_sign(p, st, series, month, j)
    pay(st, series, month, firm, account(st, MARKET, 0), st.c_cost[j], ledger.IMPLEMENTATION_COST)
    st.ach_status[st.c_ach[j]] = st.c_status[j]
    st.c_ends[j] = month + st.c_term[j]
    st.project_state[j] = IMPLEMENTING
    if st.firm_signed[f] == 0:
        series[month, C.ADOPTERS] += 1   # the firm's first contract
    st.firm_signed[f] += 1
    tally(st, series, month, j, hooks.FORM_COLUMN[form], C.CONTRACTS_SME, state.SECTOR_CONTRACTS)
    series[month, C.SIGN_DELAY_SUM] += month - st.project_need_month[j]
    record_deal(st, st.c_at_sign[j] + st.c_on_success[j], form)


@kernel
def record_deal(st, value, form):
    """Record a signed contract's value (what the firm agreed to pay the university, at signing and on success) and
    form, one by one (``st.deal_value``, bounded by :func:`sim.core.state.deal_bound`)."""
    k = st.deal_n[0]
    if k >= st.deal_value.shape[0]:
        raise ValueError("more contracts signed than state.deal_bound (max_failures + 1 per achievement)")
    st.deal_value[k] = value
    st.deal_form[k] = form
    st.deal_n[0] = k + 1


@kernel
def collect(p, st, series, month, j, amount, kind):
    """Project ``j``'s firm pays the university ``amount`` under the project's contract (a payment of ``kind``): see
    :func:`collect_for`."""
    collect_for(p, st, series, month, st.project_firm[j], st.c_ach[j], st.c_broker[j], amount, kind)


@kernel
def collect_for(p, st, series, month, f, a, b, amount, kind):
    """Firm ``f`` pays the owner of achievement ``a`` ``amount`` under the contract for ``a`` that broker ``b``
    (-1: none) brought about (a payment of ``kind``); the broker's fee, the instruments' part (a reward) and the
    inventors' share follow.

    The contract is named explicitly because it need not be one a project of the firm is
    running: a payment that falls due after the project slot has moved on to a new contract
    (a royalty instalment) is still paid under, and to the parties of, the contract it is due
    on. Instruments keep a contract's state beyond its term by achievement (``a``): an
    achievement is under at most one contract at a time and, once it succeeds, stays in use,
    never contracted again (a running contract's state is the slot's ``c_*`` arrays).
    """
    univ = st.ach_owner[a]
    firm, university = account(st, FIRM, f), account(st, UNIVERSITY, univ)
    pay(st, series, month, firm, university, amount, kind)
    series[month, C.CONTRACT_PAYMENTS] += 1
    univ_fee = np.int64(0)
    if b >= 0:
        fee = rules.broker_fee(amount, p.fee_rate)
        firm_fee, univ_fee = rules.fee_split(fee, p.fee_firm_share)
        broker = account(st, BROKER, b)
        pay(st, series, month, firm, broker, firm_fee, ledger.BROKER_FEES_FIRM)
        pay(st, series, month, university, broker, univ_fee, ledger.BROKER_FEES_UNIVERSITY)
        st.broker_income[b] += fee
    net = amount - univ_fee
    hooks.on_payment(p, st, series, month, f, a, b, amount, net)
    series[month, C.UNIVERSITY_INCOME] += net
    to_inventors = rules.inventor_payment(net, p.inventor_share)
    pay(st, series, month, university, account(st, INVENTORS, 0), to_inventors, ledger.INVENTOR_INCOME)


@entry
def settle(p, st, series, month, j):
    """Project ``j``'s implementation's outcome: value and the form's payment on success, or a failure; returns success."""
    f = st.project_firm[j]
    a = st.c_ach[j]
    # Keyed by the attempt as well as the pair: a firm implementing the same achievement
    # again draws afresh (keyed by the pair alone, a failure repeated itself for certain).
    attempt = st.ach_attempts[a]
    st.ach_attempts[a] += 1
    success = rng.uniform(p.seed, rng.OUTCOME, attempt, rules.pair_key(f, st.ach_key[a])) < st.c_chance[j]
    sector = st.firm_sector[f]
    if success:
        pay(st, series, month, account(st, MARKET, 0), account(st, FIRM, f), st.c_value[j], ledger.FIRM_VALUE)
        st.ach_status[a] = rules.IN_USE
        st.ach_in_use_since[a] = month
        tally(st, series, month, j, C.SUCCESSES, C.SUCCESSES_SME, state.SECTOR_SUCCESSES)
        kind = hooks.FORM_KIND_ON_SUCCESS[st.c_form[j]]
        if kind >= 0:
            collect(p, st, series, month, j, st.c_on_success[j], kind)
        st.sector_successes[sector] += 1
    else:
        tally(st, series, month, j, C.FAILURES, C.FAILURES_SME, state.SECTOR_FAILURES)
        st.ach_failures[a] += 1
        if rules.settles_as_abandoned(st.ach_failures[a], p.max_failures):
            st.ach_status[a] = rules.ABANDONED
        else:
            shelve(p, st, a, month)
        st.sector_failures[sector] += 1
    st.c_reported[j] = success   # an instrument may learn otherwise (a trial's undetected false report)
    hooks.on_settle(p, st, series, month, j, success)
    if success:
        st.firm_month_successes[f] += 1.0
    else:
        st.firm_month_failures[f] += 1.0
    st.project_state[j] = IDLE
    return success


# --------------------------------------------------------------------------- learning, brokers and the month
@entry
def learn(p, st):
    """Firms update their beliefs: each from its own outcomes this month (its projects'), then (weighted) from its
    sector's peers."""
    peers = p.peer_weight > 0 and (st.sector_successes.sum() + st.sector_failures.sum()) > 0
    # the arrays as locals: the compiler then knows a write to a belief moves no array (and vectorises the loop)
    alpha, beta, sector = st.firm_alpha, st.firm_beta, st.firm_sector
    own_successes, own_failures = st.firm_month_successes, st.firm_month_failures
    sector_successes, sector_failures, weight = st.sector_successes, st.sector_failures, p.peer_weight
    for f in range(alpha.shape[0]):
        own_s, own_f = own_successes[f], own_failures[f]
        alpha[f] += own_s
        beta[f] += own_f
        if peers:
            s = sector[f]
            s_peer, f_peer = rules.peer_outcomes(sector_successes[s], sector_failures[s], own_s, own_f)
            if s_peer != 0 or f_peer != 0:
                alpha[f] += weight * s_peer
                beta[f] += weight * f_peer



@entry
def review_broker(p, st, series, month, b):
    """End of month for active broker ``b``: it pays its costs and updates its average profit; returns whether it
    exits."""
    cost = rules.yuan(p.monthly_cost)
    pay(st, series, month, account(st, BROKER, b), account(st, MARKET, 0), cost, ledger.BROKER_COSTS)
    st.broker_avg_profit[b] = rules.moving_average(st.broker_avg_profit[b], float(st.broker_income[b] - cost),
                                                   p.profit_memory)
    st.broker_income[b] = 0
    if rules.broker_exits(st.broker_avg_profit[b], p.exit_loss, month - st.broker_entered[b], p.grace_months):
        st.broker_active[b] = False
        series[month, C.BROKER_EXITS] += 1
        return True
    return False


@entry
def close_month(p, st, series, month):
    """Candidates enter the broker market (logistic in incumbents' average profit); the instruments' month ends."""
    n_b = st.broker_active.shape[0]
    total, count = 0.0, 0
    for b in range(n_b):
        if st.broker_active[b]:
            total += st.broker_avg_profit[b]
            count += 1
    mean_profit = total / count if count > 0 else 0.0
    chance = rules.broker_entry_chance(mean_profit, p.monthly_cost, p.entry_max, p.entry_sensitivity)
    for k in range(p.entry_candidates):
        if st.next_entrant[0] < n_b and rng.uniform(p.seed, rng.ENTRY, month, k) < chance:
            b = st.next_entrant[0]
            st.broker_active[b] = True
            st.broker_entered[b] = month
            st.next_entrant[0] += 1
            series[month, C.BROKER_ENTRIES] += 1
    hooks.on_month(p, st, series, month)


@kernel
def shelve(p, st, a, month):
    """Achievement ``a`` is (back) on the shelf, or leaves the portfolio if it is past ``expiry_months``."""
    st.ach_status[a] = rules.EXPIRED if month - st.ach_born[a] >= p.expiry_months else rules.SHELVED


@entry
def open_month(p, st, series, month):
    """A new month: the budget year may start; new achievements are disclosed, shelved ones past
    ``expiry_months`` leave the portfolio, uses past ``use_months`` end; transfer offices open no negotiation yet;
    no outcome yet."""
    if rules.budget_year_starts(month):
        st.gov_committed[0] = st.gov_reserved[0]  # promised last year, paid this year: this year's money
    for a in range(st.ach_status.shape[0]):  # the portfolio lives: arrivals, expiry, end of use
        status = st.ach_status[a]
        if status == rules.NOT_YET and st.ach_born[a] == month:
            st.ach_status[a] = rules.SHELVED
            series[month, C.ARRIVALS] += 1
        elif status == rules.SHELVED:
            shelve(p, st, a, month)
        elif status == rules.IN_USE and month - st.ach_in_use_since[a] >= p.use_months:
            st.ach_status[a] = rules.USE_ENDED
    st.univ_opened[:] = 0
    st.firm_month_successes[:] = 0.0
    st.firm_month_failures[:] = 0.0
    st.sector_successes[:] = 0.0
    st.sector_failures[:] = 0.0


@entry
def record(p, st, series, month):
    """Month-end stocks: achievements by status, brokers, beliefs, every class's cash, the instruments' stocks."""
    s = series[month]
    counts = np.zeros(rules.N_STATUS)
    for a in range(st.ach_status.shape[0]):
        counts[st.ach_status[a]] += 1
    for status in range(rules.N_STATUS):
        s[C.STATUS_COLUMNS[status]] = counts[status]
    s[C.BROKERS_ACTIVE] = st.broker_active.sum()
    belief_sum, running_value, running_payments, running_successes, below = 0.0, 0.0, 0.0, 0.0, 0
    # the arrays as locals, and views from 0: the compiler knows no index is negative and vectorises what it may (the
    # sums of floats stay in this order)
    alpha, beta, cash_start = st.firm_alpha, st.firm_beta, st.firm_cash_start
    firm_cash = st.balance[account(st, FIRM, 0):account(st, FIRM, alpha.shape[0])]
    for f in range(alpha.shape[0]):
        belief_sum += rules.belief_mean(alpha[f], beta[f])
    for f in range(alpha.shape[0]):
        below += firm_cash[f] < cash_start[f]
    project_state, chance, value, on_success = st.project_state, st.c_chance, st.c_value, st.c_on_success
    for j in range(project_state.shape[0]):
        if project_state[j] == IMPLEMENTING:  # valued at the horizon by the chance they will succeed
            running_value += chance[j] * value[j]
            running_payments += chance[j] * on_success[j]
            running_successes += chance[j]
    s[C.RUNNING_VALUE] = running_value
    s[C.RUNNING_SUCCESSES] = running_successes
    s[C.RUNNING_PAYMENTS] = running_payments
    s[C.FIRMS_BELOW_START] = below / st.firm_alpha.shape[0]
    s[C.MEAN_BELIEF] = belief_sum / st.firm_alpha.shape[0]
    overdrawn = 0
    for cls in range(hooks.CASH_COLUMN.shape[0]):
        s[hooks.CASH_COLUMN[cls]] = ledger.class_total(st, cls)
        if not hooks.OVERDRAFT[cls]:
            balance = st.balance[st.acct_base[cls]:st.acct_base[cls + 1]]
            for i in range(balance.shape[0]):
                overdrawn += balance[i] < 0
    s[C.ACCOUNTS_OVERDRAWN] = overdrawn
    firms = s[hooks.CASH_COLUMN[FIRM]]
    s[C.FIRM_SURPLUS] = firms - (series[month - 1, hooks.CASH_COLUMN[FIRM]] if month > 0 else st.firm_cash0[0])
    hooks.record(p, st, series, month)


