"""Staged payments and royalties (Tianjin implementation measures, 2025): a small payment at signing, a royalty
only if the use succeeds, paid in monthly instalments.

Tianjin's 2025 measures let the parties agree a one-off buyout, staged payments, or a
royalty on sales or profit; a royalty shares the risk with the university. Under this
instrument every university also offers a contract form ``royalty``: the firm pays
``upfront_share x asking price`` at signing (ledger kind ``royalty_upfront``), implements
the achievement for the scenario's ``negotiation.implementation_months``, and, ONLY if the
implementation succeeds, owes a royalty of ``rate x the project's value to the firm``,
paid in ``months`` equal monthly instalments from the month after the success (kind
``royalties``; the last instalment takes the rounding remainder, so a schedule sums to its
total exactly). The project's value to the firm stands in for the sales (or profit) the
royalty is levied on: the model has no sales stream of its own.

Choices, and what is not modelled:

* **The firm's decision** sees the form as a payment at signing (the upfront share) and
  one payment in the success state (the royalty total): :func:`sim.core.contracts.choose_contract`
  has no timing, so the instalments are **not discounted**, and the broker fee the firm
  expects is the fee on the total (the fees actually paid are on each instalment, each
  rounded to the yuan: they differ by at most a yuan per instalment). The firm's
  decisions on later contracts do not count the royalties it still owes (its cash is what
  it holds).
* **Who offers it**: a university that finds it worth its reservation price
  (:func:`sim.core.rules.university_accepts`: the upfront share for sure, the royalty with the
  chance the match shows, its instalments discounted from the end of the term).
* **Default**: an instalment is paid as far as the firm's cash goes (its part of the
  broker fee included: no firm is pushed below zero); the shortfall is written off and
  counted in ``royalties_unpaid``, as an insolvent insurer's unpaid claims are. The
  university carries that risk too.
* **Whose contract an instalment is paid under**: the royalty contract's, not one the firm
  now runs. The project slot is idle after a success and the firm may sign new contracts
  (in that slot or its others) while it still
  pays royalties on the old one, so the schedule keeps its own copy of the parties (by
  achievement: an achievement succeeds at most once, so it has at most one schedule), and
  each instalment is a contract payment of :func:`sim.core.contracts.collect_for` under that
  contract: the broker who brought the royalty deal gets the fee on it, the broker reward
  (if on) is counted against that project's cap (``broker_reward`` keeps it by
  achievement), the university that owns the achievement is paid, and its inventors get
  their share. A broker who has left the market is still paid the fees and rewards of its
  past deals (as on a free trial's fee on success).
* **Money bound** (:func:`sim.core.population.money_bound`): with ``upfront_share <= 1`` and
  ``rate <= 1`` a royalty contract moves at most the asking price and the value, with
  their fees, rewards and inventors' shares, like a licence; the bound needs no term of
  its own.

Parameters (section ``royalty`` of the config) are judgements: DOMAIN.md names the
Tianjin measures but gives no figures for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.jit import entry, kernel

from ..core import columns, contracts, forms, ledger, rules, schema, state

NAME = "royalty"
ZERO_STRENGTH = ("royalty.upfront_share=0", "royalty.rate=0")  # a royalty worth nothing: no university offers it


@dataclass
class Params:
    upfront_share: float = schema.share(
        0.1, "share of the asking price paid at signing (judgement: a small down payment, far below a licence's "
             "price, which is at least universities.reservation_share of the asking price)")
    rate: float = schema.share(
        0.05, "royalty as a share of the project's value to the firm, owed only on success (judgement: a few "
              "percent, as royalties on sales; no figure in the sources)")
    months: int = schema.months(
        24, "monthly instalments the royalty is paid in, from the month after the success (judgement: two years "
            "of sales)")
    negotiation_months: float = schema.param(
        3.0, ge=schema.NEGOTIATION_MIN, le=schema.MONTHS_MAX,
        doc="mean months to conclude a royalty negotiation (judgement: a little quicker than a licence's price, "
            "negotiation.months_licence = 4, slower than a free trial's 0.5)")


# what the instrument adds to the model
ROYALTY_UPFRONT = ledger.kind("royalty_upfront", ledger.FIRM, ledger.UNIVERSITY,
                              "upfront shares of the asking price, paid at signing a royalty contract", owner=NAME)
ROYALTIES = ledger.kind("royalties", ledger.FIRM, ledger.UNIVERSITY,
                        "royalty instalments, owed only after a royalty contract succeeded", owner=NAME)
ROYALTY = forms.form("royalty", "royalty: a small payment at signing, a royalty on success in instalments",
                     owner=NAME, kind_at_sign=ROYALTY_UPFRONT)   # no kind_on_success: on_settle starts a schedule
SIGNED_ROYALTY = forms.FORMS[ROYALTY].column
ROYALTIES_CONVERTED = columns.column("royalties_converted", "royalty contracts that succeeded (their instalments "
                                     "start the next month)", summary=True, owner=NAME)
ROYALTY_INSTALMENTS = columns.column("royalty_instalments", "royalty instalments that fell due (paid in full, or as "
                                     "far as the firm's cash went)", summary=True, owner=NAME)
ROYALTIES_DUE = columns.column("royalties_due", "royalty totals of the schedules started this month (yuan)",
                               money=True, owner=NAME)
ROYALTIES_UNPAID = columns.column("royalties_unpaid", "instalments firms could not pay, written off (yuan)",
                                  money=True, owner=NAME)
ROYALTIES_OUTSTANDING = columns.column("royalties_outstanding", "royalties not yet fallen due on running schedules "
                                       "(yuan)", stock=True, money=True, summary=True, owner=NAME)

# the instalment schedules, one per achievement (an achievement succeeds at most once)
state.field("roy_firm", "achievement", np.int64, -1, "the firm that owes the royalty", owner=NAME)
state.field("roy_broker", "achievement", np.int64, -1, "broker of the royalty contract, or -1", owner=NAME)
state.field("roy_total", "achievement", np.int64, 0, "royalty owed: rate x the project's value", owner=NAME)
state.field("roy_instalment", "achievement", np.int64, 0, "each instalment but the last", owner=NAME)
state.field("roy_left", "achievement", np.int64, 0, "instalments still to fall due", owner=NAME)
state.field("roy_due_left", "achievement", np.int64, 0, "yuan still to fall due", owner=NAME)
state.field("roy_start", "achievement", np.int64, -1, "month of the first instalment", owner=NAME)
state.field("roy_paid", "achievement", np.int64, 0, "yuan paid so far", owner=NAME)
state.field("roy_running", "one", np.int64, 0, "schedules with instalments still to fall due", owner=NAME)
state.field("roy_outstanding", "one", np.int64, 0, "yuan still to fall due on all schedules", owner=NAME)


# --------------------------------------------------------------------------- rules
@entry
def upfront(upfront_share, ask):
    """What the firm pays at signing: a share of the asking price, whole yuan."""
    return rules.yuan(upfront_share * ask)


@entry
def royalty_total(rate, value):
    """The royalty owed on success: a share of the project's value to the firm, whole yuan."""
    return rules.yuan(rate * value)


@entry
def instalment(total, months):
    """Each instalment but the last: the total split in ``months`` equal parts, rounded down (the last takes the
    remainder, ``total - (months - 1) x instalment``)."""
    return total // months


@entry
def firm_fee(amount, brokered, fee_rate, fee_firm_share):
    """The firm's part of the broker's fee on a contract payment of ``amount`` (0 without a broker)."""
    if not brokered:
        return np.int64(0)
    return rules.firms_fee(amount, fee_rate, fee_firm_share)


@entry
def affordable(due, cash, brokered, fee_rate, fee_firm_share):
    """The most of an instalment ``due`` a firm holding ``cash`` can pay, its part of the broker's fee on top."""
    if cash <= 0 or due <= 0:
        return np.int64(0)
    x = min(due, cash)
    if x + firm_fee(x, brokered, fee_rate, fee_firm_share) <= cash:
        return x
    x = np.int64(math.floor(cash / (1.0 + fee_rate * fee_firm_share)))  # within a yuan or two of the most
    while x > 0 and x + firm_fee(x, brokered, fee_rate, fee_firm_share) > cash:
        x -= 1
    while x < due and x + 1 + firm_fee(x + 1, brokered, fee_rate, fee_firm_share) <= cash:
        x += 1
    return x


# --------------------------------------------------------------------------- hooks
@entry
def instalments_pv(annual_rate, start, months):
    """Present value, now, of one yuan paid in ``months`` equal instalments from ``start + 1`` months on."""
    return sum([rules.discount_factor(annual_rate, start + k) for k in range(1, months + 1)]) / months


@kernel
def offer_forms(p, st, series, month, j, a, signal, n):
    """A university offers the royalty form when it is worth its reservation price to it (the upfront share, and
    the royalty in instalments after the term, discounted, with the chance the match shows)."""
    f = st.project_firm[j]   # the firm running project j
    r = p.royalty
    value = rules.project_amount(st.ach_value[a], st.firm_scale[f])   # as sim.core.contracts.consider values it
    at_sign, total = upfront(r.upfront_share, st.ach_ask[a]), royalty_total(r.rate, value)
    pv = (instalments_pv(p.discount_rate, p.implementation_months, r.months) * total
          + contracts.success_bonus_pv(p, st, a, p.implementation_months))
    if not rules.university_accepts(signal, at_sign, pv, p.univ_risk_aversion, st.ach_ask[a],
                                    st.univ_reservation[st.ach_owner[a]]):
        return n
    return forms.offer(st, n, ROYALTY, at_sign, total, False, r.negotiation_months, p.implementation_months,
                       rules.LICENSED)


@kernel
def on_settle(p, st, series, month, j, success):
    """A royalty contract that succeeded starts its schedule (the form has no single payment on success)."""
    f = st.project_firm[j]   # the firm running project j
    if not success or st.c_form[j] != ROYALTY:
        return
    a = st.c_ach[j]
    if st.roy_left[a] > 0:
        raise ValueError("an achievement with a running royalty schedule succeeded again")
    total = st.c_on_success[j]   # royalty_total(rate, value) as offered
    months = p.royalty.months
    st.roy_firm[a] = f
    st.roy_broker[a] = st.c_broker[j]
    st.roy_total[a] = total
    st.roy_instalment[a] = instalment(total, months)
    st.roy_left[a] = months
    st.roy_due_left[a] = total
    st.roy_start[a] = month + 1
    st.roy_running[0] += 1
    st.roy_outstanding[0] += total
    series[month, ROYALTIES_CONVERTED] += 1
    series[month, ROYALTIES_DUE] += total


@kernel
def pay_instalment(p, st, series, month, a):
    """The next instalment of achievement ``a``'s schedule falls due: paid under the royalty contract, as far as the
    firm's cash goes."""
    left = st.roy_left[a]
    due = st.roy_due_left[a] if left == 1 else st.roy_instalment[a]
    f, b = st.roy_firm[a], st.roy_broker[a]
    paid = affordable(due, st.balance[ledger.account(st, ledger.FIRM, f)], b >= 0, p.fee_rate, p.fee_firm_share)
    if paid > 0:
        contracts.collect_for(p, st, series, month, f, a, b, paid, ROYALTIES)
    series[month, ROYALTIES_UNPAID] += due - paid
    series[month, ROYALTY_INSTALMENTS] += 1
    st.roy_left[a] = left - 1
    st.roy_due_left[a] -= due
    st.roy_paid[a] += paid
    st.roy_outstanding[0] -= due
    if left == 1:
        st.roy_running[0] -= 1


@kernel
def on_month(p, st, series, month):
    """Every running schedule's instalment falls due, in the order of the achievements."""
    if st.roy_running[0] == 0:
        return
    for a in range(st.roy_left.shape[0]):
        if st.roy_left[a] > 0 and st.roy_start[a] <= month:
            pay_instalment(p, st, series, month, a)


@kernel
def record(p, st, series, month):
    series[month, ROYALTIES_OUTSTANDING] = st.roy_outstanding[0]


# --------------------------------------------------------------------------- results
def check_series(s, cfg, c=None) -> None:
    """Royalties only after a royalty contract succeeded, never more than owed: every schedule's total is accounted
    for (paid, written off or still to fall due), totals within rate x the value of successes, instalments only
    from the month after a conversion, upfront payments only in months with royalty signings."""
    from ..core.results import InvariantError, cumulative, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    c = cumulative(s) if c is None else c
    accounted = c[:, :, ROYALTIES] + c[:, :, ROYALTIES_UNPAID] + s[:, :, ROYALTIES_OUTSTANDING]
    bad = accounted != c[:, :, ROYALTIES_DUE]
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: royalties paid, unpaid and outstanding ({accounted[0, m]:.0f}) differ from "
                             f"the schedules started ({c[0, m, ROYALTIES_DUE]:.0f})")
    # each total is rounded half up to the yuan: half a yuan of slack per schedule
    bad = c[:, :, ROYALTIES_DUE] > cfg.royalty.rate * c[:, :, ledger.FIRM_VALUE] + 0.5 * c[:, :, ROYALTIES_CONVERTED]
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: royalties owed exceed royalty.rate x the value of successes")
    bad = s[:, :, ROYALTIES_CONVERTED] > s[:, :, columns.SUCCESSES]
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: more royalty contracts converted than successes")
    started_before = np.concatenate((np.zeros((c.shape[0], 1)), c[:, :-1, ROYALTIES_CONVERTED]), axis=1)
    bad = (s[:, :, ROYALTY_INSTALMENTS] > started_before) | ((s[:, :, ROYALTIES] > 0) & (s[:, :, ROYALTY_INSTALMENTS] == 0))
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: royalty instalments without a royalty contract converted in an "
                             "earlier month")
    bad = c[:, :, ROYALTY_INSTALMENTS] > cfg.royalty.months * started_before
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: more royalty instalments than royalty.months per conversion")
    bad = (s[:, :, ROYALTY_UPFRONT] > 0) & (s[:, :, SIGNED_ROYALTY] == 0)
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: upfront royalty payments without a royalty contract signed")
