"""Use first, pay later (Lishui, Tianjin): free use for a term, a fee only if the use succeeds.

The firm implements the achievement for ``trial.term_months`` without a price at signing
and pays ``success_fee + price_share x asking price`` only if the implementation succeeds.
The firm bears only its implementation cost if it fails; the university carries the risk
of never being paid. Trials are quicker to agree (Lishui: about half a month).

Who offers a trial: a university in a pilot that obliges it
(``scenario.universities.pilot_share``; Lishui's pilot: all) offers one for every
achievement; any other offers one only when the trial is worth its reservation price to
it (:func:`sim.rules.university_accepts`: the fee, discounted over the term, with the
chance the match shows, under its risk aversion). So the share of matches offered a trial
is an outcome (``trials_offered`` / ``trials_declined``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..jit import entry, kernel

from .. import columns, forms, ledger, rules
from ..schema import ConfigError, _c, money, months, share

NAME = "free_trial"
SECTION = "trial"


@dataclass
class Params:
    term_months: int = months(24, "free-trial term: months of free use before payment is due (Lishui: 2 years)", lo=0)
    success_fee: float = money(20000.0, "one-off fee paid only if the use succeeds (Tianjin: 20,000 yuan)")
    price_share: float = share(0.0, "share of the asking price also paid on success (Lishui-style 'pay later')")
    negotiation_months: float = _c(0.5, gt=0.0, le=1200,
                                   doc="mean months to conclude a free-trial negotiation (Lishui: ~half a month)")


TRIAL_PAYMENTS = ledger.kind("trial_payments", ledger.FIRM, ledger.UNIVERSITY,
                             "free-trial fees, paid on success only", owner=NAME)
TRIAL = forms.form("trial", "free trial, fee only on success", owner=NAME, kind_on_success=TRIAL_PAYMENTS)
TRIALS_OFFERED = columns.column("trials_offered", "matches weighed with a free trial on offer (obliged or worth it to "
                                "the university)", summary=True, owner=NAME)
TRIALS_DECLINED = columns.column("trials_declined", "matches weighed where the university, not obliged, offered no "
                                 "trial (not worth its reservation price)", summary=True, owner=NAME)
TRIALS_CONVERTED = columns.column("trials_converted", "free trials that succeeded and were paid for", summary=True,
                                  owner=NAME)


def check(cfg) -> None:
    if cfg.trial.term_months < 1:
        raise ConfigError(f"trial.term_months = {cfg.trial.term_months}: must be >= 1 when free trials are on "
                          f"(regime '{cfg.regime.name}')")


@entry
def trial_payment(success_fee, price_share, ask):
    """What a free-trial firm pays on success (and only then): the fee plus a share of the asking price."""
    return rules.yuan(success_fee + price_share * ask)


@kernel
def offer_forms(p, st, series, month, f, a, signal, n):
    """The university offers a trial if a pilot obliges it or if the trial is worth its reservation price to it."""
    t = p.free_trial
    fee = trial_payment(t.success_fee, t.price_share, st.ach_ask[a])
    obliged = st.univ_in_pilot[st.ach_owner[a]]
    if not obliged and not rules.university_accepts(
            signal, 0, rules.discount_factor(p.discount_rate, t.term_months) * fee, p.univ_risk_aversion,
            st.ach_ask[a], p.reservation_share):
        series[month, TRIALS_DECLINED] += 1
        return n
    series[month, TRIALS_OFFERED] += 1
    return forms.offer(st, n, TRIAL, 0, fee, False, t.negotiation_months, t.term_months, rules.ON_TRIAL)


@kernel
def on_settle(p, st, series, month, f, success):
    if success and st.c_form[f] == TRIAL:  # the fee itself was paid by the form's payment on success
        series[month, TRIALS_CONVERTED] += 1


def check_series(s, cfg) -> None:
    """A trial fee only on success: trial payments only in months with converted trials."""
    from ..results import InvariantError

    bad = (s[:, TRIAL_PAYMENTS] > 0) & (s[:, TRIALS_CONVERTED] == 0)
    if bad.any():
        raise InvariantError(f"month {bad.argmax()}: trial payments without a converted trial")
    c = s.cumsum(axis=0)
    bad = c[:, TRIALS_CONVERTED] > c[:, columns.SUCCESSES]
    if bad.any():
        raise InvariantError(f"month {bad.argmax()}: more trials converted than successes")


def summarize(totals: dict, s) -> dict:
    weighed = totals["trials_offered"] + totals["trials_declined"]
    return {"trial_offer_share": totals["trials_offered"] / weighed if weighed else np.nan}
