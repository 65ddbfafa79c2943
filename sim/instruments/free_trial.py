"""Use first, pay later (Zhejiang, Lishui, Tianjin): free use for a term, a price only if the use succeeds.

The firm implements the achievement for ``free_trial.term_months`` without a price at signing
and pays only if the implementation succeeds. What it pays then (``free_trial.payment``):

* ``bargained`` (the default; Zhejiang's use-first contracts, DOMAIN.md: "an agreed price
  after use"): a price agreed as a licence's is (the Nash bargain,
  :func:`sim.core.rules.licence_price`), but over a payment made only on success: between the
  university's reservation payment on success (:func:`sim.core.rules.success_reservation`:
  its reservation price, the chance the match shows, the payment discounted over the
  term, its risk aversion; and the firm's report, below) and the firm's willingness to
  pay on success (:func:`sim.core.rules.success_willingness`: its chance estimate, its risk
  aversion). A firm whose willingness is below the reservation signs no trial.
* ``fixed_fee`` (Tianjin: a one-off 20,000 yuan): ``success_fee + price_share x asking
  price``, whatever the achievement is worth.

The firm bears only its implementation cost if it fails; the university carries the risk
of never being paid. Trials are quicker to agree (Lishui: about half a month).

Who offers a trial: a university in a pilot that obliges it
(``scenario.universities.pilot_share``; Lishui's pilot: all) offers one for every
achievement (bargaining from a reservation of 0 on success where no payment reaches its
reservation price); any other offers one only when the trial can be worth its
reservation price to it (a fixed fee: :func:`sim.core.rules.university_accepts`, the fee
discounted over the term, with the chance the match shows, under its risk aversion; a
bargained price: some payment on success reaches it). Either way the university
anticipates a false failure report (:func:`misreports`) where the firm would make one at
that payment. So the share of matches offered a trial is an outcome (``trials_offered`` /
``trials_declined``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.jit import entry, kernel

from ..core import columns, contracts, forms, ledger, rng, rules
from ..core.schema import NEGOTIATION_MIN, ConfigError, _c, money, months, share

NAME = "free_trial"
ZERO_STRENGTH = ("scenario.universities.pilot_share=0", "free_trial.payment=fixed_fee",
                 "free_trial.success_fee=0")  # no pilot, a fixed fee of 0: no university offers a trial
PAYMENTS = ("bargained", "fixed_fee")   # free_trial.payment, as the kernels see it: its index
BARGAINED, FIXED_FEE = range(2)


@dataclass
class Params:
    term_months: int = months(24, "free-trial term: months of free use before payment is due (Lishui: 2 years)", lo=0)
    payment: str = _c("bargained", choices=PAYMENTS,
                      doc="what a successful trial pays: 'bargained', a price bargained as a licence's but paid only "
                          "on success (Zhejiang's use-first contracts: an agreed price after use, DOMAIN.md), or "
                          "'fixed_fee', success_fee + price_share x asking price (Tianjin's one-off 20,000 yuan)")
    success_fee: float = money(20000.0, "one-off fee paid only if the use succeeds, with payment=fixed_fee (Tianjin: "
                                         "20,000 yuan)")
    price_share: float = share(0.0, "share of the asking price also paid on success, with payment=fixed_fee "
                                "(Lishui-style 'pay later')")
    negotiation_months: float = _c(0.5, ge=NEGOTIATION_MIN, le=1200,
                                   doc="mean months to conclude a free-trial negotiation (Lishui: ~half a month)")
    verification: float = share(0.2, "chance a false failure report is found out (audits, reputation; judgement: no "
                                     "figure in the sources)")
    penalty: float = _c(1.0, ge=0.0, le=100.0, doc="penalty on a false report found out, as a multiple of the fee, "
                                                   "paid to the university (judgement)")


TRIAL_PAYMENTS = ledger.kind("trial_payments", ledger.FIRM, ledger.UNIVERSITY,
                             "free-trial fees, paid on success only", owner=NAME)
TRIAL_PENALTIES = ledger.kind("trial_penalties", ledger.FIRM, ledger.UNIVERSITY,
                              "penalties on false failure reports found out", owner=NAME)
MISREPORT_LOSSES = ledger.kind("misreport_losses", ledger.FIRM, ledger.MARKET,
                               "value a firm gives up after a false failure report: the part it had not absorbed",
                               owner=NAME)
# no kind_on_success: the fee is paid (or not) in on_settle, after the firm's report
TRIAL = forms.form("trial", "free trial, fee only on success", owner=NAME)
TRIALS_MISREPORTED = columns.column("trials_misreported", "successful trials the firm reported as failures",
                                    summary=True, owner=NAME)
TRIALS_CAUGHT = columns.column("trials_caught", "of which found out (fee and penalty paid)", summary=True,
                               owner=NAME)
TRIALS_OFFERED = columns.column("trials_offered", "matches weighed with a free trial on offer (obliged or worth it to "
                                "the university)", summary=True, owner=NAME)
TRIALS_DECLINED = columns.column("trials_declined", "matches weighed where the university, not obliged, offered no "
                                 "trial (not worth its reservation price)", summary=True, owner=NAME)
TRIALS_CONVERTED = columns.column("trials_converted", "free trials that succeeded and were paid for", summary=True,
                                  owner=NAME)


def check(cfg) -> None:
    if cfg.free_trial.term_months < 1:
        raise ConfigError(f"free_trial.term_months = {cfg.free_trial.term_months}: must be >= 1 when free trials are on "
                          f"(regime '{cfg.regime.name}')")


@entry
def trial_payment(success_fee, price_share, ask):
    """What a free-trial firm pays on success (and only then) with ``free_trial.payment = fixed_fee``: the fee plus a
    share of the asking price."""
    return rules.yuan(success_fee + price_share * ask)


@entry
def misreports(fee, value, absorptive, verification, penalty, abs_risk_aversion):
    """Whether a firm whose trial succeeded reports a failure (Ziedonis 2007: what it absorbed it keeps).

    Truthful, it keeps the value and pays the fee. Reporting a failure, it is found out with
    chance ``verification`` (then it keeps the value and pays the fee and ``penalty`` x the
    fee), else it pays nothing but must stop the use it had not absorbed: it keeps
    ``absorptive x value``. It misreports when the certainty equivalent of that lottery is
    higher.
    """
    caught = value - fee - penalty * fee
    return rules.certainty_equivalent(verification, caught, absorptive * value, abs_risk_aversion) > value - fee


@kernel
def expected_fee(p, st, f, fee, value):
    """What a successful trial brings the university, as it anticipates the firm's report: the fee, or, if the firm
    would misreport, fee and penalty only when found out."""
    t = p.free_trial
    if misreports(fee, value, st.firm_absorptive[f], t.verification, t.penalty,
                  contracts.firm_risk_attitude(st, f)):
        return t.verification * fee * (1.0 + t.penalty)
    return float(fee)


@kernel
def reservation_on_success(p, st, f, a, signal, value):
    """The least payment on success the owner of achievement ``a`` accepts for a trial with firm ``f``
    (:func:`sim.core.rules.success_reservation`), anticipating the firm's report at that payment: if the firm would report
    a failure there, it is paid (with the penalty) only when found out, and needs that much more. -1: no payment on
    success is worth its reservation price."""
    t = p.free_trial
    u = st.ach_owner[a]
    x = rules.success_reservation(signal, st.univ_reservation[u] * st.ach_ask[a],
                                  rules.discount_factor(p.discount_rate, t.term_months),
                                  contracts.success_bonus_pv(p, st, a, t.term_months), p.univ_risk_aversion,
                                  st.ach_ask[a])
    if x <= 0.0:
        return x
    if misreports(x, value, st.firm_absorptive[f], t.verification, t.penalty,
                  contracts.firm_risk_attitude(st, f)):
        paid = t.verification * (1.0 + t.penalty)   # as expected_fee: a share of the payment, when found out
        return x / paid if paid > 0.0 else -1.0
    return x


@kernel
def offer_forms(p, st, series, month, j, a, signal, n):
    """The university offers a trial if a pilot obliges it or if the trial can be worth its reservation price to it
    (anticipating a false failure report where the firm would make one): a fixed fee, or a price on success
    bargained from its reservation payment on success."""
    f = st.project_firm[j]   # the firm running project j
    t = p.free_trial
    obliged = st.univ_in_pilot[st.ach_owner[a]]
    value = rules.project_amount(st.ach_value[a], st.firm_scale[f])   # as sim.core.contracts.consider values it
    if t.payment == BARGAINED:
        reservation = reservation_on_success(p, st, f, a, signal, value)
        if reservation < 0.0:
            if not obliged:
                series[month, TRIALS_DECLINED] += 1
                return n
            reservation = 0.0   # obliged to offer the trial: any agreed price on success will do
        series[month, TRIALS_OFFERED] += 1
        return forms.offer_bargained_on_success(st, n, TRIAL, reservation, t.negotiation_months, t.term_months,
                                                rules.ON_TRIAL)
    fee = trial_payment(t.success_fee, t.price_share, st.ach_ask[a])
    if not obliged and not rules.university_accepts(
            signal, 0, rules.discount_factor(p.discount_rate, t.term_months) * expected_fee(p, st, f, fee, value)
            + contracts.success_bonus_pv(p, st, a, t.term_months),
            p.univ_risk_aversion, st.ach_ask[a], st.univ_reservation[st.ach_owner[a]]):
        series[month, TRIALS_DECLINED] += 1
        return n
    series[month, TRIALS_OFFERED] += 1
    return forms.offer(st, n, TRIAL, 0, fee, False, t.negotiation_months, t.term_months, rules.ON_TRIAL)


@kernel
def on_settle(p, st, series, month, j, success):
    """A successful trial: the firm reports; the fee is paid if it tells the truth or is found out (with the
    penalty, as far as its cash goes); an undetected false report costs it the use it had not absorbed."""
    f = st.project_firm[j]   # the firm running project j
    if not success or st.c_form[j] != TRIAL:
        return
    t = p.free_trial
    fee, value = st.c_on_success[j], st.c_value[j]
    firm = ledger.account(st, ledger.FIRM, f)
    if misreports(fee, value, st.firm_absorptive[f], t.verification, t.penalty,
                  contracts.firm_risk_attitude(st, f)):
        series[month, TRIALS_MISREPORTED] += 1
        if rng.uniform(p.seed, rng.VERIFY, month, j) >= t.verification:
            st.c_reported[j] = False   # the university (and its appraisal, if any) sees a failure
            ledger.pay(st, series, month, firm, ledger.account(st, ledger.MARKET, 0),
                       rules.yuan((1.0 - st.firm_absorptive[f]) * value), MISREPORT_LOSSES)
            return
        series[month, TRIALS_CAUGHT] += 1
        # the penalty is paid as far as the firm's cash goes once the fee, and its part of a broker's fee on it, is set
        # aside: a bargained fee is large, and its broker's fee with it
        owed = fee + (rules.fee_split(rules.broker_fee(fee, p.fee_rate), p.fee_firm_share)[0] if st.c_broker[j] >= 0
                      else np.int64(0))
        penalty = min(rules.yuan(t.penalty * fee), max(np.int64(0), st.balance[firm] - owed))
        ledger.pay(st, series, month, firm, ledger.account(st, ledger.UNIVERSITY, st.ach_owner[st.c_ach[j]]),
                   penalty, TRIAL_PENALTIES)
    contracts.collect(p, st, series, month, j, fee, TRIAL_PAYMENTS)
    series[month, TRIALS_CONVERTED] += 1


def check_series(s, cfg, c=None) -> None:
    """A trial fee only on success: trial payments only in months with converted trials."""
    from ..core.results import InvariantError, cumulative, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    bad = (s[:, :, TRIAL_PAYMENTS] > 0) & (s[:, :, TRIALS_CONVERTED] == 0)
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: trial payments without a converted trial")
    for kind, count, what in ((TRIAL_PENALTIES, TRIALS_CAUGHT, "penalties"),
                              (MISREPORT_LOSSES, TRIALS_MISREPORTED, "misreport losses")):
        bad = (s[:, :, kind] > 0) & (s[:, :, count] == 0)
        if failed(bad):
            raise InvariantError(f"month {first_month(bad)}: trial {what} without a trial misreported")
    c = cumulative(s) if c is None else c
    bad = c[:, :, TRIALS_CONVERTED] > c[:, :, columns.SUCCESSES]
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: more trials converted than successes")


def summarize(totals: dict, s) -> dict:
    """Its run metrics, one array over the runs each (``totals``: the run metrics so far; ``s``: the series,
    ``(runs, months, columns)``)."""
    from ..core.results import ratio

    weighed = totals["trials_offered"] + totals["trials_declined"]
    succeeded = totals["trials_converted"] + totals["trials_misreported"] - totals["trials_caught"]
    return {"trial_offer_share": ratio(totals["trials_offered"], weighed),
            "trial_misreport_share": ratio(totals["trials_misreported"], succeeded)}
