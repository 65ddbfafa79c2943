"""Public money: offered to a decision, promised, paid ahead, released; or paid at once within the year's budget.

``government.annual_budget`` caps what government pays in each budget year (months 0-11, 12-23, ...;
none: no cap). A payment the firm counts on when it decides (an innovation voucher, a premium subsidy)
is promised before it is paid, and every instrument that makes one follows the same protocol:

1. **offer** (hooks ``offer_covers``, ``offer_support``): what the decision may receive is at most
   :func:`budget_left`, this year's budget less what is paid or promised, less what other instruments
   have offered the same decision; :func:`offer` counts the largest it may take, so that the offers of
   several instruments together fit in the budget. A co-payment of the firm's technology-service
   payments is offered with :func:`offer_copayment`, in the instrument's slot of ``st.support``;
2. **promise** (``on_open``): the amount the firm decided on is promised against this year's budget
   (:func:`promise`);
3. **pay ahead** (``at_signing``, ``on_sign``): government pays it, the promise kept (:func:`pay_promised`);
4. **release** (``on_breakdown``): a negotiation that breaks down frees its promise (:func:`release`).

A promise counts in the year it is made and, while unpaid, is carried into the following years
(:func:`sim.core.contracts.open_month`), so that it counts in the year it is paid too: payments per budget
year never exceed the cap. Payments nobody counted on ahead (a broker's reward, a grant, a voucher's part of
a later payment) are paid at once within the year's budget, or refused and counted by the instrument
(:func:`pay_public`).
"""

from __future__ import annotations

import math

import numpy as np

from .jit import entry, kernel

from . import ledger, rules
from .state import SUPPORT_COPAYS

NO_LIMIT = 2**62   # yuan: more than any account or flow can reach (sim.core.population.money_bound < 2**53)


# --------------------------------------------------------------------------- the budget year
@kernel
def budget_left(p, st):
    """Public money this year's budget can still promise to the decision being weighed: what is neither paid nor
    promised this year, nor already offered to this decision by another instrument (whole yuan; no budget: no
    limit)."""
    if p.budget < 0.0:
        return np.int64(NO_LIMIT)
    return max(np.int64(0), np.int64(math.floor(p.budget)) - st.gov_committed[0] - st.public_offered[0])


@kernel
def spend_budget(st, amount):
    """Count a payment made now in this year's budget."""
    st.gov_committed[0] += amount


@kernel
def pay_public(p, st, series, month, payee, amount, kind):
    """Government pays ``amount`` to account ``payee`` (a payment of ``kind``) if this year's budget allows, counting
    it in the budget; returns whether it paid (each instrument counts what it was refused)."""
    if not rules.within_budget(amount, st.gov_committed[0], p.budget):
        return False
    ledger.pay(st, series, month, ledger.account(st, ledger.GOVERNMENT, 0), payee, amount, kind)
    spend_budget(st, amount)
    return True


# --------------------------------------------------------------------------- the protocol of a promised payment
@kernel
def offer(st, amount):
    """1. ``amount`` yuan of public money is on offer to the decision being weighed (the largest it may take): later
    offers to the same decision leave room for it (:func:`budget_left`)."""
    st.public_offered[0] += amount


@kernel
def promise(st, amount):
    """2. Promise ``amount`` yuan of public money, to be paid later (the firm decided on it)."""
    st.gov_committed[0] += amount
    st.gov_reserved[0] += amount


@kernel
def pay_promised(st, series, month, payee, amount, kind):
    """3. Government pays a promise to account ``payee`` (a payment of ``kind``): it stays counted in its year."""
    ledger.pay(st, series, month, ledger.account(st, ledger.GOVERNMENT, 0), payee, amount, kind)
    st.gov_reserved[0] -= amount


@kernel
def release(st, amount):
    """4. A promise falls away unpaid: its money is free again this year."""
    st.gov_committed[0] -= amount
    st.gov_reserved[0] -= amount


# --------------------------------------------------------------------------- co-payments
@entry
def copay_rate_index(slot):
    """Where co-payment ``slot``'s rate is in ``st.support`` (its cap follows)."""
    return SUPPORT_COPAYS + 2 * slot


@kernel
def offer_copayment(p, st, slot, rate, cap):
    """Offer the decision being weighed a co-payment of its technology-service payments in ``slot`` (declared with
    :func:`sim.core.state.copayment`): ``rate`` of them, up to ``cap`` yuan over the contract, within what this
    year's budget can still promise (:func:`budget_left`). Returns the cap offered (0: none)."""
    cap = min(np.int64(math.floor(cap)), budget_left(p, st))
    if cap > 0 and rate > 0.0:
        k = copay_rate_index(slot)
        st.support[k] = rate
        st.support[k + 1] = float(cap)
        offer(st, cap)
        return cap
    return np.int64(0)


@kernel
def copayment_decided(st, slot):
    """The cap of the co-payment in ``slot`` that the firm decided with (read in ``on_open``: ``st.support`` still
    holds the support of its decision)."""
    return np.int64(st.support[copay_rate_index(slot) + 1])


def check_copayment(s, kind, counted, rate, sme_only, what) -> None:
    """A co-payment's invariants over a batch of runs' series ``s``: it never pays more than ``rate`` of the firms'
    technology-service payments of a month (half a yuan of rounding per payment: the contracts' payments and
    ``counted``, the column of contracts it paid), nor, when ``sme_only``, to large firms. ``kind`` is its payment
    kind, ``what`` its name in the message."""
    from .columns import CONTRACT_PAYMENTS
    from .results import InvariantError, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    services = sum(s[:, :, k.column] for k in ledger.KINDS
                   if k.payer == ledger.FIRM and k.payee in (ledger.UNIVERSITY, ledger.BROKER))
    slack = 0.5 * (s[:, :, CONTRACT_PAYMENTS] + s[:, :, counted])  # each payment rounded half up
    bad = s[:, :, kind] > rate * services + slack
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: {what} {s[0, m, kind]:.0f} exceed {rate} of the firms' "
                             f"technology-service payments ({services[0, m]:.0f})")
    sme = ledger.class_of(kind).sme_column
    bad = s[:, :, kind] != s[:, :, sme]
    if sme_only and sme >= 0 and failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: {what} paid to large firms ({s[0, m, kind] - s[0, m, sme]:.0f} yuan) while "
                             f"{what}.sme_only is true")
