"""IP pledge financing with a public guarantee fund (Heilongjiang action plan 2022-2025, seed 003): banks lend
against patents to firms short of cash, and a public fund takes part of the loss on default.

Seed 003 asks to "vigorously promote intellectual property pledge financing ... and expand
the scale of financing guarantee funds". Here ``lenders`` banks (an agent kind of their
own, with reserves in an account class of their own) lend a firm what its cash lacks to
sign and implement a contract, against the patent it takes up and the firm's assets
beyond cash (``scenario.firms.assets_to_cash_*``, :mod:`sim.core.population`):

* **Credit on offer** (hook ``offer_support``, before the firm decides): a pledge loan of
  at most ``floor(loan_to_value x the achievement's asking price)`` (the patent's lending
  value; its pledge value is the asking price) plus the pledged assets' lending value
  ``floor(asset_loan_to_value x assets)`` (:func:`credit_limit`), within what the lender
  can lend (its cash less the loans it has promised and not yet paid out). The loan's
  interest, as a share of the loan until the outcome is known, is the lender's price::

      rate = funding_rate x term_months / 12 + (1 + loading) x d x lgd x (1 - guarantee share)

  with ``d`` its estimate of the default rate, how often a borrower's cash falls short
  (``prior_default`` with weight ``prior_strength``, plus its own settled loans, as an
  insurer learns its failure rate), ``lgd`` the share of the credit limit the pledged
  assets do not cover (:func:`loss_given_default`: the patent recovers nothing), and the
  guarantee share ``guarantee_share`` if the fund covers the loan, else 0. The
  fund covers it when its capital (``fund_size`` less what it has paid and the guarantees
  it has committed on running loans) covers ``guarantee_share`` of the whole credit
  limit: the lender knows, when it prices, whether the loan is guaranteed. The firm
  applies to the lender with the lowest rate (on ties the one that can lend more, then the
  first: deterministic) and borrows only what its cash lacks at signing
  (:func:`sim.core.contracts.support_terms`). It weighs the loan as it will be repaid
  (:func:`sim.core.contracts.supported_ce`): the interest is owed in either outcome, and on a
  failure it repays as far as its cash goes and then loses its pledged assets up to their
  lending value, so it loses at most its cash and that collateral; the price it
  agrees is at most what it can pay with the loan (:func:`sim.core.rules.bargained_price`).
* **Counts** (``offer_support``): every decision offered credit (``credit_offers``), and those by a firm whose cash
  is short of the implementation cost plus the lowest licence price the university accepts
  (``credit_offers_short``, ``_sme``: :func:`short_of_cash`): who needs the credit, against who takes it
  (``loans_made``).
* **Commitments** (``on_open``): the loan agreed is promised by the lender (kept out of
  what it can lend to others) and its guarantee, ``ceil(guarantee_share x loan)``, is
  committed against the fund's capital; both are released if the negotiation breaks down.
* **The loan** (``at_signing``, before any payment at signing): LENDER -> FIRM, kind
  ``pledge_loans``.
* **Repayment** (``on_settle``, when the outcome is known, after the value, the success
  payments and any insurance claim): the firm repays loan + interest as far as its cash
  goes (kind ``loan_repayments``; interest first, then principal). If its cash falls short
  the pledge is enforced: the lender seizes the pledged assets for what is still owed, up
  to their lending value, and sells them (MARKET -> LENDER, kind ``collateral_recovered``;
  the firm's assets fall by as much). What is then still unpaid is a default: the
  principal left unpaid is the lender's loss (``loan_losses``), of which the
  guarantee fund pays ``floor(guarantee_share x loss)`` (GOVERNMENT -> LENDER, kind
  ``guarantee_payouts``, the instrument's public spend) if the loan was guaranteed, within
  the government's yearly budget (else refused: ``guarantees_denied``, a risk the lender
  does not price; with no budget, the default, it never happens). Unpaid interest is the
  lender's own risk, priced in its rate.
* **Solvency**: a lender whose equity (cash plus principal outstanding: its reserves, the
  loans counted at face value) falls below ``min_reserves`` stops lending for good
  (``lenders_active``), as an insurer withdraws; it still collects its running loans.

Choices, and what is not modelled: the patent pledged is the achievement the firm takes up
(its pledge value the asking price, a judgement: no appraisal); nothing is recovered from
the patent on default (a patent whose implementation failed sells for little); seized
assets sell at the value they were pledged at (the loan-to-value margin is the lender's);
the firm weighs risk per yuan of its net worth, cash and assets
(:func:`sim.core.contracts.firm_risk_attitude`), so an asset-rich firm short of cash borrows; the loan
runs until the outcome is known (12 months for a licence, the trial term for a trial)
while its funding cost is charged for ``term_months``; a firm that defaulted may borrow
again (no credit register). Parameters are judgements with ranges, the instrument itself
is seed 003's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.jit import entry, kernel

from ..core import columns, ledger, public, rules, state, views
from ..core.reserves import Holders, ReserveHolder, experience_rate, in_business, reserves_of, withdraw
from ..core.schema import _c, factor, money, months, share
from ..core.state import SUPPORT_COLLATERAL, SUPPORT_CREDIT, SUPPORT_CREDIT_RATE

NAME = "ip_pledge"


@dataclass
class Params:
    lenders: int = _c(2, ge=0, le=1000, doc="banks lending against patents (judgement: a few banks run a province's "
                                            "pledge programme; seed 003: 'vigorously promote IP pledge financing')")
    loan_to_value: float = share(0.5, "lending value of the pledged patent, as a share of its pledge value (its "
                                      "asking price): Chinese banks' patent pledge loan-to-value ratios are commonly "
                                      "cited as 30-50% of the appraised value; 0.5, the top of that range, because "
                                      "the asking price is below an appraisal's value (judgement)")
    asset_loan_to_value: float = share(0.5, "lending value of the firm's assets beyond cash pledged with the patent "
                                            "(scenario.firms.assets_to_cash_*), as a share of their value: what the "
                                            "lender may seize on a default (judgement: Chinese banks lend ~50-70% of "
                                            "property and ~30-50% of equipment and receivables; 0 = the patent alone)")
    guarantee_share: float = share(0.6, "share of a defaulted loan's unpaid principal the public guarantee fund pays "
                                        "(seed 003: 'expand the scale of financing guarantee funds'; the share is a "
                                        "judgement: funds commonly take 50-80% of the loss)")
    fund_size: float = money(2.0e7, "the guarantee fund's capital over the run: payouts and guarantees committed on "
                                    "running loans never exceed it (yuan; judgement: provincial funds of 10-100 M)")
    funding_rate: float = share(0.035, "lender's yearly cost of funds (judgement: near China's one-year loan prime "
                                       "rate, 3.1-4.3% over 2019-2024; range 3-5%)")
    term_months: int = months(12, "months of funding cost charged in a loan's rate (judgement: the usual one-year "
                                  "pledge loan; the loan is repaid when the outcome is known)")
    loading: float = factor(0.3, "loading on the expected loss in the lender's rate (judgement: costs and margin, "
                                 "as the insurer's; range 0.1-0.5)", hi=100.0)
    prior_default: float = _c(0.4, gt=0.0, lt=1.0, doc="lender's prior default rate of a pledge loan (judgement: a "
                                                       "borrower short of cash defaults when its implementation "
                                                       "fails, ~40% of new products, Castellion & Markham 2013, "
                                                       "DOMAIN.md; range 0.1-0.6)")
    prior_strength: float = factor(20.0, "weight of that prior, in pseudo-observations (judgement)", positive=True,
                                   hi=1.0e6)
    initial_reserves: float = money(5.0e7, "a lender's starting reserves for pledge loans (yuan; judgement: a "
                                           "programme a provincial branch can carry, 10-100 M)")
    min_reserves: float = money(2.5e7, "a lender stops lending for good when its equity (cash + principal "
                                       "outstanding) falls below these reserves: losses ate half its capital (yuan; "
                                       "judgement)")
    small_loan: float = money(1.0e7, "loans below this are counted as small (loans_sme_small): CNIPA's reporting "
                                     "line, 'SMEs with loans under 10 M yuan' (H1 2022, DOMAIN.md); a count, no rule")


# what the instrument adds to the model
LENDERS = Holders("lender", "lenders", "banks lending against patents (their reserves)",
                  lambda cfg, pop: cfg.ip_pledge.lenders, section=NAME, prefix="pl", does="lends",
                  active_doc="still lending", events="defaults", events_doc="settled loans whose borrower's cash fell "
                  "short of what it owed (defaults, the pledge enforced)", observed_doc="settled loans",
                  held="pl_outstanding")   # its equity: cash plus the principal of its running loans
LENDER = LENDERS.account
PLEDGE_LOANS = ledger.kind("pledge_loans", LENDER, ledger.FIRM, "pledge loans paid out at signing", owner=NAME)
LOAN_REPAYMENTS = ledger.kind("loan_repayments", ledger.FIRM, LENDER, "repayments of pledge loans (interest and "
                              "principal) when the outcome is known, as far as the firm's cash goes", owner=NAME)
COLLATERAL_RECOVERED = ledger.kind("collateral_recovered", ledger.MARKET, LENDER, "pledged assets a lender seized "
                                   "from a defaulting firm and sold (the buyer pays the lender; the firm's assets "
                                   "fall by as much)", owner=NAME)
GUARANTEE_PAYOUTS = ledger.kind("guarantee_payouts", ledger.GOVERNMENT, LENDER, "the guarantee fund's share of "
                                "lenders' losses on defaulted pledge loans", owner=NAME)
LOANS_MADE = columns.column("loans_made", "contracts financed by a pledge loan (loans paid out at signing)",
                            summary=True, owner=NAME)
LOANS_MADE_SME = columns.column("loans_made_sme", "of which to SMEs", summary=True, owner=NAME)
LOANS_SME_SMALL = columns.column("loans_sme_small", "of which to SMEs and below ip_pledge.small_loan (CNIPA's count of "
                                 "SMEs with loans under 10 M yuan)", summary=True, owner=NAME)
CREDIT_OFFERS = columns.column("credit_offers", "contract decisions offered pledge credit (each firm weighing an "
                               "achievement while a lender can lend)", summary=True, owner=NAME)
CREDIT_OFFERS_SHORT = columns.column("credit_offers_short", "of which by a firm whose cash is short of the "
                                     "implementation cost plus the lowest licence price the university accepts: it "
                                     "cannot sign a licence from its own cash (:func:`short_of_cash`)", summary=True,
                                     owner=NAME)
CREDIT_OFFERS_SHORT_SME = columns.column("credit_offers_short_sme", "of which by SMEs", summary=True, owner=NAME)
LOANS_GUARANTEED = columns.column("loans_guaranteed", "of which covered by the guarantee fund", summary=True,
                                  owner=NAME)
LOANS_REPAID = columns.column("loans_repaid", "pledge loans repaid in full", summary=True, owner=NAME)
LOANS_DEFAULTED = columns.column("loans_defaulted", "pledge loans not repaid in full (defaults)", summary=True,
                                 owner=NAME)
LOAN_LOSSES = columns.column("loan_losses", "principal left unpaid by defaulting firms, after the collateral "
                             "recovered and before the guarantee (yuan)",
                             money=True, summary=True, owner=NAME)
LOAN_INTEREST_DUE = columns.column("loan_interest_due", "interest agreed on the loans paid out (yuan)", money=True,
                                   summary=True, owner=NAME)
LOAN_INTEREST_PAID = columns.column("loan_interest_paid", "interest repaid (part of loan_repayments; yuan)",
                                    money=True, summary=True, owner=NAME)
GUARANTEES_DENIED = columns.column("guarantees_denied", "guarantee payouts refused for lack of budget (yuan)",
                                   money=True, summary=True, owner=NAME)
LOANS_OUTSTANDING = columns.column("loans_outstanding", "pledge loans running", stock=True, owner=NAME)
PRINCIPAL_OUTSTANDING = columns.column("loan_principal_outstanding", "principal of the running pledge loans (yuan)",
                                       stock=True, money=True, summary=True, owner=NAME)
FUND_COMMITTED = columns.column("guarantee_fund_committed", "guarantees committed on running loans (yuan)",
                                stock=True, money=True, owner=NAME)
LENDERS_ACTIVE = LENDERS.active_column("lenders still lending")
SPEND = "guarantees"   # government spend on this instrument is the run metric gov_spend_guarantees
ZERO_STRENGTH = ("ip_pledge.loan_to_value=0", "ip_pledge.asset_loan_to_value=0")  # on, yet no credit on offer

state.field("pl_promised", "lender", np.int64, 0, "loans agreed and not yet paid out (yuan)", owner=NAME)
state.field("pl_outstanding", "lender", np.int64, 0, "principal of its running loans (yuan)", owner=NAME)
state.field("pl_fund_paid", "one", np.int64, 0, "the guarantee fund's payouts so far (yuan)", owner=NAME)
state.field("pl_fund_committed", "one", np.int64, 0, "guarantees committed on agreed and running loans (yuan)",
            owner=NAME)
state.field("pl_running", "one", np.int64, 0, "pledge loans paid out and not yet settled", owner=NAME)
state.field("pl_offer", "one", np.int64, -1, "scratch: the lender of the credit on offer to this decision, or -1",
            owner=NAME)
state.field("pl_offer_guaranteed", "one", np.bool_, False, "scratch: that credit is guaranteed", owner=NAME)
state.field("c_lender", "project", np.int64, -1, "lender of the project's pledge loan, or -1 (none)", owner=NAME)
state.field("c_loan", "project", np.int64, 0, "principal of its pledge loan (yuan)", owner=NAME)
state.field("c_interest", "project", np.int64, 0, "interest owed on it when the outcome is known (yuan)", owner=NAME)
state.field("c_guarantee", "project", np.int64, 0, "guarantee committed on it, 0 if not guaranteed (yuan)", owner=NAME)
state.field("c_collateral", "project", np.int64, 0, "the lending value of the assets it pledged with the patent: the most "
            "the lender may seize (yuan)", owner=NAME)
state.field("firm_pledged", "firm", np.int64, 0, "the lending value of the firm's assets pledged on its running loans "
            "(its projects' c_collateral): a second project's loan gets only what is left", owner=NAME)


class Lender(ReserveHolder):
    """A bank lending against patents: prices loans from its default experience and the guarantee, lends from its
    reserves, stops lending when its equity (``worth``) falls below its minimum reserves (its decisions are this
    module's hooks; ``active``, ``defaults``, ``observed``, ``reserves``: :class:`sim.core.reserves.ReserveHolder`)."""

    holders = LENDERS
    promised = views.column("pl_promised", "loans agreed and not yet paid out (yuan)")
    outstanding = views.column("pl_outstanding", "principal of its running loans (yuan)")

    @property
    def default_estimate(self) -> float:
        """Its estimate of the default rate, as it prices now (:func:`default_estimate`)."""
        return self.experience(self.model.cfg.ip_pledge.prior_default)


MESA_AGENTS = {"lender": Lender}
initial_balances = LENDERS.initial_balances   # each starts with ip_pledge.initial_reserves


MONEY_KEYS = "ip_pledge.initial_reserves, lenders, loan_to_value or asset_loan_to_value"  # what to lower when the money bound is passed


def money_bound(cfg, pop) -> float:
    """Lenders' reserves, and per contract a loan (at most loan_to_value x the asking price plus the pledged assets'
    lending value), its repayment (at most the loan and the highest rate) and the guarantee (at most the loan); the
    collateral recovered (at most the firms' assets, which only fall)."""
    pl, sc = cfg.ip_pledge, cfg.scenario
    top_rate = pl.funding_rate * pl.term_months / 12.0 + 1.0 + pl.loading
    per_loan = 3.0 + top_rate
    contracts_each = float(sc.universities.max_failures + 1)
    assets = float(pop.firm_assets.astype(np.float64).sum())
    return (pl.lenders * pl.initial_reserves + assets
            + contracts_each * per_loan * (pl.loan_to_value * float(pop.ach_ask.astype(np.float64).sum())
                                           + pl.asset_loan_to_value * assets)
            + 4.0 * pop.n_achievements)


# --------------------------------------------------------------------------- rules
# the lender's estimate of the default rate: its prior plus its own settled loans
default_estimate = experience_rate


@entry
def loan_rate(funding_rate, term_months, loading, default_rate, guarantee_share, loss_given_default):
    """Interest as a share of the loan: the funding cost over the term plus the loaded expected loss not guaranteed,
    ``funding_rate x term / 12 + (1 + loading) x default_rate x loss_given_default x (1 - guarantee_share)``."""
    return (funding_rate * term_months / 12.0
            + (1.0 + loading) * default_rate * loss_given_default * (1.0 - guarantee_share))


@entry
def loss_given_default(limit, collateral):
    """The share of a credit limit the pledged assets do not cover, ``(limit - min(collateral, limit)) / limit``: what
    the lender loses of a loan of the whole limit when the firm's cash fails it (the patent recovers nothing)."""
    if limit <= 0:
        return 1.0
    return (limit - min(collateral, limit)) / limit


@entry
def lendable(cash, promised):
    """What a lender can still lend: its cash less the loans it has promised and not yet paid out."""
    return max(np.int64(0), cash - promised)


@entry
def asset_collateral(asset_loan_to_value, assets):
    """The lending value of the assets a firm pledges with the patent, ``floor(asset_loan_to_value x assets)``: what
    it may borrow against them and the most the lender may seize on a default (whole yuan, never negative)."""
    return np.int64(math.floor(asset_loan_to_value * max(np.int64(0), assets)))


@entry
def credit_limit(loan_to_value, ask, collateral, can_lend):
    """The most a firm may borrow: ``loan_to_value`` of the patent's pledge value (its asking price) plus the lending
    value of its pledged assets (``collateral``, :func:`asset_collateral`), within what the lender can lend (whole
    yuan)."""
    return min(np.int64(math.floor(loan_to_value * ask)) + collateral, can_lend)


@entry
def short_of_cash(cash, cost, ask, reservation_share):
    """Whether a firm's ``cash`` is short of what a licence costs it at signing at the lowest price the university
    accepts: the implementation ``cost`` plus ``reservation_share`` x the asking price (before any broker's fee or
    co-payment). A count of who needs the credit, no rule: such a firm signs a licence only with a loan."""
    return cash < cost + reservation_share * ask


@entry
def guarantee_of(loan, guarantee_share):
    """The guarantee committed on a loan: the most the fund could pay on it, ``ceil(share x loan)``."""
    return np.int64(math.ceil(guarantee_share * loan))


@entry
def fund_covers(fund_size, paid, committed, guarantee):
    """Whether the fund's capital left (less what it paid and has committed) covers a guarantee."""
    return np.int64(math.floor(fund_size)) - paid - committed >= guarantee


@entry
def repayment(loan, interest, cash, collateral):
    """What a firm repays when the outcome is known: loan + interest as far as its cash goes, then the lender seizes
    its pledged assets for what is still owed, up to their lending value ``collateral``; interest first. Returns
    (repaid from cash, recovered from the collateral, interest paid, principal left unpaid: the lender's loss)."""
    owed = loan + interest
    repaid = min(owed, max(np.int64(0), cash))
    recovered = min(owed - repaid, max(np.int64(0), collateral))
    interest_paid = min(interest, repaid + recovered)
    return repaid, recovered, interest_paid, loan - (repaid + recovered - interest_paid)


@entry
def guarantee_due(unpaid_principal, guarantee_share):
    """The fund's payout on a default: its share of the unpaid principal, rounded down (never above the share)."""
    return np.int64(math.floor(guarantee_share * unpaid_principal))


# a lender keeps lending while active and its equity (cash + principal outstanding) is at least its minimum reserves
lender_lends = in_business


@kernel
def reserves(st, i):
    """Lender ``i``'s cash."""
    return reserves_of(st, LENDER, i)


@kernel
def equity(st, i):
    """A lender's equity: its cash plus the principal of its running loans."""
    return reserves(st, i) + st.pl_outstanding[i]


# --------------------------------------------------------------------------- hooks
@kernel
def offer_support(p, st, series, month, j, a, cost):
    """The cheapest lender's credit (on ties the larger limit, then the first lender): a limit from the patent's pledge
    value within its lendable reserves, at its rate (with the guarantee share if the fund's capital covers the
    guarantee on the whole limit)."""
    f = st.project_firm[j]   # the firm running project j
    pl = p.ip_pledge
    st.pl_offer[0] = -1
    st.pl_offer_guaranteed[0] = False
    if pl.loan_to_value <= 0.0 and pl.asset_loan_to_value <= 0.0:
        return
    # the firm's assets pledged on its other running loans are not pledged again
    collateral = max(np.int64(0), asset_collateral(pl.asset_loan_to_value, st.firm_assets[f]) - st.firm_pledged[f])
    best, best_rate, best_limit, best_guaranteed = -1, 0.0, np.int64(0), False
    for i in range(st.pl_active.shape[0]):
        if not lender_lends(st.pl_active[i], equity(st, i), pl.min_reserves):
            continue
        limit = credit_limit(pl.loan_to_value, st.ach_ask[a], collateral,
                             lendable(reserves(st, i), st.pl_promised[i]))
        if limit <= 0:
            continue
        guaranteed = pl.guarantee_share > 0.0 and fund_covers(pl.fund_size, st.pl_fund_paid[0],
                                                              st.pl_fund_committed[0],
                                                              guarantee_of(limit, pl.guarantee_share))
        d = default_estimate(pl.prior_default, pl.prior_strength, st.pl_defaults[i], st.pl_observed[i])
        rate = loan_rate(pl.funding_rate, pl.term_months, pl.loading, d, pl.guarantee_share if guaranteed else 0.0,
                         loss_given_default(limit, collateral))
        if best < 0 or rate < best_rate or (rate == best_rate and limit > best_limit):
            best, best_rate, best_limit, best_guaranteed = i, rate, limit, guaranteed
    if best < 0:
        return
    series[month, CREDIT_OFFERS] += 1
    if short_of_cash(st.balance[ledger.account(st, ledger.FIRM, f)], cost, st.ach_ask[a],
                     st.univ_reservation[st.ach_owner[a]]):
        series[month, CREDIT_OFFERS_SHORT] += 1
        series[month, CREDIT_OFFERS_SHORT_SME] += 1 if st.firm_sme[f] else 0
    st.support[SUPPORT_CREDIT] = float(best_limit)
    st.support[SUPPORT_CREDIT_RATE] = best_rate
    st.support[SUPPORT_COLLATERAL] = float(collateral)
    st.pl_offer[0] = best
    st.pl_offer_guaranteed[0] = best_guaranteed


@kernel
def on_open(p, st, series, month, j, cover):
    """The loan agreed (the firm borrows what its cash lacks at signing) is promised by the lender, its guarantee
    committed against the fund, the firm's assets pledged (their lending value, what the lender may seize)."""
    i = st.pl_offer[0]
    if i < 0 or st.c_borrowed[j] <= 0:
        st.c_lender[j] = -1
        st.c_loan[j] = 0
        st.c_interest[j] = 0
        st.c_guarantee[j] = 0
        st.c_collateral[j] = 0
        return
    st.c_collateral[j] = np.int64(st.support[SUPPORT_COLLATERAL])
    st.firm_pledged[st.project_firm[j]] += st.c_collateral[j]
    loan = st.c_borrowed[j]
    st.c_lender[j] = i
    st.c_loan[j] = loan
    st.c_interest[j] = rules.yuan(st.support[SUPPORT_CREDIT_RATE] * loan)
    st.c_guarantee[j] = guarantee_of(loan, p.ip_pledge.guarantee_share) if st.pl_offer_guaranteed[0] else 0
    st.pl_promised[i] += loan
    st.pl_fund_committed[0] += st.c_guarantee[j]


@kernel
def on_breakdown(p, st, series, month, j):
    """The promise and the guarantee are released."""
    i = st.c_lender[j]
    if i < 0:
        return
    st.pl_promised[i] -= st.c_loan[j]
    st.pl_fund_committed[0] -= st.c_guarantee[j]
    st.firm_pledged[st.project_firm[j]] -= st.c_collateral[j]
    st.c_lender[j] = -1
    st.c_collateral[j] = 0


@kernel
def at_signing(p, st, series, month, j):
    """The loan is paid out before any payment at signing."""
    f = st.project_firm[j]   # the firm running project j
    i = st.c_lender[j]
    if i < 0:
        return
    loan = st.c_loan[j]
    ledger.pay(st, series, month, ledger.account(st, LENDER, i), ledger.account(st, ledger.FIRM, f), loan,
               PLEDGE_LOANS)
    st.pl_promised[i] -= loan
    st.pl_outstanding[i] += loan
    st.pl_running[0] += 1
    series[month, LOANS_MADE] += 1
    series[month, LOANS_MADE_SME] += 1 if st.firm_sme[f] else 0
    series[month, LOANS_SME_SMALL] += 1 if st.firm_sme[f] and loan < p.ip_pledge.small_loan else 0
    series[month, LOANS_GUARANTEED] += 1 if st.c_guarantee[j] > 0 else 0
    series[month, LOAN_INTEREST_DUE] += st.c_interest[j]


@kernel
def on_settle(p, st, series, month, j, success):
    """The firm repays as far as its cash goes, then the lender seizes its pledged assets for the rest, up to their
    lending value (sold to the outside economy: the firm's assets fall by as much); on a default (the lender not paid
    in full) the fund pays its share of the principal left unpaid, within its commitment and the yearly budget."""
    f = st.project_firm[j]   # the firm running project j
    i = st.c_lender[j]
    if i < 0:
        return
    loan = st.c_loan[j]
    lender = ledger.account(st, LENDER, i)
    repaid, recovered, interest_paid, unpaid = repayment(loan, st.c_interest[j],
                                                         st.balance[ledger.account(st, ledger.FIRM, f)],
                                                         st.c_collateral[j])
    ledger.pay(st, series, month, ledger.account(st, ledger.FIRM, f), lender, repaid, LOAN_REPAYMENTS)
    if recovered > 0:
        ledger.pay(st, series, month, ledger.account(st, ledger.MARKET, 0), lender, recovered, COLLATERAL_RECOVERED)
        st.firm_assets[f] -= recovered
    series[month, LOAN_INTEREST_PAID] += interest_paid
    defaulted = repaid + recovered < loan + st.c_interest[j]
    if defaulted:
        series[month, LOANS_DEFAULTED] += 1
        series[month, LOAN_LOSSES] += unpaid
        if st.c_guarantee[j] > 0:
            due = guarantee_due(unpaid, p.ip_pledge.guarantee_share)
            if public.pay_public(p, st, series, month, lender, due, GUARANTEE_PAYOUTS):
                st.pl_fund_paid[0] += due
            else:
                series[month, GUARANTEES_DENIED] += due
    else:
        series[month, LOANS_REPAID] += 1
    st.pl_defaults[i] += 1 if repaid < loan + st.c_interest[j] else 0   # its cash failed it: the pledge enforced
    st.pl_observed[i] += 1
    st.pl_outstanding[i] -= loan
    st.pl_running[0] -= 1
    st.pl_fund_committed[0] -= st.c_guarantee[j]
    st.c_lender[j] = -1
    st.firm_pledged[f] -= st.c_collateral[j]
    st.c_collateral[j] = 0


@kernel
def on_month(p, st, series, month):
    """Lenders whose equity fell below their minimum reserves stop lending for good."""
    withdraw(st, LENDER, st.pl_active, p.ip_pledge.min_reserves, st.pl_outstanding)


@kernel
def record(p, st, series, month):
    series[month, LENDERS_ACTIVE] = st.pl_active.sum()
    series[month, LOANS_OUTSTANDING] = st.pl_running[0]
    series[month, PRINCIPAL_OUTSTANDING] = st.pl_outstanding.sum()
    series[month, FUND_COMMITTED] = st.pl_fund_committed[0]


# --------------------------------------------------------------------------- results
def summarize(totals: dict, s) -> dict:
    """Its run metrics, one array over the runs each (``totals``: the run metrics so far; ``s``: the series,
    ``(runs, months, columns)``)."""
    from ..core.results import ratio

    lent = totals["pledge_loans"]
    settled = totals["loans_repaid"] + totals["loans_defaulted"]
    return {"mean_loan_rate": ratio(totals["loan_interest_due"], lent),
            "loan_default_rate": ratio(totals["loans_defaulted"], settled),
            **LENDERS.summarize(s)}


def check_series(s, cfg, c=None) -> None:
    """Loans add up (lent = principal repaid, from cash or the collateral recovered, + defaulted + outstanding, in
    yuan and in loans, month by month); collateral recovered only in months a loan is settled; guarantee payouts only
    in months with defaults, within guarantee_share of the principal lost and, in all, within the fund; a loan only
    with a contract signed; loans to SMEs (and small ones) among the loans; no more loans than credit offers so far,
    offers to firms short of cash (SMEs) among the offers; lenders never return once withdrawn."""
    from ..core.results import FORM_COLUMNS, InvariantError, cumulative, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    pl = cfg.ip_pledge
    c = cumulative(s) if c is None else c
    principal_repaid = c[:, :, LOAN_REPAYMENTS] + c[:, :, COLLATERAL_RECOVERED] - c[:, :, LOAN_INTEREST_PAID]
    bad = c[:, :, PLEDGE_LOANS] != principal_repaid + c[:, :, LOAN_LOSSES] + s[:, :, PRINCIPAL_OUTSTANDING]
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: pledge loans lent differ from the principal repaid, defaulted "
                             "and outstanding")
    bad = c[:, :, LOANS_MADE] != c[:, :, LOANS_REPAID] + c[:, :, LOANS_DEFAULTED] + s[:, :, LOANS_OUTSTANDING]
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: loans made differ from loans repaid, defaulted and running")
    bad = ((c[:, :, LOAN_INTEREST_PAID] > c[:, :, LOAN_INTEREST_DUE])
           | (s[:, :, LOAN_INTEREST_PAID] > s[:, :, LOAN_REPAYMENTS] + s[:, :, COLLATERAL_RECOVERED]))
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: more interest paid than agreed or repaid")
    bad = (s[:, :, COLLATERAL_RECOVERED] > 0) & (s[:, :, LOANS_REPAID] + s[:, :, LOANS_DEFAULTED] == 0)
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: collateral recovered in a month without a loan settled")
    bad = (s[:, :, GUARANTEE_PAYOUTS] > 0) & (s[:, :, LOANS_DEFAULTED] == 0)
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: guarantee payouts in a month without defaults")
    # each payout is rounded down from a float product: a millionth of a yuan of slack per default for its last bit
    bad = (s[:, :, GUARANTEE_PAYOUTS] + s[:, :, GUARANTEES_DENIED]
           > pl.guarantee_share * s[:, :, LOAN_LOSSES] + 1e-6 * s[:, :, LOANS_DEFAULTED])
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: guarantee payouts exceed guarantee_share of the principal lost")
    bad = c[:, :, GUARANTEE_PAYOUTS] > math.floor(pl.fund_size)
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: guarantee payouts exceed the fund")
    bad = ((c[:, :, LOANS_MADE] > c[:, :, CREDIT_OFFERS]) | (s[:, :, CREDIT_OFFERS_SHORT] > s[:, :, CREDIT_OFFERS])
           | (s[:, :, CREDIT_OFFERS_SHORT_SME] > s[:, :, CREDIT_OFFERS_SHORT]))
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: more loans than credit offers so far, or more offers to firms short "
                             "of cash (to SMEs short of cash) than offers (to firms short of cash)")
    contracts_signed = s[:, :, list(FORM_COLUMNS)].sum(axis=2)
    bad = ((s[:, :, LOANS_MADE] > contracts_signed) | (s[:, :, LOANS_GUARANTEED] > s[:, :, LOANS_MADE])
           | (s[:, :, LOANS_MADE_SME] > s[:, :, LOANS_MADE]) | (s[:, :, LOANS_SME_SMALL] > s[:, :, LOANS_MADE_SME]))
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: more loans (guaranteed loans, loans to SMEs, small ones) than "
                             "contracts signed (loans, loans to SMEs)")
    LENDERS.check_series(s)
