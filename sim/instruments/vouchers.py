"""Innovation vouchers (Shanghai, seed 001): public vouchers pay part of an SME's spending on technology services.

Shanghai proposes "technology innovation vouchers as a policy tool to guide the
innovation needs of enterprises, nurture the market for technology services" (seed
001). Here a voucher pays ``rate`` of what a firm spends on technology services under a
contract, up to ``cap`` yuan over the contract (per project): the price or fee to the
university, the firm's part of the broker's fee on each payment, and the broker's
service fee. Only SMEs hold vouchers unless ``sme_only`` is false.

The firm knows the voucher when it decides (:func:`sim.core.contracts.support_terms`: the
co-payment counts against the services paid at signing first, then those due on
success, within the cap), so a voucher raises its willingness to pay and lets a firm
short of cash at signing sign. Government pays the firm (ledger kind ``vouchers``) with
each service payment, by the protocol of a promised public payment (:mod:`sim.core.public`):

* at signing, before the payments, the part of the services paid then: the voucher the
  firm was offered and decided on, promised against the yearly budget when the
  negotiation opens (as a premium subsidy is), paid ahead at signing, released if it
  breaks down;
* on each later payment (a trial's fee on success, a royalty instalment), ``rate`` of
  it within the cap left, if the year's budget allows then; else it is refused and
  counted (``vouchers_denied``): the firm pays in full.

The voucher on offer is the cap or, under a budget, what this year's budget can still
promise to the decision if less (:func:`sim.core.public.budget_left`: a premium subsidy on
offer to the same decision leaves room for itself). It is a co-payment in its own slot of
the decision's support (:func:`sim.core.state.copayment`): another co-paying instrument
joins it without either knowing of the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.jit import kernel

from ..core import columns, contracts, ledger, public, schema, state

NAME = "vouchers"
SPEND = "vouchers"     # government spend on this instrument is the run metric gov_spend_vouchers
ZERO_STRENGTH = ("vouchers.rate=0",)  # on, yet a voucher pays nothing


@dataclass
class Params:
    rate: float = schema.param(
        0.5, ge=0.0, lt=1.0,
        doc="share of the firm's technology-service payments a voucher pays (judgement: seed 001 names vouchers "
            "without figures; co-payment schemes commonly pay half; range 0.3-0.8; below 1, so the firm pays part of "
            "every price)")
    cap: float = schema.money(
        200000.0, "most a voucher pays over one contract, yuan (judgement: the order of local innovation-voucher "
                  "caps per firm, 100,000-500,000)")
    sme_only: bool = schema.param(True, doc="only SMEs hold vouchers (judgement: voucher schemes serve small and "
                                            "medium firms; seed 001: to guide enterprises' innovation needs)")


VOUCHERS = ledger.kind("vouchers", ledger.GOVERNMENT, ledger.FIRM,
                       "innovation vouchers: government's part of firms' technology-service payments", owner=NAME)
VOUCHERS_DENIED = columns.column("vouchers_denied", "voucher payments refused for lack of budget (yuan)", money=True,
                                 summary=True, owner=NAME)
CONTRACTS_WITH_VOUCHER = columns.column("contracts_with_voucher", "contracts a voucher paid part of (counted at its "
                                        "first payment: at signing, or on a later payment such as a trial's fee)",
                                        summary=True, owner=NAME)
state.field("v_paid", "achievement", np.int64, 0, "voucher paid so far on the achievement's current contract",
            owner=NAME)
state.field("v_signed", "achievement", np.int64, -1, "month the achievement's current contract was signed",
            owner=NAME)
state.field("v_cap", "achievement", np.int64, 0, "the voucher offered for the achievement's current contract (yuan)",
            owner=NAME)
state.field("c_voucher_at_sign", "project", np.int64, 0, "voucher promised for the payments at signing", owner=NAME)
COPAY = state.copayment(NAME, "vouchers.rate")   # its slot in the decision's support


MONEY_KEYS = "vouchers.cap"  # what to lower when the money bound is passed


def money_bound(cfg, pop) -> float:
    """A voucher pays at most the cap per contract, and lets a price exceed the value by at most the cap; an
    achievement is contracted at most ``max_failures + 1`` times."""
    return 2.0 * cfg.vouchers.cap * pop.n_achievements * (cfg.scenario.universities.max_failures + 1)


# --------------------------------------------------------------------------- hooks
@kernel
def offer_support(p, st, series, month, j, a, cost):
    """1. Offer: the voucher, none for a large firm when vouchers are for SMEs; the cap, within what this year's
    budget can still promise to the decision (:func:`sim.core.public.offer_copayment`)."""
    if p.vouchers.sme_only and not st.firm_sme[st.project_firm[j]]:
        return
    public.offer_copayment(p, st, COPAY, p.vouchers.rate, p.vouchers.cap)


@kernel
def on_open(p, st, series, month, j, cover):
    """2. Promise: the voucher the firm decided on (its decision's support) is the contract's; its part for the
    payments at signing is promised against the budget now (the price is agreed)."""
    cap = public.copayment_decided(st, COPAY)
    a = st.c_ach[j]
    st.v_cap[a] = cap
    st.v_paid[a] = 0
    st.c_voucher_at_sign[j] = contracts.copay(float(contracts.services_at_signing(p, st, j)), p.vouchers.rate, float(cap))
    public.promise(st, st.c_voucher_at_sign[j])


@kernel
def on_breakdown(p, st, series, month, j):
    """4. Release."""
    public.release(st, st.c_voucher_at_sign[j])


@kernel
def at_signing(p, st, series, month, j):
    """3. Pay ahead: the voucher's part of the payments at signing arrives before them."""
    f = st.project_firm[j]   # the firm running project j
    a = st.c_ach[j]
    st.v_signed[a] = month
    help_ = st.c_voucher_at_sign[j]
    if help_ > 0:
        public.pay_promised(st, series, month, ledger.account(st, ledger.FIRM, f), help_, VOUCHERS)
        series[month, CONTRACTS_WITH_VOUCHER] += 1   # the contract's first voucher payment
    st.v_paid[a] = help_


@kernel
def on_payment(p, st, series, month, f, a, b, amount, net):
    """A later payment under the contract (on success, an instalment): the voucher pays its share within the cap left,
    if the year's budget allows. Payments at signing were met in :func:`at_signing`."""
    if st.v_signed[a] == month or p.vouchers.rate <= 0.0:
        return
    due = contracts.copay(float(contracts.service_payment(p, amount, b)), p.vouchers.rate,
                          float(st.v_cap[a] - st.v_paid[a]))
    if due <= 0:
        return
    # paid with the payment (the firm's cash covered the payment itself: it gets this back at once)
    if public.pay_public(p, st, series, month, ledger.account(st, ledger.FIRM, f), due, VOUCHERS):
        if st.v_paid[a] == 0:
            series[month, CONTRACTS_WITH_VOUCHER] += 1   # the contract's first voucher payment
        st.v_paid[a] += due
    else:
        series[month, VOUCHERS_DENIED] += due


# --------------------------------------------------------------------------- results
def check_series(s, cfg, c=None) -> None:
    """Vouchers never pay more than ``rate`` of the firms' technology-service payments of the month, nor to large
    firms when they are for SMEs (:func:`sim.core.public.check_copayment`)."""
    public.check_copayment(s, VOUCHERS, CONTRACTS_WITH_VOUCHER, cfg.vouchers.rate, cfg.vouchers.sme_only,
                           "vouchers")
